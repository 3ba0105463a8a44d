"""The small interfaces the dialect modules implement, and the requests plans make of them.

evstore's logic is written once, as plans (evstore.plans, evstore.dialects.shared): generators
that yield requests, `(name, args)`, and receive each request's result. A request names a
method of the backend (`rows`, `events`, `append`, ...), or one of the few steps a driver
does itself (`transaction`, `apply`, `wait`, ...; see evstore.plans). The sync Store drives
plans on a Backend, the AsyncStore (evstore.aio) on an AsyncBackend: the same method names,
called or awaited.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Protocol, TypeVar

from evstore.events import EncodedEvent, Expected, RecordedEvent, Snapshot
from evstore.urls import DatabaseURL, Dialect

T = TypeVar("T")
Request = tuple[str, tuple[Any, ...]]
# A plan yields requests, is sent each one's result, and returns its own.
Plan = Generator[Request, Any, T]


def call(name: str, *args: Any) -> Request:
    """The request to run `name(*args)`: a backend method, or a driver's own step."""
    return (name, args)


class AppendConflict(Exception):
    """Raised by a backend's append when an id or version is taken; the store resolves it
    (idempotent retry, DuplicateEventId or WrongExpectedVersion). Nothing was written."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "version" or "event_id"


class Backend(Protocol):
    """One database, driven synchronously. Threads may share it."""

    dialect: Dialect
    url: DatabaseURL

    def close(self) -> None: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    @property
    def in_transaction(self) -> bool: ...

    def rows(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Run one statement (a named query, as the driver takes it) and fetch its rows."""
        ...

    def events(self, sql: str, params: Any) -> list[RecordedEvent]:
        """Run one statement that selects the event columns, as records."""
        ...

    def append(
        self, stream_id: str, events: Sequence[EncodedEvent], expected: Expected
    ) -> list[RecordedEvent]: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The caller's own SQL, with ? placeholders on both dialects."""
        ...

    # The named queries as methods (evstore.dialects.shared.SyncQueries), for code that holds
    # a backend; the Store runs the same plans through its driver.

    def run(self, name: str, params: Any = ()) -> list[tuple[Any, ...]]: ...

    def find_events(self, event_ids: Sequence[str]) -> list[RecordedEvent]: ...

    def stream_version(self, stream_id: str) -> int | None: ...

    def read_stream(
        self, stream_id: str, from_version: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]: ...

    def read_all(
        self, after: int, limit: int, types: Sequence[str] | None
    ) -> list[RecordedEvent]: ...

    def head_position(self) -> int: ...

    def save_snapshot(self, stream_id: str, version: int, state: str) -> Snapshot: ...

    def load_snapshot(self, stream_id: str) -> Snapshot | None: ...

    def checkpoint(self, name: str, for_update: bool) -> int: ...

    def set_checkpoint(self, name: str, position: int) -> None: ...

    def delete_checkpoint(self, name: str) -> bool: ...


class AsyncBackend(Protocol):
    """The same interface for asyncio: every operation a coroutine."""

    dialect: Dialect
    url: DatabaseURL

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[None]: ...

    async def rows(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]: ...

    async def events(self, sql: str, params: Any) -> list[RecordedEvent]: ...

    async def append(
        self, stream_id: str, events: Sequence[EncodedEvent], expected: Expected
    ) -> list[RecordedEvent]: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
