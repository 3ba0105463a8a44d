"""What both dialect modules do the same way: one named query of sql/queries, rows to records.

PostgresBackend and SQLiteBackend inherit these methods and supply what differs: how one
statement runs (_rows, _select: a borrowed connection, or the Store's lock), how a list of
values travels (an array, or a JSON array text), and what "no limit" is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from evstore.errors import EvstoreError
from evstore.events import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AssignedVersions,
    Expected,
    RecordedEvent,
    Snapshot,
)

Params = Sequence[Any] | Mapping[str, Any]
NO_PARAMS: Params = ()


class SharedBackend:
    _sql: dict[str, str]  # the dialect's named queries, as its driver takes them
    _no_limit: Any = None  # what LIMIT takes to mean "all rows"

    def _rows(self, sql: str, params: Params = NO_PARAMS) -> list[Any]:
        raise NotImplementedError

    def _select(self, sql: str, params: Mapping[str, Any]) -> list[RecordedEvent]:
        raise NotImplementedError

    def _values(self, values: Sequence[str]) -> Any:
        """A list of values as one parameter."""
        raise NotImplementedError

    def _snapshot(self, row: Sequence[Any]) -> Snapshot:
        raise NotImplementedError

    def run(self, name: str, params: Params = NO_PARAMS) -> list[tuple[Any, ...]]:
        """Run one of the dialect's named queries and fetch its rows."""
        return self._rows(self._sql[name], params)

    def find_events(self, event_ids: Sequence[str]) -> list[RecordedEvent]:
        return self._select(self._sql["find_events"], {"event_ids": self._values(event_ids)})

    def stream_version(self, stream_id: str) -> int | None:
        rows = self._rows(self._sql["stream_version"], {"stream_id": stream_id})
        return int(rows[0][0]) if rows else None

    def read_stream(
        self, stream_id: str, from_version: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]:
        name = "read_stream_backward" if backwards else "read_stream_forward"
        return self._select(
            self._sql[name],
            {"stream_id": stream_id, "from_version": from_version,
             "limit": self._no_limit if limit is None else limit},
        )

    def read_all(
        self, after: int, limit: int, types: Sequence[str] | None
    ) -> list[RecordedEvent]:
        if types is None:
            return self._select(self._sql["read_all"], {"after": after, "limit": limit})
        if len(types) == 1:
            return self._select(
                self._sql["read_all_of_type"],
                {"after": after, "event_type": types[0], "limit": limit},
            )
        return self._select(
            self._sql["read_all_of_types"],
            {"after": after, "types": self._values(types), "limit": limit},
        )

    def head_position(self) -> int:
        rows = self._rows(self._sql["head_position"])
        return int(rows[0][0] or 0) if rows else 0

    def load_snapshot(self, stream_id: str, version: int | None = None) -> Snapshot | None:
        if version is None:
            rows = self._rows(self._sql["load_snapshot"], {"stream_id": stream_id})
        else:
            rows = self._rows(
                self._sql["load_snapshot_at"], {"stream_id": stream_id, "version": version}
            )
        return self._snapshot(rows[0]) if rows else None

    def checkpoint(self, name: str, for_update: bool) -> int:
        query = "checkpoint_for_update" if for_update else "checkpoint"
        rows = self._rows(self._sql[query], {"name": name})
        return int(rows[0][0]) if rows else 0

    def set_checkpoint(self, name: str, position: int) -> None:
        self._rows(self._sql["set_checkpoint"], {"name": name, "position": position})

    def compare_and_set_checkpoint(self, name: str, position: int, expected: int) -> bool:
        """One statement: the checkpoint moves only if it is at `expected` (missing = 0)."""
        return bool(self._rows(
            self._sql["compare_and_set_checkpoint"],
            {"name": name, "position": position, "expected": expected},
        ))

    def delete_checkpoint(self, name: str) -> bool:
        return bool(self._rows(self._sql["delete_checkpoint"], {"name": name}))


def append_kind(expected: Expected) -> str:
    """How an append checks the stream's version: any, no_stream, exists, exact or assigned,
    the kinds of evstore_append() (migrations 0010, 0014), which SQLite's head statements
    mirror."""
    if expected is ANY:
        return "any"
    if expected is NO_STREAM or expected == 0:
        return "no_stream"
    if expected is STREAM_EXISTS:
        return "exists"
    if isinstance(expected, AssignedVersions):
        return "assigned"
    return "exact"


def expected_head(expected: Expected) -> int | None:
    """The head version an append expects (p_expected_version of evstore_append()): the
    exact version, or for assigned versions the first one minus one (-1 or 0: the stream may
    also be new); None for the other kinds."""
    if isinstance(expected, AssignedVersions):
        return expected.first - 1
    return expected if isinstance(expected, int) else None


def by_version(row: Sequence[Any]) -> int:
    """The sort key that puts RETURNING rows (position, version, ...) back in append order:
    RETURNING gives rows in no promised order."""
    return int(row[1])


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def translating(
    driver_error: type[Exception], translate: Callable[[Any], EvstoreError]
) -> Iterator[None]:
    """The driver's errors raised in the block become evstore errors, by the dialect's one
    translate function."""
    try:
        yield
    except driver_error as e:
        raise translate(e) from e
