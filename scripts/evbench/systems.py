"""The contenders: evstore, the raw drivers and eventsourcing, each doing the same
operations on a database of its own."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

import psycopg

import evstore
from evbench.data import Batch, Event, jdump
from evbench.databases import Scratch, es_pg_datastore, raw_digest, raw_pg_connect, sqlite_connect
from evbench.ratios import dialect_of
from evstore import NewEvent
from evstore.urls import parse_url

ALL_SYSTEMS = (
    "evstore-sqlite",
    "raw-sqlite",
    "es-sqlite",
    "evstore-postgres",
    "raw-postgres",
    "es-postgres",
    "es-sqlite-bytes",
    "es-postgres-bytes",
)
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "WT")
# Also accepted, not run unless named: the PostgreSQL store without its two GIN indexes.
EXTRA_SYSTEMS = ("evstore-postgres-nogin",)


class System:
    """One contender: the same five operations on its own database."""

    name = ""
    dialect = ""
    url = ""  # the database URL, once set up

    def setup(self, scratch: Scratch) -> None: ...

    def prepare(self, batches: list[Batch]) -> None:
        """Work a system may do before the clock starts (eventsourcing's limit: its states
        encoded in advance)."""

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
        self.url = f"sqlite:///{path}"
        with evstore.connect(self.url) as store:
            store.migrate()
        self.conn = sqlite_connect(path)

    def append(self, batch: Batch) -> None:
        raw_sqlite_append(self.conn, batch)

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


def raw_sqlite_append(conn: sqlite3.Connection, batch: Batch) -> None:
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
    """The eventsourcing library's application recorder (gap-free notification ids).

    pre_encoded (the es-*-bytes systems): its limit. Each event's state is encoded before
    the clock starts and handed over as bytes, and reads hand the bytes back undecoded, so
    it pays for nothing but its recorder and the database."""

    def __init__(self, dialect: str, pre_encoded: bool = False) -> None:
        self.dialect = dialect
        self.pre_encoded = pre_encoded
        self.name = f"es-{dialect}" + ("-bytes" if pre_encoded else "")
        self.states: dict[str, bytes] = {}

    def setup(self, scratch: Scratch) -> None:
        from eventsourcing.persistence import StoredEvent

        self.StoredEvent = StoredEvent
        if self.dialect == "sqlite":
            path = scratch.sqlite_path()
            self.url = f"sqlite:///{path}"
            self.datastore: Any = es_sqlite_datastore(self.url)
        else:
            self.url = scratch.pg_database()
            self.datastore = es_pg_datastore(self.url)
        self.recorder: Any = es_recorder(self.dialect, self.datastore)
        self.recorder.create_table()

    def prepare(self, batches: list[Batch]) -> None:
        if self.pre_encoded:
            self.states.update((e.event_id, es_state(e)) for b in batches for e in b.events)

    def state(self, e: Event) -> bytes:
        return self.states[e.event_id] if self.pre_encoded else es_state(e)

    def append(self, batch: Batch) -> None:
        stream = uuid.UUID(batch.stream)
        se = self.StoredEvent
        state = self.state
        self.recorder.insert_events(
            [se(stream, batch.start + k, e.type, state(e))
             for k, e in enumerate(batch.events, 1)]
        )

    def read_all_pages(self, page: int) -> int:
        n, start = 0, 1
        loads = json.loads
        decode = not self.pre_encoded
        while True:
            rows = self.recorder.select_notifications(start, page)
            if decode:
                for r in rows:
                    loads(r.state)
            n += len(rows)
            if len(rows) < page:
                return n
            start = rows[-1].id + 1

    def read_stream(self, stream: str) -> int:
        rows = self.recorder.select_events(uuid.UUID(stream))
        if not self.pre_encoded:
            for r in rows:
                json.loads(r.state)
        return len(rows)

    def teardown(self, scratch: Scratch) -> None:
        self.datastore.close()
        if self.dialect == "postgres":
            scratch.drop(self.url)


def make_system(name: str) -> System:
    if name not in ALL_SYSTEMS and name not in EXTRA_SYSTEMS:
        raise SystemExit(f"bench: unknown system {name!r}; choose from "
                         f"{', '.join((*ALL_SYSTEMS, *EXTRA_SYSTEMS))}")
    dialect = dialect_of(name)
    if name.startswith("evstore-"):
        return EvstoreSystem(dialect, drop_gin=name.endswith("-nogin"))
    if name == "raw-sqlite":
        return RawSQLite()
    if name == "raw-postgres":
        return RawPostgres()
    return EventSourcingSystem(dialect, pre_encoded=name.endswith("-bytes"))


def es_sqlite_datastore(url: str) -> Any:
    from eventsourcing.sqlite import SQLiteDatastore

    path = parse_url(url).sqlite_path
    assert path is not None
    return SQLiteDatastore(path)


def es_recorder(dialect: str, datastore: Any) -> Any:
    """The application recorder, the one every es-* workload writes and reads through."""
    if dialect == "sqlite":
        from eventsourcing.sqlite import SQLiteApplicationRecorder

        return SQLiteApplicationRecorder(datastore)
    from eventsourcing.postgres import PostgresApplicationRecorder

    return PostgresApplicationRecorder(datastore)


def es_datastore(url: str, pool_size: int = 1) -> Any:
    if url.startswith("sqlite"):
        return es_sqlite_datastore(url)
    return es_pg_datastore(url, pool_size=pool_size)


def eventsourcing_installed() -> bool:
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        return False
    return True

