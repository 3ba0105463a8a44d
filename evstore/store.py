"""The event store: evstore.connect(url) returns a Store for either dialect."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from evstore.dialects.base import AppendConflict, Backend
from evstore.errors import (
    ConnectionFailed,
    DuplicateEventId,
    InvalidInput,
    SnapshotError,
    StoreClosed,
    WrongExpectedVersion,
)
from evstore.events import (
    ANY,
    NO_STREAM,
    EncodedEvent,
    Expected,
    NewEvent,
    RecordedEvent,
    Snapshot,
    check_event_id,
    check_expected,
    check_name,
    encode_events,
    encode_json,
)
from evstore.routing import Routing, in_recovery
from evstore.schema.migrations import MigrationState, Migrator, default_dir
from evstore.urls import DatabaseURL, parse_url


@runtime_checkable
class Projection(Protocol):
    """A read model built from the log. `apply` writes through `tx`; events of types it does
    not know should simply be ignored. An optional `reset(tx)` clears its state for replay."""

    name: str

    def apply(self, tx: Transaction, event: RecordedEvent) -> None: ...


DEFAULT_LOCK_TIMEOUT = 5.0  # seconds an append waits for the append lock
DEFAULT_READ_WAIT_TIMEOUT = 5.0  # seconds a read waits for the read server to catch up
MAX_INT = 2**63 - 1  # positions, versions and limits are 64-bit signed on both dialects


def connect(
    url: str,
    *,
    migrations_dir: str | Path | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    pool_size: int = 8,
    schema: str | None = None,
    app_migrations_dir: str | Path | Mapping[str, str | Path] | None = None,
    read_url: str | None = None,
    read_wait_timeout: float = DEFAULT_READ_WAIT_TIMEOUT,
) -> Store:
    """Open a store. The dialect comes from the URL scheme:
    sqlite:///relative.db, sqlite:////absolute.db, sqlite:///:memory:, postgresql://...

    lock_timeout: the longest an append (and, on SQLite, any write) waits for the append lock
    before it raises AppendLockTimeout. pool_size: on PostgreSQL, the most connections that
    threads sharing this Store use at once. schema: on PostgreSQL, the schema that holds the
    store (and yoyo's tables); without it, the first schema of the URL's search_path.
    app_migrations_dir: the application's own migrations, applied by migrate() after evstore's
    in the same yoyo run; one folder, or {"postgres": ..., "sqlite": ...} to pick by dialect.

    A URL of a PostgreSQL hot standby opens a read-only store: reads and tails work (a tail
    polls there), every write raises ReadOnlyStore. read_url: on PostgreSQL, a server (a hot
    standby) that serves this Store's reads and tails while `url` takes its writes; a read that
    follows this Store's own append waits until the read server has it, at most
    read_wait_timeout seconds, then raises ReplicaLagTimeout (evstore/routing.py says which
    operation goes where)."""
    return Store(
        parse_url(url),
        migrations_dir=migrations_dir,
        lock_timeout=lock_timeout,
        pool_size=pool_size,
        schema=schema,
        app_migrations_dir=app_migrations_dir,
        read_url=parse_url(read_url) if read_url is not None else None,
        read_wait_timeout=read_wait_timeout,
    )


_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_schema(schema: object, dialect: str) -> str | None:
    """A PostgreSQL schema name: lower case letters, digits and _, at most 63, so that it
    means the same quoted and unquoted, in a search_path and in SQL."""
    if schema is None:
        return None
    if dialect != "postgres":
        raise InvalidInput(
            f"schema={schema!r}: schemas exist only on PostgreSQL; a SQLite store is one file"
        )
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidInput(
            f"schema {schema!r} is not a plain PostgreSQL name; use 1 to 63 lower-case "
            "letters, digits and _, not starting with a digit"
        )
    return schema


def _open_backend(
    url: DatabaseURL, lock_timeout: float, pool_size: int = 1, schema: str | None = None
) -> Backend:
    if url.dialect == "sqlite":
        from evstore.dialects.sqlite import SQLiteBackend

        return SQLiteBackend(url, lock_timeout=lock_timeout)
    from evstore.dialects.postgres import PostgresBackend

    return PostgresBackend(url, lock_timeout=lock_timeout, pool_size=pool_size, schema=schema)


class Transaction:
    """Several appends (and a projection's own writes) committed together or not at all.

    A transaction belongs to the thread that opened it; using it from another thread raises
    InvalidInput rather than writing outside it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._thread = threading.get_ident()

    def _check_thread(self) -> None:
        if threading.get_ident() != self._thread:
            raise InvalidInput(
                "a store.transaction() belongs to the thread that opened it; open a "
                "transaction in each thread instead of passing one between threads"
            )

    @property
    def dialect(self) -> str:
        return self._store.dialect

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: Expected = ANY
    ) -> list[RecordedEvent]:
        self._check_thread()
        return self._store.append(stream_id, events, expected_version)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run SQL in this transaction, with ? placeholders on both dialects."""
        self._check_thread()
        return self._store._live().execute(sql, params)

    def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        self._check_thread()
        return self._store.read_stream(stream_id, from_version, limit, backwards)

    def stream_version(self, stream_id: str) -> int | None:
        self._check_thread()
        return self._store.stream_version(stream_id)


class Store:
    """An event store on one database. Threads may share a Store: on PostgreSQL each
    operation and each transaction gets a connection of its own from a pool; on SQLite
    operations take turns on one connection. A transaction belongs to its thread."""

    def __init__(
        self,
        url: DatabaseURL,
        *,
        migrations_dir: str | Path | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        pool_size: int = 8,
        schema: str | None = None,
        app_migrations_dir: str | Path | Mapping[str, str | Path] | None = None,
        read_url: DatabaseURL | None = None,
        read_wait_timeout: float = DEFAULT_READ_WAIT_TIMEOUT,
    ) -> None:
        self.schema = check_schema(schema, url.dialect)
        if isinstance(app_migrations_dir, Mapping):
            app_migrations_dir = app_migrations_dir.get(url.dialect)
        self.app_migrations_dir = (
            Path(app_migrations_dir) if app_migrations_dir is not None else None
        )
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, int | float) or not (
            0 < lock_timeout <= 86400
        ):
            raise InvalidInput(
                f"lock_timeout must be a number of seconds above 0 and at most 86400, not "
                f"{lock_timeout!r}"
            )
        _check_int(pool_size, "pool_size", 1)
        _check_seconds(read_wait_timeout, "read_wait_timeout")
        if read_url is not None and (url.dialect != "postgres" or read_url.dialect != "postgres"):
            raise InvalidInput(
                "read_url names a PostgreSQL server (a hot standby) for the reads of a "
                "PostgreSQL store; a SQLite store reads its own file"
            )
        self.url = url
        self.read_url = read_url
        self.dialect = url.dialect
        self.lock_timeout = float(lock_timeout)
        self.migrations_dir = (
            Path(migrations_dir) if migrations_dir is not None else default_dir(url.dialect)
        )
        self._backend: Backend | None = _open_backend(
            url, self.lock_timeout, pool_size, self.schema
        )
        reader = None
        if read_url is not None:
            try:
                reader = _open_backend(read_url, self.lock_timeout, pool_size, self.schema)
            except BaseException:
                self._backend.close()
                raise
        self._routing: Routing | None = Routing(self._backend, reader, float(read_wait_timeout))

    # -- lifecycle ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        reads = f" reading from {self.read_url.redacted}" if self.read_url else ""
        return f"<evstore.Store {self.url.redacted}{reads}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._routing is not None:
            self._routing.close()
            self._routing = None
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def _live(self) -> Backend:
        if self._backend is None:
            raise StoreClosed()
        return self._backend

    def _route(self) -> Routing:
        if self._routing is None:
            raise StoreClosed()
        return self._routing

    def _writable(self, operation: str) -> Backend:
        """The Store's own server for a write; ReadOnlyStore when it is a standby."""
        return self._route().writable(operation)

    def _readable(self) -> Backend:
        """The server for a read: the read_url's once it has this Store's own appends."""
        return self._route().readable()

    @property
    def read_only(self) -> bool:
        """Whether this Store's server is a hot standby, which refuses every write."""
        return in_recovery(self._live())

    def wait_for_position(self, position: int, timeout: float | None = None) -> bool:
        """Wait until the server this Store reads from (its read_url, else its own) shows
        `position`, at most `timeout` seconds (default: read_wait_timeout). Returns whether it
        does: a position read on the primary can then be read on the standby."""
        _check_int(position, "position", 0)
        routing = self._route()
        if timeout is None:
            timeout = routing.read_wait_timeout
        _check_seconds(timeout, "timeout")
        return routing.wait_for_position(position, float(timeout))

    # -- migrations --------------------------------------------------------------------------

    def _migrator(self) -> Migrator:
        backend = self._live()
        shared = getattr(backend, "conn", None) if self.url.is_memory else None
        folders = [self.migrations_dir]
        if self.app_migrations_dir is not None:
            folders.append(self.app_migrations_dir)
        return Migrator(self.url, folders, sqlite_connection=shared, schema=self.schema)

    def migrate(self, lock_timeout: float = 10) -> list[str]:
        """Apply pending migrations through yoyo; returns the ids applied."""
        self._writable("migrate")
        migrator = self._migrator()
        try:
            return migrator.apply(lock_timeout=lock_timeout)
        finally:
            migrator.close()

    def rollback(
        self, to: str | None = None, *, count: int | None = None, lock_timeout: float = 10
    ) -> list[str]:
        """Undo the last migration, `count` of them, or every one after `to` ("base": all)."""
        self._writable("rollback")
        migrator = self._migrator()
        try:
            return migrator.rollback(to=to, count=count, lock_timeout=lock_timeout)
        finally:
            migrator.close()

    def status(self) -> list[MigrationState]:
        """Every migration of the folder, applied or pending, with its checksum state."""
        migrator = self._migrator()
        try:
            return migrator.status()
        finally:
            migrator.close()

    def break_lock(self) -> None:
        self._writable("break_lock")
        migrator = self._migrator()
        try:
            migrator.break_lock()
        finally:
            migrator.close()

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """`with store.transaction() as tx:` commits on success, rolls back on any error."""
        routing = self._route()
        with routing.transaction(), self._writable("a transaction").transaction():
            yield Transaction(self)

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected = ANY,
    ) -> list[RecordedEvent]:
        """Append events to a stream atomically, checking its expected version.

        Appending the same event ids at the same versions again returns the stored records.
        """
        encoded = encode_events(stream_id, events)
        expected = check_expected(expected_version)
        backend = self._writable("append")
        try:
            recorded = backend.append(stream_id, encoded, expected)
        except AppendConflict as conflict:
            recorded = self._resolve_conflict(backend, stream_id, encoded, expected, conflict)
        self._route().appended(recorded)
        return recorded

    def _resolve_conflict(
        self,
        backend: Backend,
        stream_id: str,
        events: list[EncodedEvent],
        expected: Expected,
        conflict: AppendConflict,
    ) -> list[RecordedEvent]:
        ids = [e.event_id for e in events]
        stored = backend.find_events(ids)
        if not stored:
            # Nothing of this append is stored, so the conflict was on the stream's version.
            raise WrongExpectedVersion(stream_id, expected, backend.stream_version(stream_id))
        by_id = {e.event_id: e for e in stored}
        retry = [by_id.get(i) for i in ids]
        changed = [
            (e, r) for e, r in zip(events, retry, strict=True)
            if r is not None and r.content_digest is not None and r.content_digest != e.digest
        ]
        if changed:
            raise DuplicateEventId(
                [e.event_id for e, _ in changed],
                "stored with other content (type, data or metadata) as "
                + ", ".join(
                    f"{e.event_id} (stream {r.stream_id!r}, version {r.version})"
                    for e, r in changed
                )
                + "; a retry must repeat the original events exactly, and a new event needs "
                "a new id",
            )
        if all(r is not None and r.stream_id == stream_id for r in retry):
            records = [r for r in retry if r is not None]
            first = records[0].version
            consecutive = all(r.version == first + k for k, r in enumerate(records))
            if expected is NO_STREAM or expected == 0:
                placed = first == 1
            elif isinstance(expected, int):
                placed = first == expected + 1
            else:
                placed = True
            if consecutive and placed:
                return records
        elsewhere = [
            f"{e.event_id} (stream {e.stream_id!r}, version {e.version})" for e in stored
        ]
        raise DuplicateEventId(
            [e.event_id for e in stored],
            "stored as " + ", ".join(elsewhere) + "; a retry must repeat the whole original "
            "append with the same expected version",
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run SQL with ? placeholders on either dialect (read models, ad-hoc queries)."""
        return self._live().execute(sql, params)

    def run_query(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        """Run one of evstore's own named statements (sql/queries/<dialect>.sql), for its
        tools: verify, the command line."""
        return self._live().run(name, params)

    # -- reading -----------------------------------------------------------------------------

    def get_event(self, event_id: str) -> RecordedEvent | None:
        """The event with this id, or None."""
        found = self._readable().find_events([check_event_id(event_id)])
        return found[0] if found else None

    def stream_version(self, stream_id: str) -> int | None:
        """The stream's current version, or None when it has no events."""
        return self._readable().stream_version(check_name(stream_id, "stream_id"))

    def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """A stream's events, oldest first from `from_version` (default 1); backwards=True
        gives them newest first, down from `from_version` (default: the stream's last event),
        so read_stream(s, backwards=True, limit=2) is the last two events, newest first."""
        check_name(stream_id, "stream_id")
        if from_version is None:
            from_version = MAX_INT if backwards else 1
        _check_int(from_version, "from_version", 0)
        if limit is not None:
            _check_int(limit, "limit", 0)
        return self._readable().read_stream(stream_id, from_version, limit, backwards)

    def read_all(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        """Up to `limit` events with position > `after`, in global order."""
        _check_int(after, "after", 0)
        _check_int(limit, "limit", 1)
        if types is not None:
            if isinstance(types, str):
                types = [types]
            types = [check_name(t, "event type") for t in types]
        return self._readable().read_all(after, limit, types)

    def iter_all(
        self, after: int = 0, types: Sequence[str] | None = None, page_size: int = 1000
    ) -> Iterator[RecordedEvent]:
        """Every event after `after` in global order, read page by page (flat memory)."""
        while True:
            page = self.read_all(after, page_size, types)
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].position

    def head_position(self) -> int:
        """The highest committed position, 0 for an empty log."""
        return self._readable().head_position()

    def tail(
        self,
        after: int = 0,
        types: Sequence[str] | None = None,
        *,
        poll_interval: float | None = None,
        idle_timeout: float | None = None,
        page_size: int = 500,
        reconnect_attempts: int = 10,
    ) -> Tail:
        """Iterate over events as they commit, forever or until stopped.

        Never skips or repeats an event. PostgreSQL wakes on LISTEN/NOTIFY; SQLite polls
        PRAGMA data_version every poll_interval seconds. idle_timeout ends the iteration after
        that many seconds without a new event; tail.stop() ends it from another thread. When
        the connection drops, the tail reconnects with bounded backoff (0.1 s doubling to 5 s)
        and resumes after the last event it delivered; after reconnect_attempts failures in a
        row it raises ConnectionFailed naming the position to resume from.
        """
        _check_int(after, "after", 0)
        _check_int(page_size, "page_size", 1)
        _check_int(reconnect_attempts, "reconnect_attempts", 0)
        if types is not None:
            listed = [types] if isinstance(types, str) else types
            types = [check_name(t, "event type") for t in listed]
        backend = self._live()
        reads = self._route().reader or backend
        # LISTEN wakes a PostgreSQL tail; SQLite and a standby (no LISTEN there) poll.
        interval = poll_interval if poll_interval is not None else (
            0.5 if self.dialect == "postgres" and not in_recovery(reads) else 0.05
        )
        if self.dialect == "postgres" or not self.url.is_memory:
            url, timeout, schema = self.read_url or self.url, self.lock_timeout, self.schema

            def opener() -> Backend:
                return _open_backend(url, timeout, 1, schema)

            return Tail(opener, None, after, types, interval, idle_timeout, page_size,
                        reconnect_attempts)
        return Tail(None, backend, after, types, interval, idle_timeout, page_size, 0)

    # -- projections -------------------------------------------------------------------------

    def run_projection(
        self,
        projection: Projection,
        *,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Apply every event after the projection's checkpoint, batch by batch. Each batch,
        its writes and the advanced checkpoint commit in one transaction, so effects happen
        exactly once even across crashes. Returns the number of events applied."""
        name = check_name(projection.name, "projection name")
        backend = self._writable("run_projection")
        applied = 0
        while True:
            with self.transaction() as tx:
                position = backend.checkpoint(name, for_update=True)
                events = backend.read_all(position, batch_size, None)
                if not events:
                    return applied
                for event in events:
                    projection.apply(tx, event)
                backend.set_checkpoint(name, events[-1].position)
            applied += len(events)
            if progress is not None:
                progress(len(events))

    def replay(
        self,
        projection: Projection,
        *,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
        atomic: bool = True,
    ) -> int:
        """Reset a projection (its `reset(tx)`, and its checkpoint to 0) and rebuild it.

        atomic=True (the default) resets and rebuilds in one transaction: readers see the old
        view until the new one commits, and a replay that raises leaves the old view and its
        checkpoint exactly as they were. Events that commit during the replay are applied
        afterwards by run_projection. On SQLite that transaction holds the write lock for the
        whole replay (see README, "Replay"); atomic=False commits batch by batch instead, as
        run_projection does, and leaves a partly built view if it fails."""
        name = check_name(projection.name, "projection name")
        _check_int(batch_size, "batch_size", 1)
        backend = self._writable("replay")
        reset = getattr(projection, "reset", None)
        if not atomic:
            with self.transaction() as tx:
                if reset is not None:
                    reset(tx)
                backend.set_checkpoint(name, 0)
            return self.run_projection(projection, batch_size=batch_size, progress=progress)
        applied = 0
        with self.transaction() as tx:
            if reset is not None:
                reset(tx)
            position = 0
            while True:
                events = backend.read_all(position, batch_size, None)
                if not events:
                    break
                for event in events:
                    projection.apply(tx, event)
                position = events[-1].position
                applied += len(events)
                if progress is not None:
                    progress(len(events))
            backend.set_checkpoint(name, position)
        return applied + self.run_projection(
            projection, batch_size=batch_size, progress=progress
        )

    def checkpoint(self, name: str) -> int:
        """The position a named subscription or projection has processed up to (0 if none)."""
        return self._live().checkpoint(check_name(name, "subscription name"), for_update=False)

    def save_checkpoint(self, name: str, position: int) -> None:
        _check_int(position, "position", 0)
        self._writable("save_checkpoint").set_checkpoint(
            check_name(name, "subscription name"), position)

    def delete_subscription(self, name: str) -> bool:
        """Soft-delete a subscription (its row keeps deleted_at); True if one was active."""
        return self._writable("delete_subscription").delete_checkpoint(
            check_name(name, "subscription name"))

    # -- snapshots ---------------------------------------------------------------------------

    def save_snapshot(self, stream_id: str, version: int, state: Any) -> Snapshot:
        """Save the state of a stream as of `version` (which must exist)."""
        check_name(stream_id, "stream_id")
        _check_int(version, "version", 1)
        encoded = encode_json(state, "snapshot state")
        backend = self._writable("save_snapshot")
        with backend.transaction():
            current = backend.stream_version(stream_id)
            if current is None:
                raise SnapshotError(
                    f"cannot save a snapshot of stream {stream_id!r}: the stream does not "
                    "exist; append its events first"
                )
            if version > current:
                raise SnapshotError(
                    f"cannot save a snapshot of stream {stream_id!r} at version {version}: "
                    f"the stream is at version {current}; snapshot a version that exists"
                )
            return backend.save_snapshot(stream_id, version, encoded)

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The stream's latest snapshot, or None."""
        return self._readable().load_snapshot(check_name(stream_id, "stream_id"))


class Tail:
    """An iterator over committed events; stop() (from any thread) or idle_timeout ends it.

    `position` is the position of the last event delivered: a new tail with after=position
    continues exactly where this one stopped."""

    def __init__(
        self,
        opener: Callable[[], Backend] | None,
        shared: Backend | None,
        after: int,
        types: Sequence[str] | None,
        poll_interval: float,
        idle_timeout: float | None,
        page_size: int,
        reconnect_attempts: int,
    ) -> None:
        self._opener = opener
        self._shared = shared
        self._backend: Backend | None = shared
        self.position = after
        self._types = types
        self._interval = poll_interval
        self._idle_timeout = idle_timeout
        self._page_size = page_size
        self._attempts = reconnect_attempts
        self._stopped = threading.Event()
        self._iterator: Generator[RecordedEvent, None, None] = self._run()

    def stop(self) -> None:
        self._stopped.set()

    def __iter__(self) -> Tail:
        return self

    def __next__(self) -> RecordedEvent:
        return next(self._iterator)

    def close(self) -> None:
        self._stopped.set()
        self._iterator.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> Backend:
        if self._backend is None:
            assert self._opener is not None
            self._backend = self._opener()
        return self._backend

    def _disconnect(self) -> None:
        if self._backend is not None and self._shared is None:
            try:
                self._backend.close()
            except Exception:  # the connection is already gone; nothing to release
                pass
            self._backend = None

    def _run(self) -> Generator[RecordedEvent, None, None]:
        self._failures = 0
        try:
            while True:
                try:
                    yield from self._follow()
                    return
                except ConnectionFailed as error:
                    self._disconnect()
                    self._failures += 1
                    if self._shared is not None or self._failures > self._attempts:
                        raise ConnectionFailed(
                            f"the tail lost its connection and could not reconnect after "
                            f"{self._attempts} attempt(s): {error}. Nothing was skipped: "
                            f"resume with store.tail(after={self.position})"
                        ) from error
                    if self._stopped.wait(min(0.1 * 2 ** (self._failures - 1), 5.0)):
                        return
        finally:
            self._disconnect()

    def _follow(self) -> Generator[RecordedEvent, None, None]:
        """Deliver events after self.position until stopped or idle. The wake-up source is
        primed before every read, so a commit between a read and the following wait is seen by
        the wait; a full page is followed by the next page at once."""
        backend = self._connect()
        changes = backend.changes(self._interval)
        assert isinstance(changes, Generator)
        try:
            next(changes)  # LISTEN, or the data_version baseline, before the first read
            idle_since = time.monotonic()
            while not self._stopped.is_set():
                page = backend.read_all(self.position, self._page_size, self._types)
                self._failures = 0  # connected and reading again
                if page:
                    for event in page:
                        self.position = event.position
                        yield event
                        if self._stopped.is_set():
                            return
                    idle_since = time.monotonic()
                    if len(page) == self._page_size:
                        continue
                while not next(changes):
                    if self._stopped.is_set() or self._idle(idle_since):
                        return
                if self._idle(idle_since):
                    return
        finally:
            changes.close()

    def _idle(self, since: float) -> bool:
        return self._idle_timeout is not None and time.monotonic() - since >= self._idle_timeout


def _check_seconds(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        0 <= value <= 86400
    ):
        raise InvalidInput(
            f"{what} must be a number of seconds from 0 to 86400, not {value!r}"
        )


def _check_int(value: object, what: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise InvalidInput(f"{what} must be >= {minimum}, not {value}")
    if value > MAX_INT:
        raise InvalidInput(
            f"{what} must be at most 2**63 - 1 ({MAX_INT}), the largest 64-bit integer both "
            f"dialects store, not {value}"
        )
