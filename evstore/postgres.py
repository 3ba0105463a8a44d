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
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.types.json import set_json_loads

from evstore.backend import AppendConflict
from evstore.errors import (
    AppendLockTimeout,
    AppendOnlyViolation,
    ConnectionFailed,
    DatabaseError,
    EvstoreError,
)
from evstore.events import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    EncodedEvent,
    Expected,
    RecordedEvent,
    decode_json,
)
from evstore.events import Snapshot as SnapshotRecord
from evstore.urls import DatabaseURL, Dialect

# pg_advisory_xact_lock key of the append path: 0x65767374 spells "evst".
APPEND_LOCK_KEY = 1702261620
NOTIFY_CHANNEL = "evstore_event_store"

_EVENT_COLUMNS = (
    "position, stream_id, version, event_id, event_type, payload, metadata, recorded_at, "
    "content_digest"
)

# The arrays go in binary format (%b): psycopg writes those as lengths and bytes, where the
# text format (%s) would escape every quote of every JSON document through a regular
# expression, which costs more than the insert itself.
APPEND_SQL = (
    "SELECT position, version, recorded_at FROM evstore_append(%s::text, %s::text, "
    "%s::bigint, %b::text[], %b::text[], %b::text[], %b::text[], %b::bytea[], %s::integer)"
)


def _append_kind(expected: Expected) -> str:
    if expected is ANY:
        return "any"
    if expected is NO_STREAM or expected == 0:
        return "no_stream"
    if expected is STREAM_EXISTS:
        return "exists"
    return "exact"


@contextmanager
def translated() -> Iterator[None]:
    """The one place where psycopg errors become evstore errors."""
    try:
        yield
    except psycopg.Error as e:
        raise translate(e) from e


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
            f"cannot connect to {url.redacted}: {url.scrub(_first_line(e))}; check that the "
            "server is "
            "running, and the host, port, database name and credentials in the URL"
        ) from e
    _configure(conn)
    return conn


class PostgresBackend:
    dialect: Dialect = "postgres"

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
        row = self.conn.execute("SELECT current_schema()").fetchone()
        # The schema this store lives in: named, or the first of the URL's search_path.
        self.schema: str | None = row[0] if row else None
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

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn, how = self._borrow()
        try:
            yield conn
        finally:
            self._give_back(conn, how)

    def _rows(self, sql: Any, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
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
        params = (
            stream_id,
            _append_kind(expected),
            expected if isinstance(expected, int) else None,
            [e.event_id for e in events],
            [e.type for e in events],
            [e.payload for e in events],
            [e.metadata for e in events],
            [e.digest for e in events],
            self._lock_timeout_ms,
        )
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
        rows.sort(key=_by_version)
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

    def _select(self, sql: str, params: Sequence[Any]) -> list[RecordedEvent]:
        conn, how = self._borrow()
        try:
            rows = conn.execute(sql, params, binary=True).fetchall()
        except psycopg.Error as e:
            raise translate(e) from e
        finally:
            self._give_back(conn, how)
        return list(map(RecordedEvent.from_decoded_row, rows))

    def find_events(self, event_ids: Sequence[str]) -> list[RecordedEvent]:
        return self._select(
            f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE event_id = ANY(%b::text[]) "
            "ORDER BY position",
            (list(event_ids),),
        )

    def stream_version(self, stream_id: str) -> int | None:
        rows = self._rows("SELECT version FROM stream WHERE stream_id = %s", (stream_id,))
        return int(rows[0][0]) if rows else None

    def read_stream(
        self, stream_id: str, from_version: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]:
        cmp, order = ("<=", "DESC") if backwards else (">=", "ASC")
        return self._select(
            f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE stream_id = %s AND version {cmp} %s "
            f"ORDER BY version {order} LIMIT %s",
            (stream_id, from_version, limit),
        )

    def read_all(
        self, after: int, limit: int, types: Sequence[str] | None
    ) -> list[RecordedEvent]:
        if types is None:
            return self._select(
                f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE position > %s "
                "ORDER BY position LIMIT %s",
                (after, limit),
            )
        return self._select(
            f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE position > %s "
            "AND event_type = ANY(%b::text[]) ORDER BY position LIMIT %s",
            (after, list(types), limit),
        )

    def head_position(self) -> int:
        rows = self._rows("SELECT max(position) FROM event_store")
        return int(rows[0][0] or 0) if rows else 0

    # -- snapshots ---------------------------------------------------------------------------

    def save_snapshot(self, stream_id: str, version: int, state: str) -> SnapshotRecord:
        rows = self._rows(
            "INSERT INTO snapshot (stream_id, version, state) VALUES (%s, %s, %s::jsonb) "
            "ON CONFLICT (stream_id, version) DO UPDATE SET state = excluded.state, "
            "created_at = excluded.created_at RETURNING state, created_at",
            (stream_id, version, state),
        )
        return SnapshotRecord(stream_id, version, rows[0][0], rows[0][1])

    def load_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        rows = self._rows(
            "SELECT stream_id, version, state, created_at FROM snapshot WHERE stream_id = %s "
            "ORDER BY version DESC LIMIT 1",
            (stream_id,),
        )
        return SnapshotRecord(*rows[0]) if rows else None

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self, name: str, for_update: bool) -> int:
        lock = " FOR UPDATE" if for_update else ""
        rows = self._rows(
            "SELECT position FROM subscription WHERE name = %s AND deleted_at IS NULL" + lock,
            (name,),
        )
        return int(rows[0][0]) if rows else 0

    def set_checkpoint(self, name: str, position: int) -> None:
        self._rows(
            "INSERT INTO subscription (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) WHERE deleted_at IS NULL DO UPDATE SET position = "
            "excluded.position RETURNING position",
            (name, position),
        )

    def delete_checkpoint(self, name: str) -> bool:
        rows = self._rows(
            "UPDATE subscription SET deleted_at = now() WHERE name = %s AND deleted_at IS NULL "
            "RETURNING subscription_id",
            (name,),
        )
        return bool(rows)

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
        tail can stop promptly and a lost wake-up costs at most one interval."""
        conn = self.conn
        with translated():
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
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


def _by_version(row: tuple[Any, ...]) -> int:
    return int(row[1])


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
