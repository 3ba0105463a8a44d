"""What the latency, scaling and threads workloads (W7, W8, WT) open for each system: a writer,
a follower (the tail) and a projector (a checkpointed reader), each the way that system offers
it, opened inside the process or thread that uses it.

  evstore   store.append; store.tail; store.tail for the wake-up and store.run_projection
            for the work, the checkpoint committed with each batch.
  raw       the baseline's own append; a polling loop on event_store (position > last,
            sleeping --poll seconds when it finds nothing); the same loop upserting its
            position into evstore's subscription table.
  es        the application recorder's insert_events; on PostgreSQL recorder.subscribe()
            (LISTEN/NOTIFY), on SQLite, which has no subscription, select_notifications in
            the same polling loop as raw; a tracking recorder's insert_tracking after each
            event, as eventsourcing's ProjectionRunner records one per event processed.

Positions are evstore's position column and eventsourcing's notification id. Timestamps are
CLOCK_MONOTONIC nanoseconds, one clock for every process on the machine.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

import evstore
from evbench.data import Batch, Event
from evbench.databases import conninfo, raw_pg_connect, sqlite_connect
from evbench.ratios import dialect_of
from evbench.systems import (
    es_datastore,
    es_recorder,
    es_state,
    raw_pg_append,
    raw_sqlite_append,
)
from evstore import NewEvent
from evstore.urls import parse_url

PROJECTION = "bench_projection"
Delivered = Callable[[int, str], None]  # (position, event_id) as a follower delivers it
Committed = Callable[[list[tuple[int, str]]], None]  # events whose checkpoint committed


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def sqlite_file(url: str) -> str:
    path = parse_url(url).sqlite_path
    assert path is not None
    return path


def kind_of(system: str) -> str:
    """evstore, raw or es."""
    return system.split("-")[0]


# -- writers ----------------------------------------------------------------------------------


class Writer:
    """Appends batches; prepare() does what may happen before the clock starts."""

    def prepare(self, events: Sequence[Event]) -> None:
        """Nothing to do ahead of time, except for eventsourcing handed bytes."""

    def append(self, batch: Batch) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class EvstoreWriter(Writer):
    """One Store; threads may share it (a pool of pool_size connections on PostgreSQL)."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.store = evstore.connect(url, pool_size=pool_size)

    def append(self, batch: Batch) -> None:
        self.store.append(
            batch.stream,
            [NewEvent(e.type, e.data, e.metadata, e.event_id) for e in batch.events],
            expected_version=batch.start if batch.start else evstore.NO_STREAM,
        )

    def close(self) -> None:
        self.store.close()


class RawSQLiteWriter(Writer):
    """One sqlite3 connection; threads that share it take turns, as they do on evstore's."""

    def __init__(self, url: str) -> None:
        self.conn = sqlite_connect(sqlite_file(url))
        self.lock = threading.Lock()

    def append(self, batch: Batch) -> None:
        with self.lock:
            raw_sqlite_append(self.conn, batch)

    def close(self) -> None:
        self.conn.close()


class RawPostgresWriter(Writer):
    """One connection, or for threads a psycopg_pool pool of them, as evstore's Store has."""

    def __init__(self, url: str, pool_size: int = 1) -> None:
        self.pool: Any = None
        self.conn: Any = None
        if pool_size > 1:
            from psycopg_pool import ConnectionPool

            def configure(conn: psycopg.Connection[Any]) -> None:
                conn.autocommit = True
                conn.execute("SET evstore.appending = 'on'")

            self.pool = ConnectionPool(conninfo(url), min_size=pool_size, max_size=pool_size,
                                       configure=configure, open=True)
            self.pool.wait()
        else:
            self.conn = raw_pg_connect(url)

    def append(self, batch: Batch) -> None:
        if self.pool is None:
            raw_pg_append(self.conn, batch)
            return
        with self.pool.connection() as conn:
            raw_pg_append(conn, batch)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        else:
            self.conn.close()


class EsWriter(Writer):
    """The application recorder; threads share one, as eventsourcing's documentation has an
    application share its recorder. pre_encoded: states encoded in prepare()."""

    def __init__(self, url: str, pre_encoded: bool, threads: int = 1) -> None:
        from eventsourcing.persistence import StoredEvent

        self.stored_event = StoredEvent
        self.datastore = es_datastore(url, pool_size=threads)
        self.recorder = es_recorder(parse_url(url).dialect, self.datastore)
        self.pre_encoded = pre_encoded
        self.states: dict[str, bytes] = {}

    def prepare(self, events: Sequence[Event]) -> None:
        if self.pre_encoded:
            self.states.update((e.event_id, es_state(e)) for e in events)

    def append(self, batch: Batch) -> None:
        stream = uuid.UUID(batch.stream)
        se = self.stored_event
        states = self.states
        self.recorder.insert_events(
            [se(stream, batch.start + k, e.type,
                states[e.event_id] if self.pre_encoded else es_state(e))
             for k, e in enumerate(batch.events, 1)]
        )

    def close(self) -> None:
        self.datastore.close()


