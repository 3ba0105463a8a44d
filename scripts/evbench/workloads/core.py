"""W1 to W4: batch append, single append, read all, read each stream."""

from __future__ import annotations

import argparse
import random

from evbench.data import Batch
from evbench.databases import Scratch
from evbench.results import Results, timed
from evbench.systems import System


def run_core(
    system: System, scratch: Scratch, w1: list[Batch], w2: list[Batch], args: argparse.Namespace,
    results: Results, rng: random.Random, workloads: set[str],
) -> None:
    """W1 to W4 for one system on a fresh database. W1 always runs, since W2 to W4 run on its
    data; each is recorded only when asked for."""
    system.setup(scratch)
    expected: dict[str, int] = {}
    for b in [*w1, *w2]:
        expected[b.stream] = expected.get(b.stream, 0) + len(b.events)
    try:
        system.prepare([*w1, *w2])

        def do_w1() -> int:
            for b in w1:
                system.append(b)
            return sum(len(b.events) for b in w1)

        n, s = timed(do_w1)
        if "W1" in workloads:
            results.add("W1", system.name, n / s, "events/s")
        if not workloads & {"W2", "W3", "W4"}:
            return

        def do_w2() -> int:
            for b in w2:
                system.append(b)
            return len(w2)

        n, s = timed(do_w2)
        if "W2" in workloads:
            results.add("W2", system.name, n / s, "events/s")

        if "W3" in workloads:
            total = sum(expected.values())
            n, s = timed(lambda: system.read_all_pages(args.page))
            if n != total:
                raise RuntimeError(f"{system.name}: W3 read {n} events, expected {total}")
            results.add("W3", system.name, n / s, "events/s")
        if "W4" not in workloads:
            return

        streams = list(dict.fromkeys(b.stream for b in w1))
        rng.shuffle(streams)

        def do_w4() -> int:
            for stream in streams:
                got = system.read_stream(stream)
                if got != expected[stream]:
                    raise RuntimeError(f"{system.name}: stream {stream} read {got} events, "
                                       f"expected {expected[stream]}")
            return len(streams)

        n, s = timed(do_w4)
        results.add("W4", system.name, n / s, "streams/s")
    finally:
        system.teardown(scratch)


