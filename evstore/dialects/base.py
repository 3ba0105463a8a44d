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

from evstore.events import EncodedEvent, Expected, RecordedEvent
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
