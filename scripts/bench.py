"""Benchmark evstore beside the raw drivers and the eventsourcing library, in one run.

Every system runs the same workloads on the same pre-generated events:

  W1 batch append   N events over S new streams, B consecutive events per append, each with an
                    expected-version check. Events/s.
  W2 single append  M events, one per append, expected version checked, round robin over
                    100 streams that W1 created. Events/s.
  W3 read all       every event in global order, pages of 1,000, data decoded. Events/s.
  W4 read stream    every W1 stream read fully, in shuffled order. Streams/s.
  W5 (PostgreSQL)   4 writer processes append batches of 10 to their own streams for 10 s
                    while a tailer follows the log. Events/s, and committed events the
                    tailer never delivered.
  W6 growth         W1's append rate and a read from the middle, again once the log holds
                    1,000,000 events; peak memory of a replay of the whole log.

Systems: evstore-sqlite, evstore-postgres; raw-sqlite and raw-postgres (the driver alone doing
the same inserts into evstore's own tables, the baseline); es-sqlite and es-postgres (the
eventsourcing library's application recorders, when `pip install -e '.[bench]'` put it there).
Each (system, repetition) gets a fresh database. Results: a table of medians with min and max,
the ratios to the baseline, and with --json every single measurement.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import multiprocessing
import os
import platform
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from ulid import ULID

import evstore
from evstore import NewEvent
from evstore.urls import parse_url

ROOT = Path(__file__).resolve().parent.parent
EVENT_TYPES = ("OrderPlaced", "ItemAdded", "ItemRemoved", "PaymentCaptured", "OrderShipped")
ALL_SYSTEMS = (
    "evstore-sqlite",
    "raw-sqlite",
    "es-sqlite",
    "evstore-postgres",
    "raw-postgres",
    "es-postgres",
)
BASELINE = {"sqlite": "raw-sqlite", "postgres": "raw-postgres"}
PEER = {"sqlite": "es-sqlite", "postgres": "es-postgres"}


# -- the events every system writes ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str  # a ULID, 26 characters
    type: str
    data: dict[str, Any]  # about 200 bytes of JSON, with a nested object
    metadata: dict[str, Any]  # about 130 bytes of JSON


@dataclass
class Batch:
    stream: str  # a UUID in text form, so eventsourcing (uuid originator ids) can take it too
    start: int  # the stream's version before this append
    events: list[Event]


def make_event(rng: random.Random, seq: int) -> Event:
    kind = EVENT_TYPES[seq % len(EVENT_TYPES)]
    data = {
        "order_id": f"ord-{rng.randrange(10**9):09d}",
        "customer": {
            "id": f"cus-{rng.randrange(10**6):06d}",
            "name": rng.choice(["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra"]),
            "tier": rng.choice(["gold", "silver", "bronze"]),
        },
        "sku": f"SKU-{rng.randrange(10**5):05d}",
        "quantity": rng.randrange(1, 20),
        "amount": round(rng.uniform(1, 5000), 2),
        "currency": "EUR",
        "note": "deliver to the side door, ring twice",
    }
    metadata = {
        "correlation_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "user": f"user-{rng.randrange(10**4):04d}",
        "source": "bench",
        "schema": 3,
        "ip": "192.0.2.17",
    }
    return Event(str(ULID()), kind, data, metadata)


def make_batches(rng: random.Random, streams: int, per_stream: int, batch: int) -> list[Batch]:
    """`streams` new streams of `per_stream` events each, appended `batch` at a time."""
    out = []
    seq = 0
    for _ in range(streams):
        stream = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        for start in range(0, per_stream, batch):
            events = []
            for _ in range(min(batch, per_stream - start)):
                events.append(make_event(rng, seq))
                seq += 1
            out.append(Batch(stream, start, events))
    return out


def make_singles(rng: random.Random, w1: list[Batch], count: int, streams: int) -> list[Batch]:
    """`count` one-event appends, round robin over the first `streams` streams of W1."""
    heads: dict[str, int] = {}
    for b in w1:
        heads[b.stream] = b.start + len(b.events)
    chosen = list(dict.fromkeys(b.stream for b in w1))[:streams]
    out = []
    for i in range(count):
        stream = chosen[i % len(chosen)]
        out.append(Batch(stream, heads[stream], [make_event(rng, i)]))
        heads[stream] += 1
    return out


def jdump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- databases ------------------------------------------------------------------------------


class Scratch:
    """Fresh databases, dropped afterwards: PostgreSQL databases on the server, SQLite files."""

    def __init__(self, pg_dsn: str, folder: Path) -> None:
        self.pg = parse_url(pg_dsn)
        self.folder = folder
        self.pg_names: list[str] = []

    def sqlite_path(self) -> Path:
        return self.folder / f"bench_{uuid.uuid4().hex[:10]}.db"

    def pg_database(self) -> str:
        name = f"evstore_bench_{uuid.uuid4().hex[:10]}"
        assert self.pg.conninfo is not None
        with psycopg.connect(self.pg.conninfo, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self.pg_names.append(name)
        return self.pg.with_database(name).url

    def drop(self, url: str) -> None:
        name = parse_url(url).database
        assert self.pg.conninfo is not None
        with psycopg.connect(self.pg.conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.pg_names:
            self.pg_names.remove(name)

    def drop_all(self) -> None:
        for name in list(self.pg_names):
            self.drop(self.pg.with_database(name).url)


def conninfo(url: str) -> str:
    info = parse_url(url).conninfo
    assert info is not None
    return info


def sqlite_connect(path: Path) -> sqlite3.Connection:
    """The raw baseline opens SQLite exactly as evstore does."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


