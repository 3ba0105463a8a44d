"""The SQLite dialect: stdlib sqlite3, one writer at a time, BEGIN IMMEDIATE for appends.

Threads: a Store may be shared by threads. It has one connection, and every operation holds
the Store's lock, so transactions are serialised in the process instead of busy-waiting on the
database file's lock, and no thread ever reads or joins another thread's open transaction.
Processes still meet at the file lock (busy timeout = lock_timeout).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from evstore.dialects.base import AppendConflict, Plan, call
from evstore.dialects.queries import load
from evstore.dialects.shared import Queries, SyncQueries, append_kind, by_version, translating
from evstore.errors import (
    AppendLockTimeout,
    AppendOnlyViolation,
    ConnectionFailed,
    DatabaseError,
    EvstoreError,
)
from evstore.events import (
    EncodedEvent,
    Expected,
    RecordedEvent,
    Snapshot,
    chain_link,
    decode_json,
)
from evstore.urls import DatabaseURL, Dialect

_ROWS_PER_INSERT = 1000  # 8 parameters a row, well under SQLite's 32766-variable limit

_QUERIES = load("sqlite")  # sql/queries/sqlite.sql
SQL = {name: q.sql for name, q in _QUERIES.items()}
_INSERT = _QUERIES["sqlite_insert_event"]
# The append binds the insert's parameters by position, in this order (see _insert_sql).
assert _INSERT.params == (
    "event_id", "stream_id", "version", "event_type", "payload", "metadata", "content_digest",
    "chain_digest",
), _INSERT.params
_BEGIN, _COMMIT, _ROLLBACK = SQL["sqlite_begin"], SQL["sqlite_commit"], SQL["sqlite_rollback"]

_loads = decode_json
_parse_time = datetime.fromisoformat  # reads the trailing Z as UTC on Python 3.11+


@lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    """sqlite_insert_event with its VALUES row repeated: one statement for up to
    _ROWS_PER_INSERT events, the one exception to running a named query as written."""
    return _INSERT.repeated_rows(rows)


def quote_identifier(name: str) -> str:
    """An SQLite identifier in double quotes, inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


# The chain continues from the newest event that has a chain digest (0009); read while the
# append holds the write lock, so appends extend one chain.
_CHAIN_HEAD = SQL["sqlite_chain_head"]


_from_row = RecordedEvent.from_row


def translated() -> AbstractContextManager[None]:
    """A block whose sqlite3 errors leave it as evstore errors (through translate)."""
    return translating(sqlite3.Error, translate)


def translate(error: sqlite3.Error, lock_timeout: float | None = None) -> EvstoreError:
    message = str(error)
    if message.startswith("evstore:"):
        return AppendOnlyViolation(message)
    if isinstance(error, sqlite3.OperationalError) and "locked" in message:
        return AppendLockTimeout(
            "the SQLite database's write lock",
            lock_timeout if lock_timeout is not None else 0,
            "Another connection or process holds a write transaction; finish or stop it.",
        )
    if isinstance(error, sqlite3.OperationalError) and "no such table" in message:
        return DatabaseError(
            f"SQLite error: {message}; run `evstore migrate` to create evstore's tables, and "
            "check the path in the URL"
        )
    if isinstance(error, sqlite3.OperationalError) and (
        "disk is full" in message or "disk I/O error" in message
    ):
        return DatabaseError(
            f"SQLite could not write: {message}; nothing of this operation was stored. Free "
            "space on the database's disk and retry"
        )
    if isinstance(error, sqlite3.IntegrityError):
        return DatabaseError(f"SQLite refused the write: {message}")
    return DatabaseError(f"SQLite error: {message}")


