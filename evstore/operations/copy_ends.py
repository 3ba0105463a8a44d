"""The two ends of `evstore copy`, one class per dialect: what each reads and how each writes.

Rows cross between them in one neutral form, so any pair of ends works (SQLite to
PostgreSQL, back, and each to itself): JSON as canonical text (events.canonical_json, what the
content digest covers), times as UTC datetimes, digests as bytes. Each end reads with its
driver's fast path and writes with it: binary COPY on PostgreSQL, executemany in one
transaction per batch on SQLite. The statements are the copy_* blocks of sql/queries.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper, Loader

from evstore.dialects.queries import load
from evstore.events import canonical_json, decode_json
from evstore.urls import DatabaseURL, Dialect

# (position, event_id, stream_id, version, event_type, payload, metadata, recorded_at,
#  content_digest, chain_digest). recorded_at is a datetime, or on SQLite the column's
# ISO-8601 text, kept as text on its way to either dialect (see as_time).
EventRow = tuple[
    int, str, str, int, str, str, str, datetime | str, bytes | None, bytes | None
]
# The same without payload and metadata: what verification compares.
KeyRow = tuple[int, str, str, int, str, datetime | str, bytes | None, bytes | None]
# (stream_id, version, metadata, created_at, updated_at)
StreamRow = tuple[str, int, str | None, datetime, datetime]
# (subscription_id, name, position, created_at, updated_at, deleted_at)
SubscriptionRow = tuple[int, str, int, datetime, datetime, datetime | None]
# (stream_id, version, state, created_at)
SnapshotRow = tuple[str, int, str, datetime]

PAGE = 5000  # rows fetched at a time by the cursors of the small tables


class End(Protocol):
    """One database taking part in a copy."""

    dialect: Dialect
    url: DatabaseURL

    def close(self) -> None: ...

    def run(self, name: str, **params: Any) -> list[tuple[Any, ...]]: ...

    def is_standby(self) -> bool:
        """Whether the server is a hot standby, which can be copied from but not into."""
        ...

    def consistent_read(self) -> Any:
        """A context in which every read sees the same moment of the database."""
        ...

    def write_transaction(self) -> Any: ...

    def events(self, after: int, through: int, limit: int) -> list[EventRow]: ...

    def keys(self, after: int, through: int, limit: int) -> list[KeyRow]: ...

    def streams(self) -> Iterator[StreamRow]: ...

    def subscriptions(self) -> Iterator[SubscriptionRow]: ...

    def snapshots(self) -> Iterator[SnapshotRow]: ...

    def encode_events(self, rows: Sequence[EventRow]) -> Any:
        """The rows as this end's insert takes them; done ahead of the write, on another
        thread than the one that writes."""
        ...

    def insert_encoded(self, data: Any) -> None: ...

    def insert_streams(self, rows: Iterable[StreamRow]) -> None: ...

    def insert_subscriptions(self, rows: Iterable[SubscriptionRow]) -> None: ...

    def insert_snapshots(self, rows: Iterable[SnapshotRow]) -> None: ...

    def finish(self) -> None:
        """Ready the destination for appends: the next one draws the position after the
        highest copied one."""
        ...


def open_end(url: DatabaseURL, lock_timeout: float = 30.0) -> End:
    if url.dialect == "sqlite":
        return SQLiteEnd(url, lock_timeout)
    return PostgresEnd(url)


# -- PostgreSQL ---------------------------------------------------------------------------------

# COPY's text format: backslash, tab, newline and carriage return are escaped; \N is NULL.
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def _copy_bytes(value: bytes | None) -> str:
    return "\\N" if value is None else "\\\\x" + value.hex()



class _CanonicalJsonbLoader(Loader):
    """Binary jsonb (a version byte, then the text) to canonical JSON text."""

    format = pq.Format.BINARY

    def load(self, data: Any) -> str:
        return canonical_json(decode_json(bytes(data[1:])))


class _JsonbTextDumper(Dumper):
    """JSON text, already canonical and checked, to binary jsonb: the version byte and the
    text, which the server parses once. Used by oid only (COPY after set_types)."""

    format = pq.Format.BINARY

    def dump(self, obj: Any) -> bytes:
        text: str = obj
        return b"\x01" + text.encode()


class PostgresEnd:
    dialect: Dialect = "postgres"

    def __init__(self, url: DatabaseURL) -> None:
        from evstore.dialects.postgres import open_connection

        self.url = url
        self.conn = open_connection(url)
        self._sql = {name: q.sql for name, q in load("postgres").items()}
        self._jsonb_oid = self.conn.adapters.types["jsonb"].oid

        class JsonbText(_JsonbTextDumper):
            oid = self._jsonb_oid

        self._jsonb_dumper = JsonbText

    def close(self) -> None:
        self.conn.close()

    def _cursor(self) -> psycopg.Cursor[Any]:
        cur = self.conn.cursor(binary=True)
        cur.adapters.register_loader("jsonb", _CanonicalJsonbLoader)
        return cur

    def run(self, name: str, **params: Any) -> list[Any]:
        with self._translated(), self._cursor() as cur:
            cur.execute(self._sql[name], params)
            return cur.fetchall() if cur.description else []

    def is_standby(self) -> bool:
        return bool(self.run("postgres_session")[0][1])

    @contextmanager
    def _translated(self) -> Iterator[None]:
        from evstore.dialects.postgres import translate

        try:
            yield
        except psycopg.Error as e:
            raise translate(e) from e

    @contextmanager
    def consistent_read(self) -> Iterator[None]:
        """REPEATABLE READ, READ ONLY: one snapshot for every statement, also on a standby."""
        self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self.conn.read_only = True
        try:
            with self._translated(), self.conn.transaction():
                yield
        finally:
            self.conn.isolation_level = None
            self.conn.read_only = None

    @contextmanager
    def write_transaction(self) -> Iterator[None]:
        with self._translated(), self.conn.transaction():
            # Lets COPY past event_store_check_insert (0010); session-wide, and this
            # connection belongs to the copy alone.
            self.conn.execute(self._sql["postgres_copy_session"])
            yield

    def events(self, after: int, through: int, limit: int) -> list[EventRow]:
        return self.run("copy_read_events", after=after, through=through, limit=limit)

    def keys(self, after: int, through: int, limit: int) -> list[KeyRow]:
        return self.run("copy_read_event_keys", after=after, through=through, limit=limit)

    def _iterate(self, name: str) -> Iterator[Any]:
        """A server-side cursor: the rows arrive PAGE at a time, whatever the table's size."""
        with self._translated(), self.conn.transaction(), self.conn.cursor(
            name=f"evstore_{name}", binary=True
        ) as cur:
            cur.adapters.register_loader("jsonb", _CanonicalJsonbLoader)
            cur.itersize = PAGE
            cur.execute(self._sql[name])
            yield from cur

    def streams(self) -> Iterator[StreamRow]:
        return self._iterate("copy_read_streams")

    def subscriptions(self) -> Iterator[SubscriptionRow]:
        return self._iterate("copy_read_subscriptions")

    def snapshots(self) -> Iterator[SnapshotRow]:
        return self._iterate("copy_read_snapshots")

    def _copy_in(self, name: str, types: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        with self._translated(), self.conn.cursor() as cur:
            cur.adapters.register_dumper(None, self._jsonb_dumper)
            with cur.copy(self._sql[name]) as copy:
                copy.set_types(types)
                write = copy.write_row
                for row in rows:
                    write(row)

    def encode_events(self, rows: Sequence[EventRow]) -> bytes:
        """COPY's text format, one line per event: formatting the rows here, ahead of the
        write, leaves the writing thread only the sending."""
        return "".join([
            f"{p}\t{_copy_text(e)}\t{_copy_text(s)}\t{v}\t{_copy_text(t)}\t{_copy_text(d)}"
            f"\t{_copy_text(m)}\t{at if at.__class__ is str else at.isoformat()}"  # type: ignore[union-attr]
            f"\t{_copy_bytes(c)}\t{_copy_bytes(h)}\n"
            for p, e, s, v, t, d, m, at, c, h in rows
        ]).encode()

    def insert_encoded(self, data: bytes) -> None:
        with self._translated(), self.conn.cursor() as cur, cur.copy(
            self._sql["postgres_copy_events_in"]
        ) as copy:
            copy.write(data)

    def insert_streams(self, rows: Iterable[StreamRow]) -> None:
        self._copy_in("postgres_copy_streams_in",
                      ("text", "int8", "jsonb", "timestamptz", "timestamptz"), rows)

    def insert_subscriptions(self, rows: Iterable[SubscriptionRow]) -> None:
        self._copy_in("postgres_copy_subscriptions_in",
                      ("int8", "text", "int8", "timestamptz", "timestamptz", "timestamptz"), rows)

    def insert_snapshots(self, rows: Iterable[SnapshotRow]) -> None:
        self._copy_in("postgres_copy_snapshots_in",
                      ("text", "int8", "jsonb", "timestamptz"), rows)

    def finish(self) -> None:
        self.run("postgres_copy_continue_positions")
        self.run("postgres_copy_continue_subscription_ids")


# -- SQLite -------------------------------------------------------------------------------------

_parse_time = datetime.fromisoformat  # reads the trailing Z as UTC on Python 3.11+


def as_time(value: datetime | str) -> datetime:
    """recorded_at as a datetime, whichever dialect it was read from."""
    return value if value.__class__ is datetime else _parse_time(value)  # type: ignore[arg-type]


def _time(value: str | None) -> datetime | None:
    return None if value is None else _parse_time(value)


def sqlite_time(value: datetime | None) -> str | None:
    """A time as SQLite's columns hold it: ISO-8601 UTC with milliseconds and Z, as the
    defaults write it; with microseconds when the time has them (copied from PostgreSQL), so
    that nothing is rounded away."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


class SQLiteEnd:
    dialect: Dialect = "sqlite"

    def __init__(self, url: DatabaseURL, lock_timeout: float) -> None:
        from evstore.dialects.sqlite import open_connection

        self.url = url
        self.conn = open_connection(url, lock_timeout)
        queries = load("sqlite")
        self._sql = {name: q.sql for name, q in queries.items()}
        self._positional = {name: q.positional() for name, q in queries.items()}

    def close(self) -> None:
        self.conn.close()

    def is_standby(self) -> bool:
        return False

    @contextmanager
    def _translated(self) -> Iterator[None]:
        from evstore.dialects.sqlite import translate

        try:
            yield
        except sqlite3.Error as e:
            raise translate(e) from e

    def run(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        with self._translated():
            return self.conn.execute(self._sql[name], params).fetchall()

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[None]:
        with self._translated():
            self.conn.execute(self._sql[begin])
            try:
                yield
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute(self._sql["sqlite_rollback"])
                raise
            self.conn.execute(self._sql["sqlite_commit"])

    def consistent_read(self) -> Any:
        return self._transaction("sqlite_copy_read_begin")

    def write_transaction(self) -> Any:
        return self._transaction("sqlite_begin")

    def events(self, after: int, through: int, limit: int) -> list[EventRow]:
        return self.run("copy_read_events", after=after, through=through, limit=limit)

    def keys(self, after: int, through: int, limit: int) -> list[KeyRow]:
        return self.run("copy_read_event_keys", after=after, through=through, limit=limit)

    def _iterate(self, name: str) -> Iterator[tuple[Any, ...]]:
        with self._translated():
            cur = self.conn.execute(self._sql[name])
            while page := cur.fetchmany(PAGE):
                yield from page

    def streams(self) -> Iterator[StreamRow]:
        for stream_id, version, metadata, created, updated in self._iterate("copy_read_streams"):
            yield (stream_id, version,
                   None if metadata is None else canonical_json(decode_json(metadata)),
                   _parse_time(created), _parse_time(updated))

    def subscriptions(self) -> Iterator[SubscriptionRow]:
        for sid, name, position, created, updated, deleted in self._iterate(
            "copy_read_subscriptions"
        ):
            yield (sid, name, position, _parse_time(created), _parse_time(updated),
                   _time(deleted))

    def snapshots(self) -> Iterator[SnapshotRow]:
        for stream_id, version, state, created in self._iterate("copy_read_snapshots"):
            yield stream_id, version, canonical_json(decode_json(state)), _parse_time(created)

    def _insert(self, name: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._translated():
            self.conn.executemany(self._positional[name], rows)

    def encode_events(self, rows: Sequence[EventRow]) -> list[tuple[Any, ...]]:
        return [(p, e, s, v, t, d, m, at if at.__class__ is str else sqlite_time(at), c, h)  # type: ignore[arg-type]
                for p, e, s, v, t, d, m, at, c, h in rows]

    def insert_encoded(self, data: list[tuple[Any, ...]]) -> None:
        self._insert("sqlite_copy_insert_event", data)

    def insert_streams(self, rows: Iterable[StreamRow]) -> None:
        self._insert("sqlite_copy_insert_stream", (
            (s, v, m, sqlite_time(c), sqlite_time(u)) for s, v, m, c, u in rows))

    def insert_subscriptions(self, rows: Iterable[SubscriptionRow]) -> None:
        self._insert("sqlite_copy_insert_subscription", (
            (i, n, p, sqlite_time(c), sqlite_time(u), sqlite_time(d))
            for i, n, p, c, u, d in rows))

    def insert_snapshots(self, rows: Iterable[SnapshotRow]) -> None:
        self._insert("sqlite_copy_insert_snapshot", (
            (s, v, state, sqlite_time(c)) for s, v, state, c in rows))

    def finish(self) -> None:
        """Nothing to do: AUTOINCREMENT already stands at the highest position inserted."""