# -- the systems ----------------------------------------------------------------------------


class System:
    """One contender: the same five operations on its own database."""

    name = ""
    dialect = ""
    url = ""  # the database URL, once set up

    def setup(self, scratch: Scratch) -> None: ...

    def append(self, batch: Batch) -> None: ...

    def read_all_pages(self, page: int) -> int: ...

    def read_stream(self, stream: str) -> int: ...

    def teardown(self, scratch: Scratch) -> None: ...


# --pg-dir / --sqlite-dir: the evstore systems migrate these folders instead of evstore's own,
# to price a schema change (an index, a trigger, a variant of evstore_append) in the same run.
MIGRATION_DIRS: dict[str, str] = {}


class EvstoreSystem(System):
    def __init__(self, dialect: str, drop_gin: bool = False) -> None:
        self.dialect = dialect
        self.name = f"evstore-{dialect}" + ("-nogin" if drop_gin else "")
        self.drop_gin = drop_gin

    def setup(self, scratch: Scratch) -> None:
        if self.dialect == "sqlite":
            self.url = f"sqlite:///{scratch.sqlite_path()}"
        else:
            self.url = scratch.pg_database()
        folder = MIGRATION_DIRS.get(self.dialect)
        self.store = evstore.connect(self.url, migrations_dir=folder)
        self.store.migrate()
        if self.drop_gin:
            self.store.execute("DROP INDEX ix_event_store_payload_gin")
            self.store.execute("DROP INDEX ix_event_store_metadata_gin")

    def append(self, batch: Batch) -> None:
        self.store.append(
            batch.stream,
            [NewEvent(e.type, e.data, e.metadata, e.event_id) for e in batch.events],
            expected_version=batch.start if batch.start else evstore.NO_STREAM,
        )

    def read_all_pages(self, page: int) -> int:
        n = 0
        for event in self.store.iter_all(page_size=page):
            event.data  # noqa: B018 -- decoded as an application would use it
            event.metadata  # noqa: B018
            n += 1
        return n

    def read_stream(self, stream: str) -> int:
        return touch(self.store.read_stream(stream))

    def teardown(self, scratch: Scratch) -> None:
        self.store.close()
        if self.dialect == "postgres":
            scratch.drop(self.url)


def touch(events: list[evstore.RecordedEvent]) -> int:
    """Read every event's data and metadata, as an application would: evstore decodes JSON
    on first access, so a read that never looks at the data would flatter it."""
    for event in events:
        event.data  # noqa: B018
        event.metadata  # noqa: B018
    return len(events)


class RawSystem(System):
    """The raw baselines: read_at(after, page) returns decoded rows, position first."""

    def read_at(self, after: int, page: int) -> list[Any]:
        raise NotImplementedError

    def read_all_pages(self, page: int) -> int:
        n, after = 0, 0
        while True:
            rows = self.read_at(after, page)
            n += len(rows)
            if len(rows) < page:
                return n
            after = rows[-1][0]


