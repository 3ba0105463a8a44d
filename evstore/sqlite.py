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
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

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
    Snapshot,
    chain_link,
    decode_json,
)
from evstore.urls import DatabaseURL, Dialect

_ROWS_PER_INSERT = 1000  # 8 parameters a row, well under SQLite's 32766-variable limit

_EVENT_COLUMNS = (
    "position, stream_id, version, event_id, event_type, payload, metadata, recorded_at, "
    "content_digest"
)
_loads = decode_json
_parse_time = datetime.fromisoformat  # reads the trailing Z as UTC on Python 3.11+


@lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    values = ",".join(["(?,?,?,?,?,?,?,?)"] * rows)
    return (
        "INSERT INTO event_store (event_id, stream_id, version, event_type, payload, metadata, "
        f"content_digest, chain_digest) VALUES {values} RETURNING position, version, recorded_at"
    )


# The chain continues from the newest event that has a chain digest (0009); read while the
# append holds the write lock, so appends extend one chain.
_CHAIN_HEAD = (
    "SELECT chain_digest FROM event_store WHERE chain_digest IS NOT NULL "
    "ORDER BY position DESC LIMIT 1"
)


_from_row = RecordedEvent.from_row


@contextmanager
def translated() -> Iterator[None]:
    """The one place where sqlite3 errors become evstore errors."""
    try:
        yield
    except sqlite3.Error as e:
        raise translate(e) from e


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
        conn.execute("PRAGMA foreign_keys = ON")
        if not url.is_memory:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error as e:
        raise ConnectionFailed(
            f"cannot open SQLite database {path!r}: {e}; check the path and its permissions"
        ) from e
    return conn


