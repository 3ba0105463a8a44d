"""W8 scaling: the rate with 1, 2, 4 and 8 writer processes, and with 1, 4 and 8 reader
processes, each point on a fresh database, with the no-skip check at every point.

Writers: each appends batches of --w5-batch to 20 streams of its own for --w8-seconds, while
a follower process tails the log; events/s is what all writers appended over the wall time.
No-skip: the follower delivered every committed event exactly once, in order.

Readers: the log is first filled with --w8-log events (not timed); then every reader reads all
of it in pages of --page at once; events/s is the events all readers read over the wall time
from the go to the last reader's end. No-skip: each reader read every event exactly once, in
order. The figure is the sum of the violations of all the readers.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid

from evbench.clients import committed_positions, no_skip_violations, now_ns, open_writer
from evbench.data import Batch, make_event
from evbench.databases import Scratch
from evbench.results import Results
from evbench.systems import make_system
from evbench.workloads import processes as proc


def counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def run_w8(system_name: str, scratch: Scratch, args: argparse.Namespace,
           results: Results, rep: int) -> None:
    for n in counts(args.w8_writers):
        system = make_system(system_name)
        system.setup(scratch)
        try:
            _writers(system_name, system.url, n, args, results)
        finally:
            system.teardown(scratch)
    for n in counts(args.w8_readers):
        system = make_system(system_name)
        system.setup(scratch)
        try:
            _readers(system_name, system.url, n, args, results, rep)
        finally:
            system.teardown(scratch)


def _record_violations(workload: str, system: str, bad: dict[str, int],
                       results: Results) -> None:
    results.add(workload, system, sum(bad.values()), "events")
    if any(bad.values()):
        results.note(workload, system, ", ".join(f"{k} {v}" for k, v in bad.items() if v))


def _writers(system: str, url: str, n: int, args: argparse.Namespace,
             results: Results) -> None:
    ready, done, out = proc.SPAWN.Queue(), proc.SPAWN.Event(), proc.SPAWN.Queue()
    go, stop, wout = proc.SPAWN.Event(), proc.SPAWN.Event(), proc.SPAWN.Queue()
    head = proc.SPAWN.Value("q", 0)
    procs = proc.start([
        (proc.follower_process, (system, url, args.poll, [], ready, done, head, out)),
        *((proc.writer_process, (system, url, w, args.w5_batch, args.w5_pool,
                                 args.w8_seconds, ready, go, stop, wout)) for w in range(n)),
    ])
    try:
        proc.wait_ready(ready, len(procs), procs)
        begun = time.perf_counter()
        go.set()
        reports = proc.collect(wout, n, procs, timeout=args.w8_seconds + 120)
        elapsed = time.perf_counter() - begun
        appended = sum(r[2] for r in reports)
        committed = committed_positions(system, url)
        head.value = committed[-1] if committed else 0
        done.set()
        _, seen, _ = proc.collect(out, 1, procs, timeout=120)[0]
    finally:
        stop.set()
        done.set()
        proc.join(procs)
    if len(committed) != appended:
        raise RuntimeError(f"{system}: W8 writers appended {appended} events, "
                           f"{len(committed)} are stored")
    workload = f"W8 writers={n}"
    results.add(workload, system, appended / elapsed, "events/s")
    if any(r[3] for r in reports):
        results.note(workload, system, "a writer used up its --w5-pool; raise it")
    _record_violations(f"{workload} no-skip violations", system,
                       no_skip_violations(seen, committed), results)


def fill_log(system: str, url: str, events: int, seed: int) -> None:
    """--w8-log events in appends of 100 to new streams of 1,000, through the system's own
    writer (each system reads back a log it wrote itself)."""
    rng = random.Random(seed)
    writer = open_writer(system, url)
    made, stream = 0, ""
    try:
        while made < events:
            if made % 1000 == 0:
                stream = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            batch = [make_event(rng, made + j) for j in range(min(100, events - made))]
            writer.prepare(batch)
            writer.append(Batch(stream, made % 1000, batch))
            made += len(batch)
    finally:
        writer.close()


def _readers(system: str, url: str, n: int, args: argparse.Namespace,
             results: Results, rep: int) -> None:
    fill_log(system, url, args.w8_log, 8000 + 10 * rep + n)
    committed = committed_positions(system, url)
    ready, go, out = proc.SPAWN.Queue(), proc.SPAWN.Event(), proc.SPAWN.Queue()
    procs = proc.start((proc.reader_process, (system, url, args.page, ready, go, out))
                       for _ in range(n))
    try:
        proc.wait_ready(ready, n, procs)
        begun = now_ns()
        go.set()
        reports = proc.collect(out, n, procs, timeout=600)
    finally:
        proc.join(procs)
    ended = max(r[2] for r in reports)
    read = sum(len(r[1]) for r in reports)
    workload = f"W8 readers={n}"
    results.add(workload, system, read / ((ended - begun) / 1e9), "events/s")
    bad: dict[str, int] = {}
    for r in reports:
        for k, v in no_skip_violations(r[1], committed).items():
            bad[k] = bad.get(k, 0) + v
    _record_violations(f"{workload} no-skip violations", system, bad, results)