class RawSQLite(RawSystem):
    """sqlite3 alone: BEGIN IMMEDIATE, read and move the stream head, executemany, COMMIT."""

    name, dialect = "raw-sqlite", "sqlite"

    def setup(self, scratch: Scratch) -> None:
        path = scratch.sqlite_path()
        with evstore.connect(f"sqlite:///{path}") as store:
            store.migrate()
        self.conn = sqlite_connect(path)

    def append(self, batch: Batch) -> None:
        conn = self.conn
        n = len(batch.events)
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT version FROM stream WHERE stream_id = ?", (batch.stream,)
            ).fetchone()
            current = row[0] if row else 0
            if current != batch.start:
                raise RuntimeError("wrong expected version")
            if row is None:
                conn.execute(
                    "INSERT INTO stream (stream_id, version) VALUES (?, ?)", (batch.stream, n)
                )
            else:
                conn.execute(
                    "UPDATE stream SET version = ? WHERE stream_id = ?", (current + n, batch.stream)
                )
            rows = []
            for k, e in enumerate(batch.events, 1):
                payload, metadata = jdump(e.data), jdump(e.metadata)
                rows.append((e.event_id, batch.stream, current + k, e.type, payload, metadata,
                             raw_digest(e.type, payload, metadata)))
            conn.executemany(
                "INSERT INTO event_store (event_id, stream_id, version, event_type, payload, "
                "metadata, content_digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _decode(self, rows: list[Any]) -> list[tuple[Any, ...]]:
        loads = json.loads
        return [(r[0], r[1], r[2], r[3], r[4], loads(r[5]), loads(r[6]), r[7]) for r in rows]

    _COLUMNS = "position, stream_id, version, event_id, event_type, payload, metadata, recorded_at"

    def read_at(self, after: int, page: int) -> list[tuple[Any, ...]]:
        return self._decode(
            self.conn.execute(
                f"SELECT {self._COLUMNS} FROM event_store WHERE position > ? "
                "ORDER BY position LIMIT ?",
                (after, page),
            ).fetchall()
        )

    def read_stream(self, stream: str) -> int:
        return len(
            self._decode(
                self.conn.execute(
                    f"SELECT {self._COLUMNS} FROM event_store WHERE stream_id = ? "
                    "ORDER BY version",
                    (stream,),
                ).fetchall()
            )
        )

    def teardown(self, scratch: Scratch) -> None:
        self.conn.close()


# The raw PostgreSQL append: one statement, binary array parameters, the version check in the
# stream head, no advisory lock (positions may commit out of order, see W5).
RAW_PG_FIRST = """\
WITH head AS (INSERT INTO stream (stream_id, version) VALUES (%(s)s, %(n)s)
              ON CONFLICT (stream_id) DO NOTHING RETURNING version)
INSERT INTO event_store (event_id, stream_id, version, event_type, payload, metadata,
                         content_digest)
SELECT e.i, %(s)s, head.version - %(n)s + e.o, e.t, e.p::jsonb, e.m::jsonb, e.d
FROM head, unnest(%(ids)b::text[], %(types)b::text[], %(ps)b::text[], %(ms)b::text[],
                  %(ds)b::bytea[])
     WITH ORDINALITY AS e(i, t, p, m, d, o)"""
RAW_PG_NEXT = """\
WITH head AS (UPDATE stream SET version = version + %(n)s
              WHERE stream_id = %(s)s AND version = %(v)s RETURNING version)
INSERT INTO event_store (event_id, stream_id, version, event_type, payload, metadata,
                         content_digest)
SELECT e.i, %(s)s, head.version - %(n)s + e.o, e.t, e.p::jsonb, e.m::jsonb, e.d
FROM head, unnest(%(ids)b::text[], %(types)b::text[], %(ps)b::text[], %(ms)b::text[],
                  %(ds)b::bytea[])
     WITH ORDINALITY AS e(i, t, p, m, d, o)"""
RAW_PG_COLUMNS = (
    "position, stream_id, version, event_id, event_type, payload, metadata, recorded_at"
)


def raw_pg_connect(url: str) -> psycopg.Connection[Any]:
    """The raw baseline's connection. evstore's INSERT guard (event_store_check_insert, once
    per statement) admits only evstore_append(); the baseline declares itself the append
    path for its session, so it still pays the trigger but inserts directly."""
    conn = psycopg.connect(conninfo(url), autocommit=True)
    conn.execute("SET evstore.appending = 'on'")
    return conn


def raw_digest(event_type: str, payload: str, metadata: str) -> bytes:
    """What the raw baselines pay for content digests: SHA-256 of their own JSON text."""
    return hashlib.sha256(f"{event_type}\0{payload}\0{metadata}".encode()).digest()


def raw_pg_append(conn: psycopg.Connection[Any], batch: Batch) -> None:
    events = batch.events
    payloads = [jdump(e.data) for e in events]
    metadatas = [jdump(e.metadata) for e in events]
    cur = conn.execute(
        RAW_PG_NEXT if batch.start else RAW_PG_FIRST,
        {
            "s": batch.stream,
            "n": len(events),
            "v": batch.start,
            "ids": [e.event_id for e in events],
            "types": [e.type for e in events],
            "ps": payloads,
            "ms": metadatas,
            "ds": [
                raw_digest(e.type, p, m)
                for e, p, m in zip(events, payloads, metadatas, strict=True)
            ],
        },
        binary=True,
    )
    if cur.rowcount != len(events):
        raise RuntimeError("wrong expected version")


class RawPostgres(RawSystem):
    """psycopg alone: the single-statement unnest insert with the version check, autocommit."""

    name, dialect = "raw-postgres", "postgres"

    def setup(self, scratch: Scratch) -> None:
        self.url = scratch.pg_database()
        with evstore.connect(self.url) as store:
            store.migrate()
        self.conn = raw_pg_connect(self.url)

    def append(self, batch: Batch) -> None:
        raw_pg_append(self.conn, batch)

    def read_at(self, after: int, page: int) -> list[Any]:
        return self.conn.execute(
            f"SELECT {RAW_PG_COLUMNS} FROM event_store WHERE position > %s "
            "ORDER BY position LIMIT %s",
            (after, page),
            binary=True,
        ).fetchall()

    def read_stream(self, stream: str) -> int:
        return len(
            self.conn.execute(
                f"SELECT {RAW_PG_COLUMNS} FROM event_store WHERE stream_id = %s "
                "ORDER BY version",
                (stream,),
                binary=True,
            ).fetchall()
        )

    def teardown(self, scratch: Scratch) -> None:
        self.conn.close()
        scratch.drop(self.url)


def es_state(e: Event) -> bytes:
    return jdump({"data": e.data, "metadata": e.metadata, "id": e.event_id}).encode()


class EventSourcingSystem(System):
    """The eventsourcing library's application recorder (gap-free notification ids)."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.name = f"es-{dialect}"

    def setup(self, scratch: Scratch) -> None:
        from eventsourcing.persistence import StoredEvent

        self.StoredEvent = StoredEvent
        if self.dialect == "sqlite":
            from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

            self.datastore: Any = SQLiteDatastore(str(scratch.sqlite_path()))
            self.recorder: Any = SQLiteApplicationRecorder(self.datastore)
        else:
            from eventsourcing.postgres import PostgresApplicationRecorder

            self.url = scratch.pg_database()
            self.datastore = es_pg_datastore(self.url)
            self.recorder = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()

    def append(self, batch: Batch) -> None:
        stream = uuid.UUID(batch.stream)
        se = self.StoredEvent
        self.recorder.insert_events(
            [se(stream, batch.start + k, e.type, es_state(e))
             for k, e in enumerate(batch.events, 1)]
        )

    def read_all_pages(self, page: int) -> int:
        n, start = 0, 1
        loads = json.loads
        while True:
            rows = self.recorder.select_notifications(start, page)
            for r in rows:
                loads(r.state)
            n += len(rows)
            if len(rows) < page:
                return n
            start = rows[-1].id + 1

    def read_stream(self, stream: str) -> int:
        rows = self.recorder.select_events(uuid.UUID(stream))
        for r in rows:
            json.loads(r.state)
        return len(rows)

    def teardown(self, scratch: Scratch) -> None:
        self.datastore.close()
        if self.dialect == "postgres":
            scratch.drop(self.url)


def es_pg_datastore(url: str) -> Any:
    from eventsourcing.postgres import PostgresDatastore

    u = parse_url(url)
    info = psycopg.conninfo.conninfo_to_dict(conninfo(url))
    return PostgresDatastore(
        dbname=u.database or "postgres",
        host=str(info.get("host", "127.0.0.1")),
        port=str(info.get("port", 5432)),
        user=str(info.get("user", "postgres")),
        password=str(info.get("password", "")),
    )


def make_system(name: str) -> System:
    if name.startswith("evstore-"):
        dialect = name.split("-")[1]
        return EvstoreSystem(dialect, drop_gin=name.endswith("-nogin"))
    if name == "raw-sqlite":
        return RawSQLite()
    if name == "raw-postgres":
        return RawPostgres()
    if name.startswith("es-"):
        return EventSourcingSystem(name.split("-")[1])
    raise SystemExit(f"bench: unknown system {name!r}; choose from {', '.join(ALL_SYSTEMS)}")


def eventsourcing_installed() -> bool:
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        return False
    return True


# -- measurements ---------------------------------------------------------------------------


@dataclass
class Results:
    """Every single measurement: (workload, system) -> list of values, and their units."""

    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    notes: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def add(self, workload: str, system: str, value: float, unit: str) -> None:
        self.values.setdefault((workload, system), []).append(value)
        self.units[workload] = unit

    def note(self, workload: str, system: str, text: str) -> None:
        self.notes.setdefault((workload, system), []).append(text)

    def median(self, workload: str, system: str) -> float | None:
        v = self.values.get((workload, system))
        return statistics.median(v) if v else None


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    gc.collect()
    start = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - start


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


# -- W5: four writer processes and a tailer (PostgreSQL) --------------------------------------


def w5_writer(
    system: str, url: str, writer: int, batch: int, seconds: float, pool: int, ready: Any,
    go: Any, out: Any,
) -> None:
    rng = random.Random(1000 + writer)
    streams = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20)]
    heads = dict.fromkeys(streams, 0)
    # Events are made before the clock starts, so the 2 cores go to appending, not to making
    # test data; a writer that uses up its pool stops early and says so.
    made = [make_event(rng, k) for k in range(pool)]
    appended = 0
    store: Any = None
    conn: Any = None
    recorder: Any = None
    if system.startswith("evstore-postgres"):
        store = evstore.connect(url)
    elif system == "raw-postgres":
        conn = raw_pg_connect(url)
    else:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.postgres import PostgresApplicationRecorder

        recorder = PostgresApplicationRecorder(es_pg_datastore(url))
    ready.put(writer)
    go.wait()
    deadline = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < deadline:
        if (seq + 1) * batch > len(made):
            print(f"W5 writer {writer}: used all {pool} events; raise --w5-pool", flush=True)
            break
        stream = streams[seq % len(streams)]
        events = made[seq * batch : (seq + 1) * batch]
        b = Batch(stream, heads[stream], events)
        if store is not None:
            store.append(
                stream,
                [NewEvent(e.type, e.data, e.metadata, e.event_id) for e in events],
                expected_version=b.start if b.start else evstore.NO_STREAM,
            )
        elif conn is not None:
            raw_pg_append(conn, b)
        else:
            sid = uuid.UUID(stream)
            recorder.insert_events(
                [StoredEvent(sid, b.start + k, e.type, es_state(e))
                 for k, e in enumerate(events, 1)]
            )
        heads[stream] += batch
        appended += batch
        seq += 1
    out.put(appended)


def w5_tail(system: str, url: str, done: threading.Event) -> list[int]:
    """Follow the log the way each system offers, until the writers are done and it is at
    the head; returns the positions delivered, in delivery order."""
    seen: list[int] = []
    if system.startswith("evstore-postgres"):
        store = evstore.connect(url)
        tail = store.tail(poll_interval=0.1)

        def stopper() -> None:
            done.wait()
            head = store_head(url)
            while tail.position < head:
                time.sleep(0.05)
            tail.stop()

        threading.Thread(target=stopper, daemon=True).start()
        for event in tail:
            seen.append(event.position)
        store.close()
        return seen
    if system == "raw-postgres":
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            last = 0
            while True:
                finished = done.is_set()
                rows = conn.execute(
                    f"SELECT {RAW_PG_COLUMNS} FROM event_store WHERE position > %s "
                    "ORDER BY position LIMIT 500",
                    (last,),
                    binary=True,
                ).fetchall()
                seen.extend(r[0] for r in rows)
                if rows:
                    last = rows[-1][0]
                elif finished:
                    return seen
                else:
                    time.sleep(0.01)
    from eventsourcing.postgres import PostgresApplicationRecorder

    datastore = es_pg_datastore(url)
    recorder = PostgresApplicationRecorder(datastore)
    last = 0
    while True:
        finished = done.is_set()
        rows = recorder.select_notifications(last + 1, 500)
        for r in rows:
            json.loads(r.state)  # decoded, as evstore's tail and the raw tailer deliver it
        seen.extend(r.id for r in rows)
        if rows:
            last = rows[-1].id
        elif finished:
            datastore.close()
            return seen
        else:
            time.sleep(0.01)


def store_head(url: str) -> int:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        row = conn.execute("SELECT max(position) FROM event_store").fetchone()
        return int(row[0] or 0) if row else 0


def run_w5(system_name: str, scratch: Scratch, args: argparse.Namespace, results: Results) -> None:
    system = make_system(system_name)
    system.setup(scratch)
    url = system.url
    try:
        ctx = multiprocessing.get_context("spawn")
        go = ctx.Event()
        ready = ctx.Queue()
        out = ctx.Queue()
        procs = [
            ctx.Process(
                target=w5_writer,
                args=(system_name, url, w, args.w5_batch, args.w5_seconds, args.w5_pool,
                      ready, go, out),
            )
            for w in range(args.w5_writers)
        ]
        for p in procs:
            p.start()
        for _ in procs:  # every writer connected and holding its events
            ready.get(timeout=300)
        done = threading.Event()
        seen: list[int] = []
        tailer = threading.Thread(target=lambda: seen.extend(w5_tail(system_name, url, done)))
        tailer.start()
        start = time.perf_counter()
        go.set()
        appended = sum(out.get(timeout=args.w5_seconds + 60) for _ in procs)
        elapsed = time.perf_counter() - start
        for p in procs:
            p.join()
        done.set()
        tailer.join(timeout=120)
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            if system_name == "es-postgres":
                rows = conn.execute("SELECT notification_id FROM stored_events").fetchall()
            else:
                rows = conn.execute("SELECT position FROM event_store").fetchall()
        committed = {r[0] for r in rows}
        if len(committed) != appended:
            raise RuntimeError(f"{system_name}: {appended} appended, {len(committed)} stored")
        missed = len(committed - set(seen))
        out_of_order = sum(1 for a, b in itertools.pairwise(seen) if b <= a)
        results.add("W5", system_name, appended / elapsed, "events/s")
        results.add("W5 missed", system_name, missed, "events")
        if out_of_order:
            results.note("W5", system_name, f"{out_of_order} deliveries out of order")
    finally:
        system.teardown(scratch)


# -- W6: growth ---------------------------------------------------------------------------


def fill(store: evstore.Store, rng: random.Random, events: int, chunk: int = 1000) -> None:
    """Grow the log quickly: new streams of up to `chunk` events, one append each."""
    template = [make_event(rng, k) for k in range(chunk)]
    while events > 0:
        n = min(chunk, events)
        store.append(
            str(uuid.uuid4()),
            [NewEvent(e.type, e.data, e.metadata) for e in template[:n]],
            expected_version=evstore.NO_STREAM,
        )
        events -= n


def mid_read(store: evstore.Store, after: int, page: int, pages: int) -> float:
    """Events/s reading `pages` pages from `after` on, data decoded."""
    gc.collect()
    start = time.perf_counter()
    n = 0
    for _ in range(pages):
        got = store.read_all(after, page)
        n += touch(got)
        if len(got) < page:
            break
        after = got[-1].position
    return n / (time.perf_counter() - start)


def replay_peak_mb(url: str) -> tuple[float, float, int]:
    """Peak resident memory (MB) of a fresh process before and after it replays the whole
    log into a projection counting events per type, and the number of events applied.

    Read from VmHWM in /proc/self/status: getrusage's ru_maxrss would also count the memory
    of this (large) process, which Linux carries over into a child across fork and exec."""
    code = (
        "import sys, evstore\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n"
        "class Count:\n"
        "    name = 'bench_replay'\n"
        "    def __init__(self): self.by_type = {}\n"
        "    def apply(self, tx, event):\n"
        "        event.data\n"
        "        self.by_type[event.type] = self.by_type.get(event.type, 0) + 1\n"
        "with evstore.connect(sys.argv[1]) as store:\n"
        "    before = hwm()\n"
        "    n = store.replay(Count(), batch_size=1000)\n"
        "print(before, hwm(), n)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def run_w6(
    dialect: str, scratch: Scratch, w1: list[Batch], args: argparse.Namespace, results: Results,
    rng: random.Random,
) -> None:
    system = EvstoreSystem(dialect)
    system.setup(scratch)
    name = system.name
    store = system.store
    try:
        w1_events = sum(len(b.events) for b in w1)
        # Small log: W1's rate on an empty log, a read from the start, the replay's memory.
        def do_w1_empty() -> int:
            for b in w1:
                system.append(b)
            return w1_events

        n, s = timed(do_w1_empty)
        results.add("W6 W1 @empty", name, n / s, "events/s")
        small = store.head_position()
        _, mb_small, n_small = replay_peak_mb(system.url)
        results.add("W6 replay MB @small", name, mb_small, "MB")
        results.note("W6 replay MB @small", name, f"{n_small:,} events replayed")
        # Grow to --growth events, then W1 again on top (fresh streams, fresh ids).
        print(f"  {name}: growing the log from {small:,} to {args.growth:,} events", flush=True)
        fill(store, rng, max(0, args.growth - small - w1_events))
        for rep in range(args.reps):
            fresh = make_batches(random.Random(9000 + rep), args.streams,
                                 args.events // args.streams, args.batch)

            def do_w1(batches: list[Batch] = fresh) -> int:
                for b in batches:
                    system.append(b)
                return sum(len(b.events) for b in batches)

            n, s = timed(do_w1)
            results.add("W6 W1 @large", name, n / s, "events/s")
        head = store.head_position()
        results.note("W6 W1 @large", name, f"log held {head - w1_events * args.reps:,} to "
                     f"{head:,} events")
        # Reads of the same length from the first and from the middle position of the full
        # log, alternating, so both see the same cache and the same machine.
        for _ in range(args.reps):
            results.add("W6 read @start", name, mid_read(store, 0, args.page, args.w6_pages),
                        "events/s")
            results.add("W6 read @middle", name,
                        mid_read(store, head // 2, args.page, args.w6_pages), "events/s")
        before, mb_large, n_large = replay_peak_mb(system.url)
        results.add("W6 replay MB @large", name, mb_large, "MB")
        results.note("W6 replay MB @large", name,
                     f"{n_large:,} events replayed; {before:.0f} MB before the replay began")
    finally:
        system.teardown(scratch)


# -- report -------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "MB":
        return f"{value:.0f}"
    if unit == "events" or value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def report(results: Results, systems: Sequence[str]) -> str:
    lines = []
    header = f"{'workload':<22}{'system':<24}{'median':>12}{'min':>12}{'max':>12}  " \
             f"{'vs raw':>7}{'vs es':>7}"
    lines.append(header)
    lines.append("-" * len(header))
    workloads = list(dict.fromkeys(w for w, _ in results.values))
    for workload in workloads:
        unit = results.units[workload]
        for system in [*systems, *[s for w, s in results.values if s not in systems]]:
            vals = results.values.get((workload, system))
            if not vals:
                continue
            med = statistics.median(vals)
            dialect = "postgres" if "postgres" in system else "sqlite"
            ratios = []
            for other in (BASELINE[dialect], PEER[dialect]):
                base = results.median(workload, other)
                ok = base and other != system and system.startswith("evstore") \
                    and not workload.startswith("W5 missed")
                ratios.append(f"{med / base:7.2f}" if ok and base else f"{'':7}")
            lines.append(
                f"{workload:<22}{system:<24}{fmt(med, unit):>12}{fmt(min(vals), unit):>12}"
                f"{fmt(max(vals), unit):>12}  {''.join(ratios)}"
            )
            for text in results.notes.get((workload, system), []):
                lines.append(f"{'':<22}  note: {text}")
        runs = sorted({len(v) for (w, _), v in results.values.items() if w == workload})
        lines.append(f"{'':<22}({unit}; runs per system: {', '.join(map(str, runs))})")
    # Derived W6 figures: growth ratios.
    for system in systems:
        large = results.median("W6 W1 @large", system)
        for base_name in ("W1", "W6 W1 @empty"):
            base = results.median(base_name, system)
            if large and base:
                lines.append(f"W6 {system}: append rate @large / {base_name} median = "
                             f"{large / base:.2f}")
        start = results.median("W6 read @start", system)
        middle = results.median("W6 read @middle", system)
        if start and middle:
            lines.append(f"W6 {system}: read @middle / read @start = {middle / start:.2f}")
    return "\n".join(lines)


def environment(pg_dsn: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "evstore": evstore.__version__,
        "psycopg": psycopg.__version__,
    }
    try:
        import eventsourcing

        env["eventsourcing"] = getattr(eventsourcing, "__version__", "installed")
    except ImportError:
        env["eventsourcing"] = None
    with psycopg.connect(conninfo(pg_dsn), autocommit=True) as conn:
        env["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        for setting in ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes",
                        "shared_buffers"):
            env[f"pg.{setting}"] = conn.execute(f"SHOW {setting}").fetchone()[0]  # type: ignore[index]
    env["sqlite.journal_mode"] = "wal"
    env["sqlite.synchronous"] = "FULL (evstore and raw set it; eventsourcing keeps the default)"
    with tempfile.TemporaryDirectory() as d:
        conn = sqlite3.connect(Path(d) / "x.db")
        env["sqlite.default_synchronous"] = conn.execute("PRAGMA synchronous").fetchone()[0]
        conn.close()
    return env


# -- main -----------------------------------------------------------------------------------


@contextmanager
def scratch_space(args: argparse.Namespace) -> Iterator[Scratch]:
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="evstore-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Scratch(args.pg_dsn, folder)
    try:
        yield scratch
    finally:
        scratch.drop_all()
        for f in folder.glob("bench_*.db*"):
            f.unlink()
        if not args.dir:
            folder.rmdir()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-dsn", default=os.environ.get(
        "EVSTORE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a server where scratch databases may be created (default: %(default)s)")
    parser.add_argument("--dir", help="folder for the SQLite files (default: a temporary one)")
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                        help="comma-separated; also evstore-postgres-nogin (GIN indexes dropped)")
    parser.add_argument("--workloads", default="W1,W2,W3,W4,W5,W6",
                        help="comma-separated subset of W1..W6 (W2-W4 run on W1's data)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default: 3)")
    parser.add_argument("--events", type=int, default=100_000, help="W1 events")
    parser.add_argument("--streams", type=int, default=1_000, help="W1 streams")
    parser.add_argument("--batch", type=int, default=100, help="W1 events per append")
    parser.add_argument("--singles", type=int, default=5_000, help="W2 events")
    parser.add_argument("--single-streams", type=int, default=100, help="W2 streams")
    parser.add_argument("--page", type=int, default=1_000, help="W3/W6 page size")
    parser.add_argument("--w5-writers", type=int, default=4)
    parser.add_argument("--w5-batch", type=int, default=10)
    parser.add_argument("--w5-seconds", type=float, default=10.0)
    parser.add_argument("--w5-pool", type=int, default=120_000,
                        help="events each W5 writer makes before the clock starts")
    parser.add_argument("--growth", type=int, default=1_000_000, help="W6 log size")
    parser.add_argument("--w6-pages", type=int, default=20, help="W6 pages per read")
    parser.add_argument("--w6-dialects", default="sqlite,postgres")
    parser.add_argument("--json", metavar="PATH", help="write every measurement here")
    parser.add_argument("--pg-dir", metavar="DIR",
                        help="migrations the evstore-postgres systems apply instead of "
                             "evstore's own (to price a schema variant)")
    parser.add_argument("--sqlite-dir", metavar="DIR",
                        help="migrations the evstore-sqlite system applies instead of "
                             "evstore's own")
    args = parser.parse_args(argv)
    if args.pg_dir:
        MIGRATION_DIRS["postgres"] = args.pg_dir
    if args.sqlite_dir:
        MIGRATION_DIRS["sqlite"] = args.sqlite_dir

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        make_system(s)  # refuses unknown names
    if not eventsourcing_installed():
        dropped = [s for s in systems if s.startswith("es-")]
        if dropped:
            print(f"eventsourcing is not installed (pip install -e '.[bench]'); skipping "
                  f"{', '.join(dropped)}", file=sys.stderr)
        systems = [s for s in systems if not s.startswith("es-")]
    workloads = {w.strip().upper() for w in args.workloads.split(",")}
    if args.events % args.streams or (args.events // args.streams) % args.batch:
        parser.error("--events must split into --streams streams of whole --batch appends")

    env = environment(args.pg_dsn)
    print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    results = Results()
    rng = random.Random(42)
    w1 = make_batches(rng, args.streams, args.events // args.streams, args.batch)
    w2 = make_singles(rng, w1, args.singles, args.single_streams)
    begun = time.perf_counter()

    with scratch_space(args) as scratch:
        if workloads & {"W1", "W2", "W3", "W4"}:
            for rep in range(args.reps):
                order = systems[:]
                random.Random(rep).shuffle(order)  # spread the machine's noise over systems
                for name in order:
                    print(f"rep {rep + 1}/{args.reps}: W1-W4 {name}", flush=True)
                    run_core(make_system(name), scratch, w1, w2, args, results,
                             random.Random(rep), workloads)
        if "W5" in workloads:
            w5_systems = [s for s in systems if "postgres" in s]
            for rep in range(args.reps):
                for name in w5_systems:
                    print(f"rep {rep + 1}/{args.reps}: W5 {name}", flush=True)
                    run_w5(name, scratch, args, results)
        if "W6" in workloads:
            for dialect in [d.strip() for d in args.w6_dialects.split(",") if d.strip()]:
                if f"evstore-{dialect}" not in systems:
                    continue
                print(f"W6 evstore-{dialect}", flush=True)
                run_w6(dialect, scratch, w1, args, results, random.Random(7))

    print()
    print(report(results, systems))
    print(f"\ntotal {time.perf_counter() - begun:.0f} s; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "environment": env,
            "arguments": vars(args),
            "measurements": [
                {"workload": w, "system": s, "unit": results.units[w], "values": v,
                 "median": statistics.median(v), "min": min(v), "max": max(v),
                 "notes": results.notes.get((w, s), [])}
                for (w, s), v in results.values.items()
            ],
        }, indent=2))
        print(f"measurements written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