class SQLiteBackend:
    dialect: Dialect = "sqlite"

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
                self.conn.execute("BEGIN IMMEDIATE")
                end = ""
            else:
                end = f"evstore_{depth}"
                self.conn.execute(f"SAVEPOINT {end}")
        except sqlite3.Error as e:
            raise translate(e, self.lock_timeout) from e
        self._depth = depth + 1
        return end

    def _commit(self, end: str) -> None:
        self._depth -= 1
        try:
            self.conn.execute(f"RELEASE {end}" if end else "COMMIT")
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
            self.conn.execute("ROLLBACK")

    def _rollback_quietly(self) -> None:
        """After a failed COMMIT (SQLITE_BUSY, disk full) the transaction may still be open."""
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    # -- append ------------------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[EncodedEvent], expected: Expected
    ) -> list[RecordedEvent]:
        conn = self.conn
        n = len(events)
        head_sql, params_head = _head(expected, stream_id, n)
        self._acquire()
        try:
            end = self._begin()
            try:
                try:
                    row = conn.execute(head_sql, params_head).fetchone()
                    if row is None and expected is ANY:
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
        returned.sort(key=_by_version)
        return [
            _from_row(
                (position, stream_id, version, e.event_id, e.type, e.payload, e.metadata,
                 recorded_at, e.digest)
            )
            for (position, version, recorded_at), e in zip(returned, events, strict=True)
        ]

    # -- reads -------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement under the Store's lock and fetch its rows."""
        self._acquire()
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise translate(e, self.lock_timeout) from e
        finally:
            self._lock.release()

    def _select(self, sql: str, params: Sequence[Any]) -> list[RecordedEvent]:
        return list(map(_from_row, self._rows(sql, params)))

    def find_events(self, event_ids: Sequence[str]) -> list[RecordedEvent]:
        return self._select(
            f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE event_id IN "
            f"(SELECT value FROM json_each(?)) ORDER BY position",
            (json.dumps(list(event_ids)),),
        )

    def stream_version(self, stream_id: str) -> int | None:
        rows = self._rows("SELECT version FROM stream WHERE stream_id = ?", (stream_id,))
        return int(rows[0][0]) if rows else None

    def read_stream(
        self, stream_id: str, from_version: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]:
        cmp, order = ("<=", "DESC") if backwards else (">=", "ASC")
        return self._select(
            f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE stream_id = ? AND version {cmp} ? "
            f"ORDER BY version {order} LIMIT ?",
            (stream_id, from_version, -1 if limit is None else limit),
        )

    def read_all(
        self, after: int, limit: int, types: Sequence[str] | None
    ) -> list[RecordedEvent]:
        if types is None:
            return self._select(
                f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE position > ? "
                "ORDER BY position LIMIT ?",
                (after, limit),
            )
        return self._select(
            f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE position > ? AND event_type IN "
            "(SELECT value FROM json_each(?)) ORDER BY position LIMIT ?",
            (after, json.dumps(list(types)), limit),
        )

    def head_position(self) -> int:
        return int(self._rows("SELECT max(position) FROM event_store")[0][0] or 0)

    # -- snapshots ---------------------------------------------------------------------------

    def save_snapshot(self, stream_id: str, version: int, state: str) -> Snapshot:
        row = self._rows(
            "INSERT INTO snapshot (stream_id, version, state) VALUES (?, ?, ?) "
            "ON CONFLICT (stream_id, version) DO UPDATE SET state = excluded.state, "
            "created_at = excluded.created_at RETURNING created_at",
            (stream_id, version, state),
        )[0]
        return Snapshot(stream_id, version, _loads(state), _parse_time(row[0]))

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        rows = self._rows(
            "SELECT stream_id, version, state, created_at FROM snapshot WHERE stream_id = ? "
            "ORDER BY version DESC LIMIT 1",
            (stream_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return Snapshot(row[0], row[1], _loads(row[2]), _parse_time(row[3]))

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self, name: str, for_update: bool) -> int:
        rows = self._rows(
            "SELECT position FROM subscription WHERE name = ? AND deleted_at IS NULL", (name,)
        )
        return int(rows[0][0]) if rows else 0

    def set_checkpoint(self, name: str, position: int) -> None:
        self._rows(
            "INSERT INTO subscription (name, position) VALUES (?, ?) "
            "ON CONFLICT (name) WHERE deleted_at IS NULL DO UPDATE SET position = "
            "excluded.position",
            (name, position),
        )

    def delete_checkpoint(self, name: str) -> bool:
        rows = self._rows(
            "UPDATE subscription SET deleted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
            "WHERE name = ? AND deleted_at IS NULL RETURNING subscription_id",
            (name,),
        )
        return bool(rows)

    # -- projections and tails ---------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._rows(sql, params)

    def changes(self, poll_interval: float) -> Iterator[bool]:
        """Yields whenever the database may hold new events. PRAGMA data_version changes when
        another connection commits: one cheap read of a counter, no query of the log.

        The first value comes at once, after the baseline is read: the caller reads the log
        only after that, so a commit that lands while it reads (or between its read and its
        wait) changes data_version after the baseline and wakes the next wait. Afterwards it
        yields False after each quiet interval, so the caller can check its own stop
        conditions. An in-memory database has one connection only, so every interval counts
        as a change."""
        last = self._rows("PRAGMA data_version")[0][0]
        yield True
        while True:
            time.sleep(poll_interval)
            current = self._rows("PRAGMA data_version")[0][0]
            changed = current != last or self.url.is_memory
            last = current
            yield changed


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


def _by_version(row: tuple[int, int, str]) -> int:
    return row[1]


# One statement moves the stream head and checks the expected version; each form returns the
# new version, or no row when the expectation does not hold (as on PostgreSQL). A head that does
# not exist yet is inserted by a second statement (ANY) or only (NO_STREAM): the trigger
# stream_check_insert (0011) refuses to insert a head that exists, which also closes
# INSERT OR REPLACE, so no form may rely on an upsert.
_HEAD_ANY = "UPDATE stream SET version = version + ? WHERE stream_id = ? RETURNING version"
_HEAD_NEW = "INSERT INTO stream (stream_id, version) VALUES (?, ?) RETURNING version"
_HEAD_EXISTS = _HEAD_ANY
_HEAD_EXACT = (
    "UPDATE stream SET version = version + ? WHERE stream_id = ? AND version = ? "
    "RETURNING version"
)


def _head(expected: Expected, stream_id: str, n: int) -> tuple[str, tuple[Any, ...]]:
    """The head statement for this expectation, with its parameters."""
    if expected is ANY or expected is STREAM_EXISTS:
        return _HEAD_ANY, (n, stream_id)
    if expected is NO_STREAM or expected == 0:
        return _HEAD_NEW, (stream_id, n)
    return _HEAD_EXACT, (n, stream_id, expected)