def open_writer(system: str, url: str, threads: int = 1) -> Writer:
    """A writer for `system` on the database at `url`; threads > 1: one that many threads
    share (a pool of that many connections on PostgreSQL)."""
    kind = kind_of(system)
    if kind == "evstore":
        return EvstoreWriter(url, pool_size=max(threads, 1))
    if kind == "raw":
        if dialect_of(system) == "sqlite":
            return RawSQLiteWriter(url)
        return RawPostgresWriter(url, pool_size=threads)
    return EsWriter(url, pre_encoded=system.endswith("-bytes"), threads=threads)


# -- followers --------------------------------------------------------------------------------


class Follower:
    """Delivers every committed event in order until stop() is called from another thread."""

    def __init__(self, system: str, url: str, poll: float) -> None:
        self.system, self.url, self.poll = system, url, poll
        self.stopped = threading.Event()
        self._stop_hook: Callable[[], None] | None = None

    def stop(self) -> None:
        self.stopped.set()
        if self._stop_hook is not None:
            self._stop_hook()

    def run(self, deliver: Delivered) -> None:
        kind = kind_of(self.system)
        if kind == "evstore":
            self._evstore(deliver)
        elif kind == "raw":
            self._poll(raw_reader(self.url), deliver)
        elif dialect_of(self.system) == "postgres":
            self._es_subscription(deliver)
        else:
            self._poll(es_reader(self.url), deliver)

    def _evstore(self, deliver: Delivered) -> None:
        with evstore.connect(self.url) as store:
            tail = store.tail(poll_interval=self.poll)
            self._stop_hook = tail.stop
            if self.stopped.is_set():
                return
            for event in tail:
                event.data  # noqa: B018 -- decoded, as the other followers deliver it
                event.metadata  # noqa: B018
                deliver(event.position, event.event_id)

    def _poll(self, reader: Reader, deliver: Delivered) -> None:
        last = 0
        try:
            while not self.stopped.is_set():
                rows = reader.after(last, 500)
                for position, event_id in rows:
                    deliver(position, event_id)
                if rows:
                    last = rows[-1][0]
                else:
                    self.stopped.wait(self.poll)
        finally:
            reader.close()

    def _es_subscription(self, deliver: Delivered, datastore: Any = None) -> None:
        own = datastore is None
        datastore = datastore or es_datastore(self.url, pool_size=2)  # LISTEN + reads
        recorder = es_recorder("postgres", datastore)
        try:
            with recorder.subscribe(gt=None) as subscription:
                self._stop_hook = subscription.stop
                if self.stopped.is_set():
                    return
                for n in subscription:
                    deliver(n.id, json.loads(n.state)["id"])
        finally:
            if own:
                datastore.close()


