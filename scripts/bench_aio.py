"""Throughput of the AsyncStore with 1, 4 and 8 tasks beside the sync Store with 1, 4 and 8
threads, on SQLite (a file) and PostgreSQL.

Each worker (a thread sharing one Store, or a task sharing one AsyncStore) repeats, on a
stream of its own: append one event with its expected version, then read the stream's last
10 events back. The figure is round trips per second over all workers (one round = one append
and one read), the best of --repeat runs, interleaved.

    python scripts/bench_aio.py                                   # SQLite only
    python scripts/bench_aio.py --postgres postgresql://postgres@127.0.0.1:5432/postgres
    python scripts/bench_aio.py --rounds 300 --json bench_aio.json

--postgres names a server and a database to connect to; the benchmark creates a scratch
database beside it (evstore_bench_aio_...) and drops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

import evstore
import evstore.aio
from evstore import NO_STREAM, NewEvent
from evstore.urls import parse_url

WORKERS = (1, 4, 8)


def sync_worker(store: evstore.Store, stream: str, rounds: int) -> None:
    for i in range(rounds):
        store.append(stream, [NewEvent("Tick", {"i": i})], i or NO_STREAM)
        assert len(store.read_stream(stream, backwards=True, limit=10)) == min(i + 1, 10)


async def async_worker(store: evstore.aio.AsyncStore, stream: str, rounds: int) -> None:
    for i in range(rounds):
        await store.append(stream, [NewEvent("Tick", {"i": i})], i or NO_STREAM)
        assert len(await store.read_stream(stream, backwards=True, limit=10)) == min(i + 1, 10)


def run_threads(url: str, workers: int, rounds: int, tag: str) -> float:
    with evstore.connect(url) as store:
        threads = [
            threading.Thread(target=sync_worker, args=(store, f"{tag}-{n}", rounds))
            for n in range(workers)
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - start


async def _run_tasks(url: str, workers: int, rounds: int, tag: str) -> float:
    async with await evstore.aio.connect(url) as store:
        start = time.perf_counter()
        await asyncio.gather(*(async_worker(store, f"{tag}-{n}", rounds)
                               for n in range(workers)))
        return time.perf_counter() - start


def run_tasks(url: str, workers: int, rounds: int, tag: str) -> float:
    return asyncio.run(_run_tasks(url, workers, rounds, tag))


@contextlib.contextmanager
def scratch_postgres(server: str) -> Iterator[str]:
    base = parse_url(server)
    name = f"evstore_bench_aio_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base.conninfo or "", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base.with_database(name).url
    finally:
        with psycopg.connect(base.conninfo or "", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                          .format(sql.Identifier(name)))


def measure(url: str, dialect: str, rounds: int, repeat: int) -> list[dict[str, Any]]:
    """Every configuration once per repeat, interleaved, so that a machine's drift (a disk
    that warms up, a neighbour's load) spreads over all of them; the best run counts."""
    with evstore.connect(url) as store:
        store.migrate()
    apis = (("Store, threads", run_threads), ("AsyncStore, tasks", run_tasks))
    best: dict[tuple[int, str], float] = {}
    for r in range(repeat):
        for workers in WORKERS:
            for api, runner in apis:
                tag = f"{api[0]}{workers}-{r}-{uuid.uuid4().hex[:6]}"
                seconds = runner(url, workers, rounds, tag)
                best[workers, api] = min(seconds, best.get((workers, api), seconds))
    results = []
    for (workers, api), seconds in best.items():
        rate = workers * rounds / seconds
        results.append({"dialect": dialect, "api": api, "workers": workers,
                        "rounds": workers * rounds, "seconds": round(seconds, 3),
                        "rounds_per_s": round(rate)})
        print(f"{dialect:10} {api:18} {workers} workers  {rate:8.0f} rounds/s "
              f"({workers * rounds} rounds in {seconds:.2f} s)", flush=True)
    return results


def api_overhead() -> None:
    """What the API layer (argument checks, the plan, the sync driver) adds to one call: a
    real :memory: store's stream_version, beside the same statement run on its backend."""
    import timeit

    with evstore.connect("sqlite:///:memory:") as store:
        store.migrate()
        store.append("s", [NewEvent("T", {})])
        backend = store._live()
        statement = store._q.sql["stream_version"]
        n = 20000
        for _ in range(3):
            api = min(timeit.repeat(lambda: store.stream_version("s"), number=n, repeat=7)) / n
            raw = min(timeit.repeat(lambda: backend.rows(statement, {"stream_id": "s"}),
                                    number=n, repeat=7)) / n
            print(f"stream_version: {api * 1e6:.2f} us through the Store, {raw * 1e6:.2f} us "
                  f"on the backend: {(api - raw) * 1e6:.2f} us for the API layer", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server to bench on")
    parser.add_argument("--rounds", type=int, default=200, help="rounds per worker (200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, best kept (3)")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--overhead", action="store_true",
                        help="only measure what the API layer adds to one call")
    args = parser.parse_args()
    if args.overhead:
        api_overhead()
        return 0
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        results += measure(f"sqlite:///{Path(folder) / 'bench.db'}", "sqlite", args.rounds,
                           args.repeat)
    if args.postgres:
        with scratch_postgres(args.postgres) as url:
            results += measure(url, "postgres", args.rounds, args.repeat)
    if args.json:
        machine = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                   "machine": platform.machine(), "cpus": os.cpu_count()}
        Path(args.json).write_text(json.dumps({"machine": machine, "results": results},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
