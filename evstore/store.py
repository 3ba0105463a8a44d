"""The event store: evstore.connect(url) returns a Store for either dialect."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from evstore.backend import AppendConflict, Backend
from evstore.errors import (
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
    check_expected,
    check_name,
    encode_events,
    encode_json,
)
from evstore.migrations import MigrationState, Migrator, default_dir
from evstore.urls import DatabaseURL, parse_url


@runtime_checkable
class Projection(Protocol):
    """A read model built from the log. `apply` writes through `tx`; events of types it does
    not know should simply be ignored. An optional `reset(tx)` clears its state for replay."""

    name: str

    def apply(self, tx: Transaction, event: RecordedEvent) -> None: ...


def connect(url: str, *, migrations_dir: str | Path | None = None) -> Store:
    """Open a store. The dialect comes from the URL scheme:
    sqlite:///relative.db, sqlite:////absolute.db, sqlite:///:memory:, postgresql://..."""
    return Store(parse_url(url), migrations_dir=migrations_dir)


def _open_backend(url: DatabaseURL) -> Backend:
    if url.dialect == "sqlite":
        from evstore.sqlite import SQLiteBackend

        return SQLiteBackend(url)
    from evstore.postgres import PostgresBackend

    return PostgresBackend(url)


class Transaction:
    """Several appends (and a projection's own writes) committed together or not at all."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def dialect(self) -> str:
        return self._store.dialect

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: Expected = ANY
    ) -> list[RecordedEvent]:
        return self._store.append(stream_id, events, expected_version)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run SQL in this transaction, with ? placeholders on both dialects."""
        return self._store._live().execute(sql, params)

    def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        return self._store.read_stream(stream_id, from_version)

    def stream_version(self, stream_id: str) -> int | None:
        return self._store.stream_version(stream_id)


