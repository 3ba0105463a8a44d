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

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.types.json import set_json_loads

from evstore.dialects.base import AppendConflict
from evstore.dialects.queries import sql as named_sql
from evstore.dialects.shared import (
    NO_PARAMS,
    Params,
    SharedBackend,
    append_kind,
    by_version,
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
        raise ConnectionFailed(
            f"cannot connect to {url.redacted}: {url.scrub(first_line(e))}; check that the "
            "server is "
            "running, and the host, port, database name and credentials in the URL"
        ) from e
    _configure(conn)
    return conn


class PostgresBackend(SharedBackend):
    dialect: Dialect = "postgres"
    _sql = SQL

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
        # A hot standby: it serves reads only, and allows no LISTEN (see changes()).
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

                    assert self.url.conninfo is not None
                    self._pool = ConnectionPool(
                        self.url.conninfo,
                        min_size=0,
                        max_size=self._pool_size,
                        kwargs=dict(self._connect_args),
                        configure=_configure,
                        name="evstore",
                        open=True,
                    )
        try:
            conn: psycopg.Connection[Any] = self._pool.getconn(timeout=30)
        except Exception as e:
            raise ConnectionFailed(
                f"no connection to {self.url.redacted} became free within 30s "
                f"({type(e).__name__}); more threads share this Store than its pool_size "
                f"({self._pool_size}) allows, or the server stopped accepting connections"
            ) from e
        return conn

    def _rows(self, sql: Any, params: Params = NO_PARAMS) -> list[tuple[Any, ...]]:
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
        params = {
            "stream_id": stream_id,
            "kind": append_kind(expected),
            "expected": expected if isinstance(expected, int) else None,
            "event_ids": [e.event_id for e in events],
            "event_types": [e.type for e in events],
            "payloads": [e.payload for e in events],
            "metadata": [e.metadata for e in events],
            "digests": [e.digest for e in events],
            "lock_timeout_ms": self._lock_timeout_ms,
        }
        conn, how = self._borrow()
        try:
            if how == 0:
                # Inside a caller's transaction a savepoint keeps it usable after a conflict.
                with conn.transaction():
                    rows = conn.execute(APPEND_SQL, params, binary=True).fetchall()
            else:
                rows = conn.execute(APPEND_SQL, params, binary=True).fetchall()
        except psycopg.errors.UniqueViolation as e:
            if e.diag.constraint_name == "uq_event_store_event_id":
                raise AppendConflict("event_id") from e
            if e.diag.constraint_name == "uq_event_store_stream_id_version":
                raise AppendConflict("version") from e
            raise translate(e) from e
        except psycopg.Error as e:
            raise translate(e, self.lock_timeout) from e
        finally:
            self._give_back(conn, how)
        if not rows:
            raise AppendConflict("version")
        # Rows come back in no promised order; versions put them back in append order.
        rows.sort(key=by_version)
        from_json = RecordedEvent.from_json
        return [
            from_json(
                position,
                stream_id,
                version,
                e.event_id,
                e.type,
                e.payload,
                e.metadata,
                recorded_at,
                e.digest,
            )
            for (position, version, recorded_at), e in zip(rows, events, strict=True)
        ]

    # -- reads -------------------------------------------------------------------------------

    def _select(self, sql: str, params: Params) -> list[RecordedEvent]:
        conn, how = self._borrow()
        try:
            rows = conn.execute(sql, params, binary=True).fetchall()
        except psycopg.Error as e:
            raise translate(e) from e
        finally:
            self._give_back(conn, how)
        return list(map(RecordedEvent.from_decoded_row, rows))

    def _values(self, values: Sequence[str]) -> Any:
        return list(values)

    def _snapshot(self, row: Sequence[Any]) -> SnapshotRecord:
        return SnapshotRecord(*row)

    # The other reads, snapshots and checkpoints: evstore.dialects.shared.

    def save_snapshot(self, stream_id: str, version: int, state: str) -> SnapshotRecord:
        rows = self._rows(
            SQL["save_snapshot"], {"stream_id": stream_id, "version": version, "state": state}
        )
        return SnapshotRecord(stream_id, version, rows[0][0], rows[0][1])

    # -- projections and tails ---------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a projection's SQL written with ? placeholders, as on SQLite."""
        query = sql.replace("%", "%%").replace("?", "%s")
        conn, how = self._borrow()
        try:
            cur = conn.execute(query.encode(), params)
            return cur.fetchall() if cur.description else []
        except psycopg.Error as e:
            raise translate(e) from e
        finally:
            self._give_back(conn, how)

    def changes(self, poll_interval: float) -> Iterator[bool]:
        """LISTENs on this backend's own connection (a tail's backend belongs to its tail), then
        yields True at once: the caller reads only after the LISTEN is in place, so a commit
        between its read and its wait is never missed. Afterwards it yields after each NOTIFY
        from the event_store_notify trigger, and at least every poll_interval seconds, so a
        tail can stop promptly and a lost wake-up costs at most one interval.

        A hot standby allows no LISTEN: there it polls how far the standby has replayed the
        primary's WAL, like SQLite's data_version, and yields True when that moved."""
        if self.in_recovery:
            yield from self._replay_changes(poll_interval)
            return
        conn = self.conn
        with translated():
            conn.execute(SQL["postgres_listen"])
        yield True
        while True:
            # A quiet interval also counts as a change: re-reading costs one index probe, and
            # it bounds the delay should a notification ever be lost.
            # Notifications name the schema whose log changed (0012); others are not ours. An
            # empty payload comes from a store migrated before 0012.
            deadline = time.monotonic() + poll_interval
            with translated():
                while (remaining := deadline - time.monotonic()) > 0:
                    ours = False
                    for notify in conn.notifies(timeout=remaining, stop_after=1):
                        ours = not notify.payload or notify.payload == self.schema
                    if ours:
                        break
            yield True

    def _replay_changes(self, poll_interval: float) -> Iterator[bool]:
        """The standby's changes(): the replay position is read before the caller's first
        read, so a commit replayed during that read (or between it and the next wait) moves
        it past the baseline and wakes the next wait."""
        last = self._rows(SQL["postgres_replay_lsn"])[0][0]
        yield True
        while True:
            time.sleep(poll_interval)
            current = self._rows(SQL["postgres_replay_lsn"])[0][0]
            changed = current != last
            last = current
            yield changed
