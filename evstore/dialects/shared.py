"""What both dialects do the same way: one named query of sql/queries, rows to records.

Each function here is a plan (evstore.dialects.base): it builds the statement and its
parameters, yields them as a `rows` or `events` request, and turns the result into what the
store returns. The sync and the async backends only run statements; so these lines serve both.
A dialect supplies what differs as a Queries value: its statements, how a list of values
travels (an array, or a JSON array text), what "no limit" is, and how snapshots come back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from evstore.dialects.base import Plan, call
from evstore.errors import EvstoreError
from evstore.events import ANY, NO_STREAM, STREAM_EXISTS, Expected, RecordedEvent, Snapshot
from evstore.urls import Dialect

T = TypeVar("T")


class Wake(Protocol):
    """How a tail learns that the log may have changed: armed once before its first read,
    then one wait at a time (True: read again; False: nothing yet, or stopped)."""

    def prime(self) -> Plan[None]: ...

    def wait(self, poll_interval: float) -> Plan[bool]: ...


@dataclass(frozen=True)
class Queries:
    """A dialect's statements and the small conversions that differ between dialects."""

    dialect: Dialect
    sql: Mapping[str, str]  # name -> the statement as the driver takes it
    no_limit: Any  # what LIMIT takes to mean "all rows"
    values: Callable[[Sequence[str]], Any]  # a list of values as one parameter
    snapshot: Callable[[Sequence[Any]], Snapshot]  # a load_snapshot row
    saved: Callable[[str, int, str, Sequence[Any]], Snapshot]  # save_snapshot's RETURNING row
    wake: Callable[[bool], Wake]  # a tail's wake-up (the flag: an in-memory database)


def run(q: Queries, name: str, params: Any = ()) -> Plan[list[tuple[Any, ...]]]:
    """One of the dialect's named queries, and its rows."""
    rows: list[tuple[Any, ...]] = yield call("rows", q.sql[name], params)
    return rows


def find_events(q: Queries, event_ids: Sequence[str]) -> Plan[list[RecordedEvent]]:
    found: list[RecordedEvent] = yield call(
        "events", q.sql["find_events"], {"event_ids": q.values(event_ids)}
    )
    return found


def stream_version(q: Queries, stream_id: str) -> Plan[int | None]:
    rows = yield call("rows", q.sql["stream_version"], {"stream_id": stream_id})
    return int(rows[0][0]) if rows else None


def read_stream(
    q: Queries, stream_id: str, from_version: int, limit: int | None, backwards: bool
) -> Plan[list[RecordedEvent]]:
    name = "read_stream_backward" if backwards else "read_stream_forward"
    params = {"stream_id": stream_id, "from_version": from_version,
              "limit": q.no_limit if limit is None else limit}
    found: list[RecordedEvent] = yield call("events", q.sql[name], params)
    return found


def read_all(
    q: Queries, after: int, limit: int, types: Sequence[str] | None
) -> Plan[list[RecordedEvent]]:
    params: dict[str, Any]
    if types is None:
        name, params = "read_all", {"after": after, "limit": limit}
    elif len(types) == 1:
        name = "read_all_of_type"
        params = {"after": after, "event_type": types[0], "limit": limit}
    else:
        name = "read_all_of_types"
        params = {"after": after, "types": q.values(types), "limit": limit}
    found: list[RecordedEvent] = yield call("events", q.sql[name], params)
    return found


def head_position(q: Queries) -> Plan[int]:
    rows = yield call("rows", q.sql["head_position"])
    return int(rows[0][0] or 0) if rows else 0


def save_snapshot(q: Queries, stream_id: str, version: int, state: str) -> Plan[Snapshot]:
    params = {"stream_id": stream_id, "version": version, "state": state}
    rows = yield call("rows", q.sql["save_snapshot"], params)
    return q.saved(stream_id, version, state, rows[0])


def load_snapshot(q: Queries, stream_id: str) -> Plan[Snapshot | None]:
    rows = yield call("rows", q.sql["load_snapshot"], {"stream_id": stream_id})
    return q.snapshot(rows[0]) if rows else None


def checkpoint(q: Queries, name: str, for_update: bool) -> Plan[int]:
    query = "checkpoint_for_update" if for_update else "checkpoint"
    rows = yield call("rows", q.sql[query], {"name": name})
    return int(rows[0][0]) if rows else 0


def set_checkpoint(q: Queries, name: str, position: int) -> Plan[None]:
    yield call("rows", q.sql["set_checkpoint"], {"name": name, "position": position})


def delete_checkpoint(q: Queries, name: str) -> Plan[bool]:
    return bool((yield call("rows", q.sql["delete_checkpoint"], {"name": name})))


def drive(backend: Any, plan: Plan[T]) -> T:
    """Run a query plan of this module on a sync backend (each request a method call)."""
    value: Any = None
    while True:
        try:
            name, args = plan.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value = getattr(backend, name)(*args)


class SyncQueries:
    """The queries above as methods of a sync backend, for code that holds a Backend rather
    than a Store (consumer groups, the relay). The Store itself runs the plans."""

    queries: Queries

    def run(self, name: str, params: Any = ()) -> list[tuple[Any, ...]]:
        return drive(self, run(self.queries, name, params))

    def find_events(self, event_ids: Sequence[str]) -> list[RecordedEvent]:
        return drive(self, find_events(self.queries, event_ids))

    def stream_version(self, stream_id: str) -> int | None:
        return drive(self, stream_version(self.queries, stream_id))

    def read_stream(
        self, stream_id: str, from_version: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]:
        return drive(self, read_stream(self.queries, stream_id, from_version, limit, backwards))

    def read_all(
        self, after: int, limit: int, types: Sequence[str] | None
    ) -> list[RecordedEvent]:
        return drive(self, read_all(self.queries, after, limit, types))

    def head_position(self) -> int:
        return drive(self, head_position(self.queries))

    def save_snapshot(self, stream_id: str, version: int, state: str) -> Snapshot:
        return drive(self, save_snapshot(self.queries, stream_id, version, state))

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return drive(self, load_snapshot(self.queries, stream_id))

    def checkpoint(self, name: str, for_update: bool) -> int:
        return drive(self, checkpoint(self.queries, name, for_update))

    def set_checkpoint(self, name: str, position: int) -> None:
        drive(self, set_checkpoint(self.queries, name, position))

    def delete_checkpoint(self, name: str) -> bool:
        return drive(self, delete_checkpoint(self.queries, name))


def append_kind(expected: Expected) -> str:
    """How an append checks the stream's version: any, no_stream, exists or exact, the kinds
    of evstore_append() (migration 0010), which SQLite's head statements mirror."""
    if expected is ANY:
        return "any"
    if expected is NO_STREAM or expected == 0:
        return "no_stream"
    if expected is STREAM_EXISTS:
        return "exists"
    return "exact"


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
