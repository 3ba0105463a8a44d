"""WT threads: 1, 4 and 8 threads of one process sharing ONE client, on a fresh database each.

evstore: one Store (on PostgreSQL its pool holds as many connections as threads). eventsourcing:
one application recorder, shared as its documentation has an application share it. raw: one
sqlite3 connection that the threads take turns on (as evstore's SQLite Store does), or a
psycopg_pool pool of as many connections as threads.

Each thread appends --wt-events / threads events in batches of --w5-batch to 20 streams of its
own; events/s is all of them over the wall time. Afterwards every stream must hold exactly
the events its thread appended, or the run fails.

The asyncio API (evstore.aio, when it exists: `store = await evstore.aio.connect(url)`, the
Store's methods as coroutines) runs the same with 1, 4 and 8 tasks on one event loop, as
"WT tasks=N"; until evstore.aio is importable those lines say n/a.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import random
import threading
import time
import uuid
from typing import Any

import evstore
from evbench.clients import committed_positions, kind_of, open_writer
from evbench.data import Batch, Event, make_event
from evbench.databases import Scratch
from evbench.results import Results
from evbench.systems import make_system
from evbench.workloads.scaling import counts
from evstore import NewEvent


def _work(threads: int, args: argparse.Namespace, seed: int) -> list[list[Batch]]:
    """Each worker's appends, made before the clock starts."""
    rng = random.Random(seed)
    per_worker = args.wt_events // threads
    out = []
    for _ in range(threads):
        streams = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20)]
        heads = dict.fromkeys(streams, 0)
        batches = []
        for seq in range(per_worker // args.w5_batch):
            stream = streams[seq % len(streams)]
            events = [make_event(rng, seq * args.w5_batch + k) for k in range(args.w5_batch)]
            batches.append(Batch(stream, heads[stream], events))
            heads[stream] += len(events)
        out.append(batches)
    return out


def _check(system: str, url: str, work: list[list[Batch]]) -> int:
    appended = sum(len(b.events) for batches in work for b in batches)
    stored = len(committed_positions(system, url))
    if stored != appended:
        raise RuntimeError(f"{system}: WT appended {appended} events, {stored} are stored")
    return appended


def _threads_point(system: str, url: str, work: list[list[Batch]]) -> float:
    """Seconds for len(work) threads sharing one writer to do their appends."""
    writer = open_writer(system, url, threads=len(work))
    try:
        writer.prepare([e for batches in work for b in batches for e in b.events])
        failures: list[BaseException] = []
        barrier = threading.Barrier(len(work) + 1)

        def worker(batches: list[Batch]) -> None:
            barrier.wait()
            try:
                for b in batches:
                    writer.append(b)
            except BaseException as e:  # reported after the join
                failures.append(e)

        pool = [threading.Thread(target=worker, args=(w,)) for w in work]
        for t in pool:
            t.start()
        barrier.wait()
        begun = time.perf_counter()
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - begun
    finally:
        writer.close()
    if failures:
        raise RuntimeError(f"{system}: WT threads={len(work)} failed") from failures[0]
    return elapsed


def run_wt(system_name: str, scratch: Scratch, args: argparse.Namespace, results: Results,
           rep: int) -> None:
    for n in counts(args.wt_threads):
        system = make_system(system_name)
        system.setup(scratch)
        try:
            work = _work(n, args, 5000 + 10 * rep + n)
            elapsed = _threads_point(system_name, system.url, work)
            appended = _check(system_name, system.url, work)
            results.add(f"WT threads={n}", system_name, appended / elapsed, "events/s")
        finally:
            system.teardown(scratch)


# -- the asyncio hook -------------------------------------------------------------------------


def aio_module() -> Any | None:
    """evstore.aio when it is importable, else None."""
    try:
        return importlib.import_module("evstore.aio")
    except ImportError:
        return None


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _aio_point(aio: Any, url: str, work: list[list[Batch]]) -> float:
    store = await aio.connect(url)
    try:
        start = asyncio.Event()

        async def task(batches: list[Batch]) -> None:
            await start.wait()
            for b in batches:
                await store.append(
                    b.stream, [_new(e) for e in b.events],
                    expected_version=b.start if b.start else evstore.NO_STREAM,
                )

        tasks = [asyncio.create_task(task(w)) for w in work]
        await asyncio.sleep(0)
        begun = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        return time.perf_counter() - begun
    finally:
        await _maybe_await(store.close())


def _new(e: Event) -> NewEvent:
    return NewEvent(e.type, e.data, e.metadata, e.event_id)


def run_wt_async(system_name: str, scratch: Scratch, args: argparse.Namespace,
                 results: Results, rep: int) -> None:
    """WT with asyncio tasks on evstore.aio; 'n/a' while evstore.aio does not exist."""
    if kind_of(system_name) != "evstore":
        return
    aio = aio_module()
    for n in counts(args.wt_threads):
        workload = f"WT tasks={n}"
        if aio is None:
            results.not_run[(workload, system_name)] = "evstore.aio is not importable yet"
            continue
        system = make_system(system_name)
        system.setup(scratch)
        try:
            work = _work(n, args, 6000 + 10 * rep + n)
            elapsed = asyncio.run(_aio_point(aio, system.url, work))
            appended = _check(system_name, system.url, work)
            results.add(workload, system_name, appended / elapsed, "events/s")
        finally:
            system.teardown(scratch)
