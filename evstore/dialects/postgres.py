"""The PostgreSQL dialect: psycopg 3, one function call and one round trip per append.

Appends go through evstore_append() (migration 0010), a SECURITY DEFINER function: the
application role needs EXECUTE on it and no INSERT on the log. Gap-free global order: the
function takes the transaction-level advisory lock APPEND_LOCK_KEY after its stream row is
locked and before it draws positions, and holds it to COMMIT. PostgreSQL makes a transaction
visible before it releases its locks, so positions become visible in the order they were drawn,
and a reader that has seen position N has seen every committed position below N. See the
README, "Gap-free global order".

Threads: a Store may be shared by threads. Each operation borrows a connection: the Store's
first connection when it is free, otherwise one from a psycopg_pool pool opened on first need.
A transaction keeps its connection, bound to its thread, until it ends, so one thread's
rollback never takes another thread's append with it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.types.json import set_json_loads

from evstore.dialects.base import AppendConflict, Plan, call
from evstore.dialects.queries import sql as named_sql
from evstore.dialects.shared import (
    Queries,
    SyncQueries,
    append_kind,
    by_version,
    expected_head,
    first_line,
    translating,
)
from evstore.errors import (
    AppendLockTimeout,
    AppendOnlyViolation,
    ConnectionFailed,
    DatabaseError,
    EvstoreError,
    ReadOnlyStore,
)
from evstore.events import EncodedEvent, Expected, RecordedEvent, decode_json
from evstore.events import Snapshot as SnapshotRecord
from evstore.urls import DatabaseURL, Dialect

# pg_advisory_xact_lock key of the append path: 0x65767374 spells "evst".
APPEND_LOCK_KEY = 1702261620
NOTIFY_CHANNEL = "evstore_event_store"  # LISTEN in sql/queries/postgres.sql, postgres_listen

# sql/queries/postgres.sql. The append's arrays go in binary format (%b): psycopg writes those
# as lengths and bytes, where the text format (%s) would escape every quote of every JSON
# document through a regular expression, which costs more than the insert itself.
SQL = named_sql("postgres")
APPEND_SQL = SQL["postgres_append"]


def translated() -> AbstractContextManager[None]:
    """A block whose psycopg errors leave it as evstore errors (through translate)."""
    return translating(psycopg.Error, translate)


def translate(error: psycopg.Error, lock_timeout: float | None = None) -> EvstoreError:
    message = (error.diag.message_primary or str(error)).strip()
    if message.startswith("evstore:"):
        hint = error.diag.message_hint
        return AppendOnlyViolation(f"{message.rstrip('.')}. {hint}" if hint else message)
    if isinstance(error, psycopg.errors.LockNotAvailable) and lock_timeout is not None:
        return AppendLockTimeout(
            f"the stream row or the append lock (pg_advisory_xact_lock({APPEND_LOCK_KEY}))",
            lock_timeout,
            "Find the holder with SELECT pid, state, xact_start, query FROM pg_stat_activity "
            "WHERE pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted); "
            "a multi-append store.transaction() holds the lock until it commits.",
        )
    if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
        return ReadOnlyStore(f"PostgreSQL refused a write: {message}")
    if isinstance(error, psycopg.errors.UndefinedFunction) and "evstore_append" in message:
        return DatabaseError(
            "evstore_append() does not exist in this database: run `evstore migrate` "
            "(migration 0010 adds it)"
        )
    if isinstance(error, psycopg.errors.UndefinedTable):
        return DatabaseError(
            f"PostgreSQL refused the operation: {message}; run `evstore migrate` to create "
            "evstore's tables, and check the database and schema in the URL"
        )
    if isinstance(error, psycopg.errors.InsufficientPrivilege):
        return DatabaseError(
            f"PostgreSQL refused the operation: {message}; the role lacks a privilege the "
            "store needs (`evstore grant --role ROLE` prints what to grant)"
        )
    if isinstance(error, psycopg.OperationalError):
        return ConnectionFailed(
            f"PostgreSQL connection failed: {message}; check that the server is running"
        )
    return DatabaseError(f"PostgreSQL refused the operation: {message}")


def _configure(conn: psycopg.Connection[Any]) -> None:
    # jsonb arrives decoded by the C JSON scanner directly, about twice as fast as json.loads.
    set_json_loads(decode_json, conn)


_CONNECT_ARGS: dict[str, Any] = {
    "autocommit": True,
    "connect_timeout": 10,
    "application_name": "evstore",
}


def connect_args(url: DatabaseURL, schema: str | None = None) -> dict[str, Any]:
    """psycopg.connect's keyword arguments: evstore's settings added to the URL's own
    `options` (which keep their effect, a search_path among them), and the schema's
    search_path last, so it wins."""
    from psycopg.conninfo import conninfo_to_dict

    assert url.conninfo is not None
    given = str(conninfo_to_dict(url.conninfo).get("options") or "")
    options = [given] if given else []
    options.append("-c TimeZone=UTC")
    if schema is not None:
        options.append(f"-c search_path={schema}")
    return {**_CONNECT_ARGS, "options": " ".join(options)}


def open_connection(url: DatabaseURL, schema: str | None = None) -> psycopg.Connection[Any]:
    assert url.conninfo is not None
    try:
        conn = psycopg.connect(url.conninfo, **connect_args(url, schema))
    except psycopg.Error as e:
        raise cannot_connect(url, e) from e
    _configure(conn)
    return conn


def cannot_connect(url: DatabaseURL, error: psycopg.Error) -> ConnectionFailed:
    return ConnectionFailed(
        f"cannot connect to {url.redacted}: {url.scrub(first_line(error))}; check that the "
        "server is running, and the host, port, database name and credentials in the URL"
    )


class PostgresBackend(SyncQueries):
    dialect: Dialect = "postgres"
    queries: Queries  # below

    def __init__(
        self,
        url: DatabaseURL,
        *,
        lock_timeout: float = 5.0,
        pool_size: int = 8,
        schema: str | None = None,
    ) -> None:
        self.url = url
        self.lock_timeout = lock_timeout
        self._lock_timeout_ms = max(int(lock_timeout * 1000), 1)
        # The first connection; a bad URL fails here, clearly.
        self.conn = open_connection(url, schema)
        self._connect_args = connect_args(url, schema)
        row = self.conn.execute(SQL["postgres_session"]).fetchone()
        # The schema this store lives in: named, or the first of the URL's search_path.
        self.schema: str | None = row[0] if row else None
        # A hot standby: it serves reads only, and allows no LISTEN (see ReplayWake).
        self.in_recovery = bool(row[1]) if row else False
        self._conn_free = threading.Lock()
        self._pool: Any = None
        self._pool_size = pool_size
        self._pool_guard = threading.Lock()
        self._local = threading.local()  # .conn and .depth of this thread's transaction

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self.conn.close()

    # -- connections -------------------------------------------------------------------------

    def _borrow(self) -> tuple[psycopg.Connection[Any], int]:
        """A connection for one operation: 0 = this thread's transaction, 1 = the first
        connection, 2 = from the pool. Give it back with _give_back."""
        bound = getattr(self._local, "conn", None)
        if bound is not None:
            return bound, 0
        if self._conn_free.acquire(blocking=False):
            return self.conn, 1
        return self._pool_get(), 2

    def _give_back(self, conn: psycopg.Connection[Any], how: int) -> None:
        if how == 1:
            self._conn_free.release()
        elif how == 2:
            self._pool.putconn(conn)

    def _pool_get(self) -> psycopg.Connection[Any]:
        if self._pool is None:
            with self._pool_guard:
                if self._pool is None:
                    from psycopg_pool import ConnectionPool

                    self._pool = ConnectionPool(
                        **pool_args(self.url, self._connect_args, self._pool_size),
                        configure=_configure,
                        open=True,
                    )
        try:
            conn: psycopg.Connection[Any] = self._pool.getconn(timeout=POOL_WAIT)
        except Exception as e:
            raise pool_exhausted(self.url, self._pool_size, e) from e
        return conn

    def rows(self, sql: Any, params: Any = ()) -> list[tuple[Any, ...]]:
        conn, how = self._borrow()
        try:
            return conn.execute(sql, params).fetchall()
        except psycopg.Error as e:
            raise translate(e) from e
        finally:
            self._give_back(conn, how)

    @property
    def in_transaction(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction on a connection bound to this thread; nested calls are savepoints."""
        bound = getattr(self._local, "conn", None)
        if bound is not None:
            with translated(), bound.transaction():
                yield
            return
        conn, how = self._borrow()
        self._local.conn = conn
        try:
            with translated(), conn.transaction():
                yield
        finally:
            self._local.conn = None
            self._give_back(conn, how)

    # -- append ------------------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[EncodedEvent], expected: Expected
    ) -> list[RecordedEvent]:
        params = append_params(stream_id, events, expected, self._lock_timeout_ms)
        conn, how = self._borrow()
        try:
            if how == 0:
                # Inside a caller's transaction a savepoint keeps it usable after a conflict.
                with conn.transaction():
                    rows = conn.execute(APPEND_SQL, params, binary=True).fetchall()
            else:
                rows = conn.execute(APPEND_SQL, params, binary=True).fetchall()
        except psycopg.Error as e:
            raise append_failure(e, self.lock_timeout) from e
        finally:
            self._give_back(conn, how)
        return append_records(rows, stream_id, events)

    # -- reads -------------------------------------------------------------------------------

    def events(self, sql: str, params: Any) -> list[RecordedEvent]:
        conn, how = self._borrow()
        try:
            rows = conn.execute(sql, params, binary=True).fetchall()
        except psycopg.Error as e:
            raise translate(e) from e
        finally:
            self._give_back(conn, how)
        return list(map(RecordedEvent.from_decoded_row, rows))

    # The reads, snapshots and checkpoints: plans in evstore.dialects.shared (SyncQueries).

    # -- projections and tails ---------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a projection's SQL written with ? placeholders, as on SQLite."""
        conn, how = self._borrow()
        try:
            cur = conn.execute(with_placeholders(sql), params)
            return cur.fetchall() if cur.description else []
        except psycopg.Error as e:
            raise translate(e) from e
        finally:
            self._give_back(conn, how)

    def listen(self) -> None:
        """LISTEN on this backend's own connection (a tail's backend belongs to its tail)."""
        with translated():
            self.conn.execute(SQL["postgres_listen"])

    def notified(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for one notification; True if it was for this store."""
        found = False
        with translated():
            for notify in self.conn.notifies(timeout=timeout, stop_after=1):
                found = ours(notify, self.schema)
        return found


# What the sync and the async backends share: pure functions, no I/O.

POOL_WAIT = 30  # seconds an operation waits for a pooled connection


def pool_args(url: DatabaseURL, connect: dict[str, Any], size: int) -> dict[str, Any]:
    """psycopg_pool's arguments (ConnectionPool and AsyncConnectionPool alike)."""
    assert url.conninfo is not None
    return {"conninfo": url.conninfo, "min_size": 0, "max_size": size,
            "kwargs": dict(connect), "name": "evstore"}


def pool_exhausted(url: DatabaseURL, size: int, error: Exception) -> ConnectionFailed:
    return ConnectionFailed(
        f"no connection to {url.redacted} became free within {POOL_WAIT}s "
        f"({type(error).__name__}); more threads or tasks share this Store than its "
        f"pool_size ({size}) allows, or the server stopped accepting connections"
    )


def append_params(
    stream_id: str, events: Sequence[EncodedEvent], expected: Expected, lock_timeout_ms: int
) -> dict[str, Any]:
    """evstore_append()'s parameters (postgres_append in sql/queries/postgres.sql)."""
    return {
        "stream_id": stream_id,
        "kind": append_kind(expected),
        "expected": expected_head(expected),
        "event_ids": [e.event_id for e in events],
        "event_types": [e.type for e in events],
        "payloads": [e.payload for e in events],
        "metadata": [e.metadata for e in events],
        "digests": [e.digest for e in events],
        "lock_timeout_ms": lock_timeout_ms,
    }


def append_failure(error: psycopg.Error, lock_timeout: float) -> Exception:
    """What an append raises for a driver error: a conflict for the store to resolve, or an
    evstore error."""
    if isinstance(error, psycopg.errors.UniqueViolation):
        if error.diag.constraint_name == "uq_event_store_event_id":
            return AppendConflict("event_id")
        if error.diag.constraint_name == "uq_event_store_stream_id_version":
            return AppendConflict("version")
        return translate(error)
    return translate(error, lock_timeout)


def append_records(
    rows: list[tuple[Any, ...]], stream_id: str, events: Sequence[EncodedEvent]
) -> list[RecordedEvent]:
    """The records of an append, from evstore_append()'s rows (position, version, time)."""
    if not rows:
        raise AppendConflict("version")
    # Rows come back in no promised order; versions put them back in append order.
    rows.sort(key=by_version)
    from_row = RecordedEvent.from_row
    return [
        from_row((position, stream_id, version, e.event_id, e.type, e.payload, e.metadata,
                  recorded_at, e.digest))
        for (position, version, recorded_at), e in zip(rows, events, strict=True)
    ]


def with_placeholders(sql: str) -> bytes:
    """The caller's SQL with ? placeholders, as psycopg takes it (every % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s").encode()


def ours(notify: psycopg.Notify, schema: str | None) -> bool:
    """Notifications name the schema whose log changed (0012); others are not ours. An empty
    payload comes from a store migrated before 0012."""
    return not notify.payload or notify.payload == schema


class NotifyWake:
    """A tail's wake-up on PostgreSQL: LISTEN before the first read, so a commit between a
    read and the following wait is never missed. Each wait ends at the first NOTIFY from
    the event_store_notify trigger for this store, or after poll_interval seconds. A quiet
    interval also counts as a change: re-reading costs one index probe, lets the tail check
    its stop conditions, and bounds the delay should a notification ever be lost."""

    def __init__(self, memory: bool = False) -> None:
        pass

    def prime(self) -> Plan[None]:
        yield call("listen")

    def wait(self, poll_interval: float) -> Plan[bool]:
        deadline = time.monotonic() + poll_interval
        while (remaining := deadline - time.monotonic()) > 0:
            if (yield call("notified", remaining)):
                break
        return True


QUERIES = PostgresBackend.queries = Queries(
    dialect="postgres",
    sql=SQL,
    no_limit=None,
    values=list,
    snapshot=lambda row: SnapshotRecord(*row),
    saved=lambda stream_id, version, state, row: SnapshotRecord(
        stream_id, version, row[0], row[1]
    ),
    wake=NotifyWake,
)


class ReplayWake:
    """A tail's wake-up on a hot standby, which allows no LISTEN: it polls how far the
    standby has replayed the primary's WAL, like SQLite's data_version. prime() reads the
    replay position before the tail's first read, so a commit replayed during that read (or
    between it and the next wait) moves it past the baseline and wakes the next wait."""

    def __init__(self, memory: bool = False) -> None:
        self.last: Any = None

    def prime(self) -> Plan[None]:
        self.last = (yield call("rows", SQL["postgres_replay_lsn"]))[0][0]

    def wait(self, poll_interval: float) -> Plan[bool]:
        if (yield call("wait", poll_interval)):
            return False  # stopped
        current = (yield call("rows", SQL["postgres_replay_lsn"]))[0][0]
        changed: bool = current != self.last
        self.last = current
        return changed


# A standby's statements: the same, with a tail that polls the replay position.
STANDBY_QUERIES = dataclasses.replace(QUERIES, wake=ReplayWake)
