"""Measure evstore.eventsourcing beside eventsourcing's own sqlite and postgres persistence
modules: the same eventsourcing Application doing a simple write/read workload on each.

    python scripts/bench_es.py --aggregates 2000 --runs 3
    python scripts/bench_es.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

Each run starts from a fresh database (a temporary SQLite file; a scratch PostgreSQL database
created and dropped on the server given, named evstore_bench_es_*), and measures, one thread:
  write   N new aggregates, each saved with its first event: N inserts of one event
  update  one more event for each: repository.get and save, N reads and N inserts
  read    repository.get of each aggregate: N reads of a two-event stream
  log     the whole notification log, select_notifications in pages of 500
The table gives the median of the runs in operations per second; --json FILE keeps every run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from evstore.urls import parse_url, redact

PHASES = ("write", "update", "read", "log")


class Dog(Aggregate):
    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.tricks: list[str] = []

    @event("TrickAdded")
    def add_trick(self, trick: str) -> None:
        self.tricks.append(trick)


class DogSchool(Application[uuid.UUID]):
    pass


@contextlib.contextmanager
def scratch_database(server: str) -> Iterator[str]:
    url = parse_url(server)
    assert url.conninfo is not None
    name = f"evstore_bench_es_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url.conninfo, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url.with_database(name).url
    finally:
        with psycopg.connect(url.conninfo, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def postgres_env(url: str) -> dict[str, str]:
    """eventsourcing.postgres's settings for the database of an evstore URL (parsed)."""
    conninfo = parse_url(url).conninfo
    assert conninfo is not None
    parts = conninfo_to_dict(conninfo)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(parts.get("dbname") or "postgres"),
        "POSTGRES_HOST": str(parts.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(parts.get("port") or "5432"),
        "POSTGRES_USER": str(parts.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(parts.get("password") or ""),
    }


def systems(server: str | None) -> dict[str, Callable[[], contextlib.AbstractContextManager[
        dict[str, str]]]]:
    """Each system under test: a context that makes a fresh database and yields the env."""

    @contextlib.contextmanager
    def evstore_sqlite() -> Iterator[dict[str, str]]:
        with tempfile.TemporaryDirectory() as folder:
            yield {"PERSISTENCE_MODULE": "evstore.eventsourcing",
                   "EVSTORE_DATABASE_URL": f"sqlite:///{folder}/es.db"}

    @contextlib.contextmanager
    def es_sqlite() -> Iterator[dict[str, str]]:
        with tempfile.TemporaryDirectory() as folder:
            yield {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                   "SQLITE_DBNAME": f"{folder}/es.db"}

    found: dict[str, Any] = {"evstore.eventsourcing sqlite": evstore_sqlite,
                             "eventsourcing.sqlite": es_sqlite}
    if server:
        @contextlib.contextmanager
        def evstore_postgres() -> Iterator[dict[str, str]]:
            with scratch_database(server) as url:
                yield {"PERSISTENCE_MODULE": "evstore.eventsourcing",
                       "EVSTORE_DATABASE_URL": url}

        @contextlib.contextmanager
        def es_postgres() -> Iterator[dict[str, str]]:
            with scratch_database(server) as url:
                yield postgres_env(url)

        found["evstore.eventsourcing postgres"] = evstore_postgres
        found["eventsourcing.postgres"] = es_postgres
    return found


def run_once(env: dict[str, str], n: int) -> dict[str, float]:
    """One run of the workload; operations per second for each phase."""
    app = DogSchool(env=env)  # tables are created here, before the clock starts
    try:
        rates: dict[str, float] = {}
        started = time.perf_counter()
        ids = []
        for i in range(n):
            dog = Dog(f"dog {i}")
            app.save(dog)
            ids.append(dog.id)
        rates["write"] = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for dog_id in ids:
            dog = app.repository.get(dog_id)
            dog.add_trick("sit")
            app.save(dog)
        rates["update"] = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for dog_id in ids:
            assert app.repository.get(dog_id).tricks == ["sit"]
        rates["read"] = n / (time.perf_counter() - started)
        started = time.perf_counter()
        seen, start = 0, 1
        while True:
            page = app.recorder.select_notifications(start, 500)
            seen += len(page)
            if len(page) < 500:
                break
            start = page[-1].id + 1
        assert seen == 2 * n, seen
        rates["log"] = seen / (time.perf_counter() - started)
        return rates
    finally:
        app.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aggregates", type=int, default=2000, help="N (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per system (default 3)")
    parser.add_argument("--postgres", default=os.environ.get("EVSTORE_TEST_PG_DSN"),
                        help="a PostgreSQL server URL for the postgres systems (default: "
                        "EVSTORE_TEST_PG_DSN; without one, SQLite only)")
    parser.add_argument("--only", action="append", help="run only systems containing this")
    parser.add_argument("--json", type=Path, help="write every run's rates here")
    args = parser.parse_args(argv)
    chosen = {name: make for name, make in systems(args.postgres).items()
              if not args.only or any(o in name for o in args.only)}
    if args.postgres:
        print(f"PostgreSQL: {redact(args.postgres)}", file=sys.stderr)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    # Interleave the systems run by run, so a busy moment of the machine hits them alike.
    for run in range(args.runs):
        for name, make in chosen.items():
            gc.collect()
            with make() as env:
                results[name].append(run_once(env, args.aggregates))
            print(f"run {run + 1} {name}: " + ", ".join(
                f"{p} {results[name][-1][p]:,.0f}/s" for p in PHASES), file=sys.stderr)
    print(f"\n{args.aggregates} aggregates, median of {args.runs} runs, operations per second")
    print(f"| system | {' | '.join(PHASES)} |")
    print(f"| --- |{' ---: |' * len(PHASES)}")
    for name, runs in results.items():
        medians = [statistics.median(r[p] for r in runs) for p in PHASES]
        print(f"| {name} | " + " | ".join(f"{m:,.0f}" for m in medians) + " |")
    if args.json:
        args.json.write_text(json.dumps({"aggregates": args.aggregates, "runs": results},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
