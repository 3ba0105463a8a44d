"""W7 latency: how long an event takes from its commit to a tail, and to a projection's
committed checkpoint.

A probe writer in this process appends one event at a time (--w7-probes of them, --w7-gap
seconds apart) to a stream of its own, and notes the moment each append returned: the commit
as the writer sees it. A follower process and a projector process, started before the probes,
note the moment each probe reached them. Latency = that moment - the append's return, on the
machine's one monotonic clock. Once with the log idle, once under --w7-writers W5-style writer
processes, each phase on a fresh database. The follower's deliveries are also checked against
every committed event (the no-skip check). "probes missed": probes the follower (or the
projector's checkpoint) had not reached 60 s after the phase ended: skipped, or far behind.
A delivery that came before the writer's append call returned counts as 0 ms.
"""

from __future__ import annotations

import argparse
import math
import random
import time
import uuid

from evbench.clients import committed_positions, no_skip_violations, now_ns, open_writer
from evbench.data import Batch, make_event
from evbench.databases import Scratch
from evbench.results import Results
from evbench.systems import make_system
from evbench.workloads import processes as proc

PERCENTILES = ("p50", "p99", "max")


def percentile(values: list[float], which: str) -> float:
    ordered = sorted(values)
    if which == "max":
        return ordered[-1]
    q = {"p50": 0.50, "p99": 0.99}[which]
    # nearest rank: the smallest value with at least q of the values at or below it
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def run_w7(system_name: str, scratch: Scratch, args: argparse.Namespace, results: Results,
           rep: int) -> None:
    for phase in ("idle", "loaded"):
        system = make_system(system_name)
        system.setup(scratch)
        try:
            _phase(system_name, system.url, phase, args, results, rep)
        finally:
            system.teardown(scratch)


def _phase(system: str, url: str, phase: str, args: argparse.Namespace, results: Results,
           rep: int) -> None:
    rng = random.Random(7000 + rep)
    stream = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    probes = [make_event(rng, k) for k in range(args.w7_probes)]
    ids = [e.event_id for e in probes]
    ready, done, out = proc.SPAWN.Queue(), proc.SPAWN.Event(), proc.SPAWN.Queue()
    head = proc.SPAWN.Value("q", 0)
    watchers = proc.start([
        (proc.follower_process, (system, url, args.poll, ids, ready, done, head, out)),
        (proc.projector_process, (system, url, args.poll, ids, ready, done, head, out)),
    ])
    writers: list[object] = []
    go, stop = proc.SPAWN.Event(), proc.SPAWN.Event()
    wout = proc.SPAWN.Queue()
    if phase == "loaded":
        writers = proc.start(
            (proc.writer_process, (system, url, w, args.w5_batch, args.w5_pool, None, ready,
                                   go, stop, wout))
            for w in range(args.w7_writers)
        )
    everyone = [*watchers, *writers]
    try:
        proc.wait_ready(ready, len(everyone), everyone)
        probe = open_writer(system, url)
        probe.prepare(probes)
        committed_at: dict[str, int] = {}
        go.set()
        try:
            time.sleep(args.w7_gap)
            for k, event in enumerate(probes):
                probe.append(Batch(stream, k, [event]))
                committed_at[event.event_id] = now_ns()
                time.sleep(args.w7_gap)
        finally:
            probe.close()
            stop.set()
        loaded = 0
        if writers:
            reports = proc.collect(wout, len(writers), everyone, timeout=120)
            loaded = sum(r[2] for r in reports)
            if any(r[3] for r in reports):
                results.note(f"W7 tail {phase} p50", system,
                             "a writer used up its --w5-pool before the probes ended")
        committed = committed_positions(system, url)
        head.value = committed[-1] if committed else 0
        done.set()
        reports = proc.collect(out, 2, everyone, timeout=120)
    finally:
        stop.set()
        done.set()
        proc.join(everyone)
    by_kind = {r[0]: r for r in reports}
    _, seen, delivered_at = by_kind["follower"]
    _, _, checkpoint_at = by_kind["projector"]
    for what, reached in (("tail", delivered_at), ("checkpoint", checkpoint_at)):
        # A follower can see a commit before the writer's append call has returned: that
        # counts as 0, not as a negative latency.
        ms = [max(0.0, (reached[i] - committed_at[i]) / 1e6) for i in ids if i in reached]
        missing = len(ids) - len(ms)
        if ms:
            for which in PERCENTILES:
                results.add(f"W7 {what} {phase} {which}", system, percentile(ms, which), "ms")
        results.add(f"W7 {what} {phase} probes missed", system, missing, "events")
    bad = no_skip_violations(seen, committed)
    results.add(f"W7 tail {phase} no-skip violations", system, sum(bad.values()), "events")
    if any(bad.values()):
        results.note(f"W7 tail {phase} no-skip violations", system,
                     ", ".join(f"{k} {v}" for k, v in bad.items() if v))
    if phase == "loaded":
        results.note(f"W7 tail {phase} p50", system,
                     f"{loaded:,} events from {args.w7_writers} writers during the probes")