class Store:
    """An event store on one database. Not thread-safe: use one Store per thread."""

    def __init__(self, url: DatabaseURL, *, migrations_dir: str | Path | None = None) -> None:
        self.url = url
        self.dialect = url.dialect
        self.migrations_dir = (
            Path(migrations_dir) if migrations_dir is not None else default_dir(url.dialect)
        )
        self._backend: Backend | None = _open_backend(url)

    # -- lifecycle ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<evstore.Store {self.url.redacted}>"

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
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def _live(self) -> Backend:
        if self._backend is None:
            raise StoreClosed()
        return self._backend

    # -- migrations --------------------------------------------------------------------------

    def _migrator(self) -> Migrator:
        backend = self._live()
        shared = getattr(backend, "conn", None) if self.url.is_memory else None
        return Migrator(self.url, self.migrations_dir, sqlite_connection=shared)

    def migrate(self, lock_timeout: float = 10) -> list[str]:
        """Apply pending migrations through yoyo; returns the ids applied."""
        migrator = self._migrator()
        try:
            return migrator.apply(lock_timeout=lock_timeout)
        finally:
            migrator.close()

    def rollback(
        self, to: str | None = None, *, count: int | None = None, lock_timeout: float = 10
    ) -> list[str]:
        """Undo the last migration, `count` of them, or every one after `to` ("base": all)."""
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
        migrator = self._migrator()
        try:
            migrator.break_lock()
        finally:
            migrator.close()

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """`with store.transaction() as tx:` commits on success, rolls back on any error."""
        with self._live().transaction():
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
        backend = self._live()
        try:
            return backend.append(stream_id, encoded, expected)
        except AppendConflict as conflict:
            return self._resolve_conflict(backend, stream_id, encoded, expected, conflict)

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

    # -- reading -----------------------------------------------------------------------------

    def stream_version(self, stream_id: str) -> int | None:
        """The stream's current version, or None when it has no events."""
        return self._live().stream_version(check_name(stream_id, "stream_id"))

    def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """A stream's events from `from_version` on (down from it when backwards)."""
        check_name(stream_id, "stream_id")
        _check_int(from_version, "from_version", 0)
        if limit is not None:
            _check_int(limit, "limit", 0)
        if backwards and from_version == 1 and limit is None:
            from_version = 2**62  # backwards from the end by default
        return self._live().read_stream(stream_id, from_version, limit, backwards)

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
        return self._live().read_all(after, limit, types)

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
        return self._live().head_position()

    def tail(
        self,
        after: int = 0,
        types: Sequence[str] | None = None,
        *,
        poll_interval: float | None = None,
        idle_timeout: float | None = None,
        page_size: int = 500,
    ) -> Tail:
        """Iterate over events as they commit, forever or until stopped.

        Never skips or repeats an event. PostgreSQL wakes on LISTEN/NOTIFY; SQLite polls
        PRAGMA data_version every poll_interval seconds. idle_timeout ends the iteration after
        that many seconds without a new event; tail.stop() ends it from another thread.
        """
        _check_int(after, "after", 0)
        if types is not None:
            listed = [types] if isinstance(types, str) else types
            types = [check_name(t, "event type") for t in listed]
        interval = poll_interval if poll_interval is not None else (
            0.5 if self.dialect == "postgres" else 0.05
        )
        backend = self._live()
        if self.dialect == "postgres" or not self.url.is_memory:
            tail_backend, owned = _open_backend(self.url), True
        else:
            tail_backend, owned = backend, False
        return Tail(tail_backend, owned, after, types, interval, idle_timeout, page_size)

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
        backend = self._live()
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
    ) -> int:
        """Reset a projection (its `reset(tx)`, and its checkpoint to 0) and rebuild it."""
        name = check_name(projection.name, "projection name")
        with self.transaction() as tx:
            reset = getattr(projection, "reset", None)
            if reset is not None:
                reset(tx)
            self._live().set_checkpoint(name, 0)
        return self.run_projection(projection, batch_size=batch_size, progress=progress)

    def checkpoint(self, name: str) -> int:
        """The position a named subscription or projection has processed up to (0 if none)."""
        return self._live().checkpoint(check_name(name, "subscription name"), for_update=False)

    def save_checkpoint(self, name: str, position: int) -> None:
        _check_int(position, "position", 0)
        self._live().set_checkpoint(check_name(name, "subscription name"), position)

    def delete_subscription(self, name: str) -> bool:
        """Soft-delete a subscription (its row keeps deleted_at); True if one was active."""
        return self._live().delete_checkpoint(check_name(name, "subscription name"))

    # -- snapshots ---------------------------------------------------------------------------

    def save_snapshot(self, stream_id: str, version: int, state: Any) -> Snapshot:
        """Save the state of a stream as of `version` (which must exist)."""
        check_name(stream_id, "stream_id")
        _check_int(version, "version", 1)
        encoded = encode_json(state, "snapshot state")
        backend = self._live()
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
        return self._live().load_snapshot(check_name(stream_id, "stream_id"))


class Tail:
    """An iterator over committed events; stop() (from any thread) or idle_timeout ends it."""

    def __init__(
        self,
        backend: Backend,
        owned: bool,
        after: int,
        types: Sequence[str] | None,
        poll_interval: float,
        idle_timeout: float | None,
        page_size: int,
    ) -> None:
        self._backend = backend
        self._owned = owned
        self.position = after
        self._types = types
        self._interval = poll_interval
        self._idle_timeout = idle_timeout
        self._page_size = page_size
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

    def _run(self) -> Generator[RecordedEvent, None, None]:
        import time

        backend = self._backend
        changes = backend.changes(self._interval)
        assert isinstance(changes, Generator)
        idle_since = time.monotonic()
        try:
            while not self._stopped.is_set():
                page = backend.read_all(self.position, self._page_size, self._types)
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
                    if self._stopped.is_set() or (
                        self._idle_timeout is not None
                        and time.monotonic() - idle_since >= self._idle_timeout
                    ):
                        return
                if (
                    self._idle_timeout is not None
                    and time.monotonic() - idle_since >= self._idle_timeout
                ):
                    return
        finally:
            changes.close()
            if self._owned:
                backend.close()


def _check_int(value: object, what: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise InvalidInput(f"{what} must be >= {minimum}, not {value}")
