"""The small interface both dialect modules implement; evstore.store speaks only to this."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from evstore.events import EncodedEvent, Expected, RecordedEvent, Snapshot
from evstore.urls import DatabaseURL, Dialect


class AppendConflict(Exception):
    """Raised by a backend's append when an id or version is taken; the store resolves it
    (idempotent retry, DuplicateEventId or WrongExpectedVersion). Nothing was written."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "version" or "event_id"


class Backend(Protocol):
    dialect: Dialect
    url: DatabaseURL

    def close(self) -> None: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    @property
    def in_transaction(self) -> bool: ...

    def append(
        self, stream_id: str, events: Sequence[EncodedEvent], expected: Expected
    ) -> list[RecordedEvent]: ...

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

    def load_snapshot(self, stream_id: str, version: int | None = None) -> Snapshot | None: ...

    def checkpoint(self, name: str, for_update: bool) -> int: ...

    def set_checkpoint(self, name: str, position: int) -> None: ...

    def compare_and_set_checkpoint(self, name: str, position: int, expected: int) -> bool:
        ...

    def delete_checkpoint(self, name: str) -> bool: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def run(self, name: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """One of the dialect's named queries (sql/queries), by name."""
        ...

    def changes(self, poll_interval: float) -> Iterator[bool]: ...