def open_connection(url: DatabaseURL, lock_timeout: float = 5.0) -> sqlite3.Connection:
    path = url.sqlite_path
    assert path is not None
    if not url.is_memory:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConnectionFailed(
                f"cannot create the folder of SQLite database {path!r}: {e}; "
                "choose a path you can write to"
            ) from e
    try:
        conn = sqlite3.connect(
            path, timeout=lock_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(SQL["sqlite_foreign_keys"])
        if not url.is_memory:
            conn.execute(SQL["sqlite_journal_wal"])
            conn.execute(SQL["sqlite_synchronous_full"])
    except sqlite3.Error as e:
        raise ConnectionFailed(
            f"cannot open SQLite database {path!r}: {e}; check the path and its permissions"
        ) from e
    return conn


class SQLiteBackend(SyncQueries):
    dialect: Dialect = "sqlite"
    queries: Queries  # below

    def __init__(
        self,
        url: DatabaseURL,
        connection: sqlite3.Connection | None = None,
        *,
        lock_timeout: float = 5.0,
        lock: threading.RLock | None = None,
    ) -> None:
        self.url = url
        self.lock_timeout = lock_timeout
        self.conn = (
            connection if connection is not None else open_connection(url, lock_timeout)
        )
        self._owns_connection = connection is None
        self._depth = 0
        # Shared with the tails of an in-memory database, which use the same connection.
        self._lock = lock if lock is not None else threading.RLock()

    def _acquire(self) -> None:
        """Take the Store's lock, waiting at most lock_timeout for another thread's
        transaction to end."""
        if not self._lock.acquire(timeout=self.lock_timeout):
            raise AppendLockTimeout(
                "the Store's in-process write lock",
                self.lock_timeout,
                "Another thread of this process holds a store.transaction() open; keep "
                "transactions short.",
            )

    def close(self) -> None:
        if self._owns_connection:
            self.conn.close()

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction; nested calls become savepoints."""
        self._acquire()
        try:
            end = self._begin()
            try:
                yield
            except BaseException:
                self._undo(end)
                raise
            self._commit(end)
        finally:
            self._lock.release()

    # The append path calls these three directly: a generator-based context manager per
    # append costs more than the statements of a one-event append.

    def _begin(self) -> str:
        """Open a transaction, or a savepoint inside one; returns what _commit/_undo close."""
        depth = self._depth
        try:
            if depth == 0:
                self.conn.execute(_BEGIN)
                end = ""
            else:
                # Transaction control by savepoint name: built here, the name quoted.
                end = quote_identifier(f"evstore_{depth}")
                self.conn.execute(f"SAVEPOINT {end}")
        except sqlite3.Error as e:
            raise translate(e, self.lock_timeout) from e
        self._depth = depth + 1
        return end

    def _commit(self, end: str) -> None:
        self._depth -= 1
        try:
            self.conn.execute(f"RELEASE {end}" if end else _COMMIT)
        except sqlite3.Error as e:
            if not end:
                self._rollback_quietly()
            raise translate(e) from e

    def _undo(self, end: str) -> None:
        self._depth -= 1
        if end:
            self.conn.execute(f"ROLLBACK TO {end}")
            self.conn.execute(f"RELEASE {end}")
        else:
            self.conn.execute(_ROLLBACK)

    def _rollback_quietly(self) -> None:
        """After a failed COMMIT (SQLITE_BUSY, disk full) the transaction may still be open."""
        if self.conn.in_transaction:
            try:
                self.conn.execute(_ROLLBACK)
            except sqlite3.Error:
                pass

    # -- append ------------------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[EncodedEvent], expected: Expected
    ) -> list[RecordedEvent]:
        conn = self.conn
        n = len(events)
        kind = append_kind(expected)
        head_sql, params_head = _head(kind, expected, stream_id, n)
        self._acquire()
        try:
            end = self._begin()
            try:
                try:
                    row = conn.execute(head_sql, params_head).fetchone()
                    if row is None and kind == "any":
                        row = conn.execute(_HEAD_NEW, (stream_id, n)).fetchone()
                except sqlite3.IntegrityError as error:
                    if "head exists" in str(error):  # NO_STREAM, and the stream exists
                        raise AppendConflict("version") from error
                    raise translate(error) from error
                except sqlite3.Error as error:
                    raise translate(error) from error
                if row is None:
                    raise AppendConflict("version")
                start = row[0] - n
                head = conn.execute(_CHAIN_HEAD).fetchone()
                chain = head[0] if head is not None else b""
                returned: list[tuple[int, int, str]] = []
                for offset in range(0, n, _ROWS_PER_INSERT):
                    chunk = events[offset : offset + _ROWS_PER_INSERT]
                    params: list[Any] = []
                    version = start + offset
                    for e in chunk:
                        version += 1
                        chain = chain_link(chain, e.digest, e.event_id, version, stream_id)
                        params += (
                            e.event_id, stream_id, version, e.type, e.payload, e.metadata,
                            e.digest, chain,
                        )
                    try:
                        returned += conn.execute(_insert_sql(len(chunk)), params).fetchall()
                    except sqlite3.IntegrityError as error:
                        reason = _conflict_reason(str(error))
                        if reason:
                            raise AppendConflict(reason) from error
                        raise translate(error) from error
                    except sqlite3.Error as error:
                        raise translate(error) from error
            except BaseException:
                self._undo(end)
                raise
            self._commit(end)
        finally:
            self._lock.release()
        # RETURNING gives rows in no promised order; versions put them back in append order.
        returned.sort(key=by_version)
        return [
            _from_row(
                (position, stream_id, version, e.event_id, e.type, e.payload, e.metadata,
                 recorded_at, e.digest)
            )
            for (position, version, recorded_at), e in zip(returned, events, strict=True)
        ]

    # -- reads -------------------------------------------------------------------------------

    def rows(self, sql: str, params: Any = ()) -> list[Any]:
        """Run one statement under the Store's lock and fetch its rows."""
        self._acquire()
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise translate(e, self.lock_timeout) from e
        finally:
            self._lock.release()

    def events(self, sql: str, params: Any) -> list[RecordedEvent]:
        return list(map(_from_row, self.rows(sql, params)))

    # The reads, snapshots and checkpoints: plans in evstore.dialects.shared (SyncQueries).

    # -- projections and tails ---------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.rows(sql, params)


class DataVersionWake:
    """A tail's wake-up on SQLite. PRAGMA data_version changes when another connection
    commits: one cheap read of a counter, no query of the log.

    prime() reads the baseline before the tail's first read, so a commit that lands while it
    reads (or between its read and its wait) changes data_version after the baseline and
    wakes the next wait. Each wait() sleeps one poll interval and says whether the counter
    moved. An in-memory database has one connection only, so every interval counts as a
    change."""

    def __init__(self, memory: bool) -> None:
        self.memory = memory
        self.last: Any = None

    def prime(self) -> Plan[None]:
        self.last = (yield call("rows", SQL["sqlite_data_version"]))[0][0]

    def wait(self, poll_interval: float) -> Plan[bool]:
        if (yield call("wait", poll_interval)):
            return False  # stopped
        current = (yield call("rows", SQL["sqlite_data_version"]))[0][0]
        changed: bool = current != self.last or self.memory
        self.last = current
        return changed


def _snapshot(row: Sequence[Any]) -> Snapshot:
    return Snapshot(row[0], row[1], _loads(row[2]), _parse_time(row[3]))


def _saved(stream_id: str, version: int, state: str, row: Sequence[Any]) -> Snapshot:
    return Snapshot(stream_id, version, _loads(state), _parse_time(row[0]))


QUERIES = SQLiteBackend.queries = Queries(
    dialect="sqlite",
    sql=SQL,
    no_limit=-1,
    values=lambda values: json.dumps(list(values)),
    snapshot=_snapshot,
    saved=_saved,
    wake=DataVersionWake,
)


def _conflict_reason(message: str) -> str | None:
    """Which append conflict an IntegrityError reports: the UNIQUE constraints, or the
    event_store_check_insert trigger (migration 0010), which fires first."""
    if "event_store.event_id" in message or "event_id is already stored" in message:
        return "event_id"
    if (
        "event_store.stream_id, event_store.version" in message
        or "does not follow the stream" in message
    ):
        return "version"
    return None


# One statement moves the stream head and checks the expected version; each form returns the
# new version, or no row when the expectation does not hold (as on PostgreSQL). A head that does
# not exist yet is inserted by a second statement (ANY) or only (NO_STREAM): the trigger
# stream_check_insert (0011) refuses to insert a head that exists, which also closes
# INSERT OR REPLACE, so no form may rely on an upsert.
# Bound by position (a tuple binds faster than a dict), in the order the file writes them.
_HEAD_ANY = _QUERIES["sqlite_head_any"].positional()
_HEAD_NEW = _QUERIES["sqlite_head_new"].positional()
_HEAD_EXACT = _QUERIES["sqlite_head_exact"].positional()
assert _QUERIES["sqlite_head_any"].params == ("count", "stream_id")
assert _QUERIES["sqlite_head_new"].params == ("stream_id", "count")
assert _QUERIES["sqlite_head_exact"].params == ("count", "stream_id", "expected")


def _head(
    kind: str, expected: Expected, stream_id: str, n: int
) -> tuple[str, tuple[Any, ...]]:
    """The head statement for this kind of expectation (append_kind), with its parameters."""
    if kind == "any" or kind == "exists":
        return _HEAD_ANY, (n, stream_id)
    if kind == "no_stream":
        return _HEAD_NEW, (stream_id, n)
    return _HEAD_EXACT, (n, stream_id, expected)