class Reader:
    """One page of (position, event_id) after a position, data decoded as a reader would."""

    def after(self, last: int, limit: int) -> list[tuple[int, str]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class RawSQLiteReader(Reader):
    def __init__(self, url: str) -> None:
        self.conn = sqlite_connect(sqlite_file(url))

    def after(self, last: int, limit: int) -> list[tuple[int, str]]:
        rows = self.conn.execute(
            "SELECT position, event_id, payload, metadata FROM event_store "
            "WHERE position > ? ORDER BY position LIMIT ?", (last, limit)).fetchall()
        loads = json.loads
        for r in rows:
            loads(r[2])
            loads(r[3])
        return [(r[0], r[1]) for r in rows]

    def close(self) -> None:
        self.conn.close()


class RawPostgresReader(Reader):
    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(conninfo(url), autocommit=True)

    def after(self, last: int, limit: int) -> list[tuple[int, str]]:
        # jsonb comes back decoded: psycopg loads it.
        rows = self.conn.execute(
            "SELECT position, event_id, payload, metadata FROM event_store "
            "WHERE position > %s ORDER BY position LIMIT %s", (last, limit), binary=True,
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def close(self) -> None:
        self.conn.close()


class EsReader(Reader):
    def __init__(self, url: str) -> None:
        self.datastore = es_datastore(url)
        self.recorder = es_recorder(parse_url(url).dialect, self.datastore)

    def after(self, last: int, limit: int) -> list[tuple[int, str]]:
        rows = self.recorder.select_notifications(last + 1, limit)
        return [(n.id, json.loads(n.state)["id"]) for n in rows]

    def close(self) -> None:
        self.datastore.close()


class EvstoreReader(Reader):
    def __init__(self, url: str) -> None:
        self.store = evstore.connect(url)

    def after(self, last: int, limit: int) -> list[tuple[int, str]]:
        out = []
        for event in self.store.read_all(last, limit):
            event.data  # noqa: B018
            event.metadata  # noqa: B018
            out.append((event.position, event.event_id))
        return out

    def close(self) -> None:
        self.store.close()


def raw_reader(url: str) -> Reader:
    return RawSQLiteReader(url) if url.startswith("sqlite") else RawPostgresReader(url)


def es_reader(url: str) -> Reader:
    return EsReader(url)


def open_reader(system: str, url: str) -> Reader:
    kind = kind_of(system)
    if kind == "evstore":
        return EvstoreReader(url)
    return raw_reader(url) if kind == "raw" else es_reader(url)


# -- projectors -------------------------------------------------------------------------------


class _Collect:
    """evstore's projection for the latency probe: it notes what each batch applied."""

    name = PROJECTION

    def __init__(self) -> None:
        self.pending: list[tuple[int, str]] = []
        self.last = 0

    def apply(self, tx: Any, event: evstore.RecordedEvent) -> None:
        event.data  # noqa: B018
        self.pending.append((event.position, event.event_id))
        self.last = event.position


class Projector(Follower):
    """Follows the log and commits a checkpoint for what it processed; `committed` hears of
    each event once its checkpoint is durable."""

    def project(self, committed: Committed) -> None:
        kind = kind_of(self.system)
        if kind == "evstore":
            self._evstore_projection(committed)
        elif kind == "raw":
            self._raw_projection(committed)
        else:
            self._es_projection(committed)

    def _evstore_projection(self, committed: Committed) -> None:
        # evstore has no live projection runner: a tail supplies the wake-up and
        # run_projection the exactly-once work, each batch committed with its checkpoint.
        projection = _Collect()

        def flush(_: int) -> None:
            committed(projection.pending)
            projection.pending = []

        with evstore.connect(self.url) as store:
            tail = store.tail(poll_interval=self.poll)
            self._stop_hook = tail.stop
            if self.stopped.is_set():
                return
            for event in tail:
                if event.position > projection.last:
                    store.run_projection(projection, progress=flush)

    def _raw_projection(self, committed: Committed) -> None:
        reader = raw_reader(self.url)
        sqlite = self.url.startswith("sqlite")
        conn: Any = sqlite_connect(sqlite_file(self.url)) if sqlite else \
            psycopg.connect(conninfo(self.url), autocommit=True)
        upsert = ("INSERT INTO subscription (name, position) VALUES ({0}, {0}) "
                  "ON CONFLICT (name) WHERE deleted_at IS NULL "
                  "DO UPDATE SET position = excluded.position").format("?" if sqlite else "%s")
        last = 0
        try:
            while not self.stopped.is_set():
                rows = reader.after(last, 500)
                if not rows:
                    self.stopped.wait(self.poll)
                    continue
                last = rows[-1][0]
                if sqlite:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        conn.execute(upsert, (PROJECTION, last))
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
                else:
                    conn.execute(upsert, (PROJECTION, last))
                committed(rows)
        finally:
            reader.close()
            conn.close()

    def _es_projection(self, committed: Committed) -> None:
        from eventsourcing.persistence import Tracking

        dialect = dialect_of(self.system)
        datastore = es_datastore(self.url, pool_size=3)  # LISTEN, reads, tracking
        if dialect == "sqlite":
            from eventsourcing.sqlite import SQLiteTrackingRecorder

            tracking: Any = SQLiteTrackingRecorder(datastore)
        else:
            from eventsourcing.postgres import PostgresTrackingRecorder

            tracking = PostgresTrackingRecorder(datastore)
        tracking.create_table()

        def processed(position: int, event_id: str) -> None:
            tracking.insert_tracking(Tracking(PROJECTION, position))
            committed([(position, event_id)])

        try:
            if dialect == "postgres":
                self._es_subscription(processed, datastore)
            else:
                self._poll(EsReader(self.url), processed)
        finally:
            datastore.close()


# -- what was committed -----------------------------------------------------------------------


def committed_positions(system: str, url: str) -> list[int]:
    """Every position (notification id) in the system's log, in order."""
    if kind_of(system) == "es":
        sql = "SELECT rowid FROM stored_events ORDER BY rowid" if url.startswith("sqlite") \
            else "SELECT notification_id FROM stored_events ORDER BY notification_id"
    else:
        sql = "SELECT position FROM event_store ORDER BY position"
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_file(url)) as conn:
            return [r[0] for r in conn.execute(sql)]
    with psycopg.connect(conninfo(url), autocommit=True) as pg:
        return [r[0] for r in pg.execute(sql).fetchall()]


def log_size(system: str, url: str) -> int:
    """How many events the system's log holds (a count, not a list: W6 reaches millions)."""
    table = "stored_events" if kind_of(system) == "es" else "event_store"
    sql = f"SELECT count(*) FROM {table}"
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_file(url)) as conn:
            return int(conn.execute(sql).fetchone()[0])
    with psycopg.connect(conninfo(url), autocommit=True) as pg:
        row = pg.execute(sql).fetchone()
        return int(row[0]) if row else 0


def no_skip_violations(seen: Sequence[int], committed: Sequence[int]) -> dict[str, int]:
    """How a delivery differs from 'every committed event exactly once, in order': events
    never delivered, delivered twice, delivered out of order, delivered but not committed."""
    seen_set = set(seen)
    committed_set = set(committed)
    return {
        "missed": len(committed_set - seen_set),
        "repeated": len(seen) - len(seen_set),
        "out_of_order": sum(1 for a, b in itertools.pairwise(seen) if b <= a),
        "unknown": len(seen_set - committed_set),
    }
