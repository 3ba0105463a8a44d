"""The store's logic, written once for the sync Store and the AsyncStore.

Why plans, and not code generated from the async source as psycopg does
(tools/async_to_sync.py): psycopg's sync and async modules differ only in their I/O calls,
so an AST rewrite of `await x()` into `x()` gives the sync module. evstore's do not: the sync
Store binds a transaction to a thread and its SQLite backend holds an RLock on one
connection, while the AsyncStore binds a transaction to a task and runs SQLite on a thread of
its own. A rewrite would need a table of exceptions for each of those, and a generated
store.py beside a hand-written one. What is really the same on both sides is the logic:
argument checks, encoding, the conflict resolution with its follow-up queries, paging, the
projection and replay loops, the tail's wake-up and reconnect rules. So that logic is written
here as plans (a sans-IO style): generators that yield requests such as
`call("append", stream_id, events, expected)` and are sent each result, or have the error
thrown in. evstore.store drives a plan by calling the backend; evstore.aio drives the same
plan by awaiting it. Nothing in this module does I/O, and a driver is a dozen lines.

The requests a driver handles itself, beside the backend's methods:
    transaction(plan)       run `plan` in a transaction (nested: a savepoint)
    apply(fn, *args)        call the caller's fn(tx, *args) in that transaction; the async
                            driver awaits it when it returns an awaitable
    callback(fn, *args)     call the caller's fn(*args) (progress), likewise
    deliver(item)           hand one item to the caller of an iterating plan (iter_all, tail)
    connect / disconnect    a tail's own backend, opened on first need, closed after a failure
    wait(seconds)           sleep, or less when the tail is stopped; returns True if stopped
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from evstore.dialects import shared
from evstore.dialects.base import AppendConflict, Plan, Request, call
from evstore.dialects.shared import Queries
from evstore.errors import (
    ConnectionFailed,
    DuplicateEventId,
    InvalidInput,
    SnapshotError,
    WrongExpectedVersion,
)
from evstore.events import (
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

MAX_INT = 2**63 - 1  # positions, versions and limits are 64-bit signed on both dialects

# A plan that hands items to its caller as it goes (deliver requests) and returns nothing.
Feed = Generator[Request, Any, None]


def next_request(
    plan: Generator[Request, Any, Any], value: Any, error: Exception | None
) -> Request:
    """Send the plan the last request's result, or throw in its error; the plan's next
    request. When the plan ends, ("return", (its result,))."""
    try:
        return plan.send(value) if error is None else plan.throw(error)
    except StopIteration as stop:
        return ("return", (stop.value,))


ENDS = frozenset({"return", "deliver"})  # the requests that end a driver's advance()


def check_int(value: object, what: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise InvalidInput(f"{what} must be >= {minimum}, not {value}")
    if value > MAX_INT:
        raise InvalidInput(
            f"{what} must be at most 2**63 - 1 ({MAX_INT}), the largest 64-bit integer both "
            f"dialects store, not {value}"
        )


def check_types(types: Sequence[str] | None) -> list[str] | None:
    if types is None:
        return None
    listed = [types] if isinstance(types, str) else types
    return [check_name(t, "event type") for t in listed]


# -- writing ---------------------------------------------------------------------------------


def append(
    q: Queries, stream_id: str, events: Sequence[NewEvent], expected_version: Expected
) -> Plan[list[RecordedEvent]]:
    encoded = encode_events(stream_id, events)
    expected = check_expected(expected_version)
    try:
        recorded: list[RecordedEvent] = yield call("append", stream_id, encoded, expected)
    except AppendConflict:
        return (yield from resolve_conflict(q, stream_id, encoded, expected))
    return recorded


def resolve_conflict(
    q: Queries, stream_id: str, events: list[EncodedEvent], expected: Expected
) -> Plan[list[RecordedEvent]]:
    """An append hit a taken id or version: an idempotent retry returns the stored records,
    anything else raises WrongExpectedVersion or DuplicateEventId."""
    ids = [e.event_id for e in events]
    stored = yield from shared.find_events(q, ids)
    if not stored:
        # Nothing of this append is stored, so the conflict was on the stream's version.
        current = yield from shared.stream_version(q, stream_id)
        raise WrongExpectedVersion(stream_id, expected, current)
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


# -- reading ---------------------------------------------------------------------------------


def get_event(q: Queries, event_id: str) -> Plan[RecordedEvent | None]:
    found = yield from shared.find_events(q, [check_event_id(event_id)])
    return found[0] if found else None


def stream_version(q: Queries, stream_id: str) -> Plan[int | None]:
    return (yield from shared.stream_version(q, check_name(stream_id, "stream_id")))


def read_stream(
    q: Queries, stream_id: str, from_version: int | None, limit: int | None, backwards: bool
) -> Plan[list[RecordedEvent]]:
    check_name(stream_id, "stream_id")
    if from_version is None:
        from_version = MAX_INT if backwards else 1
    check_int(from_version, "from_version", 0)
    if limit is not None:
        check_int(limit, "limit", 0)
    return (yield from shared.read_stream(q, stream_id, from_version, limit, backwards))


def read_all(
    q: Queries, after: int, limit: int, types: Sequence[str] | None
) -> Plan[list[RecordedEvent]]:
    check_int(after, "after", 0)
    check_int(limit, "limit", 1)
    return (yield from shared.read_all(q, after, limit, check_types(types)))


def iter_all(q: Queries, after: int, types: Sequence[str] | None, page_size: int) -> Feed:
    """Deliver every event after `after` in global order, read page by page."""
    while True:
        page = yield from read_all(q, after, page_size, types)
        for event in page:
            yield call("deliver", event)
        if len(page) < page_size:
            return
        after = page[-1].position


def run_query(q: Queries, name: str, params: Any) -> Plan[list[tuple[Any, ...]]]:
    return (yield from shared.run(q, name, params))


def head_position(q: Queries) -> Plan[int]:
    return (yield from shared.head_position(q))


# -- projections -----------------------------------------------------------------------------


def run_projection(
    q: Queries, projection: Any, batch_size: int, progress: Callable[[int], Any] | None
) -> Plan[int]:
    """Apply every event after the projection's checkpoint, batch by batch; each batch, its
    writes and the advanced checkpoint in one transaction."""
    name = check_name(projection.name, "projection name")
    applied = 0
    while True:
        count = yield call("transaction", _projection_batch(q, name, projection, batch_size))
        if not count:
            return applied
        applied += count
        if progress is not None:
            yield call("callback", progress, count)


def _projection_batch(q: Queries, name: str, projection: Any, batch_size: int) -> Plan[int]:
    position = yield from shared.checkpoint(q, name, True)
    events = yield from shared.read_all(q, position, batch_size, None)
    if not events:
        return 0
    for event in events:
        yield call("apply", projection.apply, event)
    yield from shared.set_checkpoint(q, name, events[-1].position)
    return len(events)


def replay(
    q: Queries,
    projection: Any,
    batch_size: int,
    progress: Callable[[int], Any] | None,
    atomic: bool,
) -> Plan[int]:
    name = check_name(projection.name, "projection name")
    check_int(batch_size, "batch_size", 1)
    reset = getattr(projection, "reset", None)
    if not atomic:
        yield call("transaction", _reset(q, name, reset))
        return (yield from run_projection(q, projection, batch_size, progress))
    applied = yield call("transaction", _rebuild(q, name, projection, reset, batch_size,
                                                 progress))
    return int(applied) + (yield from run_projection(q, projection, batch_size, progress))


def _reset(q: Queries, name: str, reset: Any) -> Plan[None]:
    if reset is not None:
        yield call("apply", reset)
    yield from shared.set_checkpoint(q, name, 0)


def _rebuild(
    q: Queries,
    name: str,
    projection: Any,
    reset: Any,
    batch_size: int,
    progress: Callable[[int], Any] | None,
) -> Plan[int]:
    if reset is not None:
        yield call("apply", reset)
    position = applied = 0
    while True:
        events = yield from shared.read_all(q, position, batch_size, None)
        if not events:
            break
        for event in events:
            yield call("apply", projection.apply, event)
        position = events[-1].position
        applied += len(events)
        if progress is not None:
            yield call("callback", progress, len(events))
    yield from shared.set_checkpoint(q, name, position)
    return applied


def checkpoint(q: Queries, name: str) -> Plan[int]:
    return (yield from shared.checkpoint(q, check_name(name, "subscription name"), False))


def save_checkpoint(q: Queries, name: str, position: int) -> Plan[None]:
    check_int(position, "position", 0)
    yield from shared.set_checkpoint(q, check_name(name, "subscription name"), position)


def delete_subscription(q: Queries, name: str) -> Plan[bool]:
    return (yield from shared.delete_checkpoint(q, check_name(name, "subscription name")))


# -- snapshots -------------------------------------------------------------------------------


def save_snapshot(q: Queries, stream_id: str, version: int, state: Any) -> Plan[Snapshot]:
    check_name(stream_id, "stream_id")
    check_int(version, "version", 1)
    encoded = encode_json(state, "snapshot state")
    saved: Snapshot = yield call("transaction", _save_snapshot(q, stream_id, version, encoded))
    return saved


def _save_snapshot(q: Queries, stream_id: str, version: int, state: str) -> Plan[Snapshot]:
    current = yield from shared.stream_version(q, stream_id)
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
    return (yield from shared.save_snapshot(q, stream_id, version, state))


def load_snapshot(q: Queries, stream_id: str) -> Plan[Snapshot | None]:
    return (yield from shared.load_snapshot(q, check_name(stream_id, "stream_id")))


# -- tails -----------------------------------------------------------------------------------


@dataclass
class TailState:
    """A tail's settings and progress; `position` is the last event delivered."""

    position: int
    types: list[str] | None
    poll_interval: float
    idle_timeout: float | None
    page_size: int
    reconnect_attempts: int
    shared: bool  # the store's own backend (an in-memory database): never reopened
    memory: bool
    stopped: Callable[[], bool]
    failures: int = field(default=0)


def tail_state(
    dialect: str,
    memory: bool,
    stopped: Callable[[], bool],
    after: int,
    types: Sequence[str] | None,
    poll_interval: float | None,
    idle_timeout: float | None,
    page_size: int,
    reconnect_attempts: int,
) -> TailState:
    """A tail's arguments, checked. An in-memory database has one connection, which the tail
    shares with its store; every other tail opens a connection of its own."""
    check_int(after, "after", 0)
    check_int(page_size, "page_size", 1)
    check_int(reconnect_attempts, "reconnect_attempts", 0)
    interval = poll_interval if poll_interval is not None else (
        0.5 if dialect == "postgres" else 0.05
    )
    shared_backend = dialect == "sqlite" and memory
    return TailState(after, check_types(types), interval, idle_timeout, page_size,
                     0 if shared_backend else reconnect_attempts, shared_backend, memory,
                     stopped)


def tail(q: Queries, t: TailState) -> Feed:
    """Deliver events as they commit. Never skips or repeats one: when the connection drops,
    reconnect with bounded backoff (0.1 s doubling to 5 s) and resume after the last event
    delivered; after reconnect_attempts failures in a row, raise ConnectionFailed naming the
    position to resume from."""
    t.failures = 0
    while True:
        try:
            yield from _follow(q, t)
            return
        except ConnectionFailed as error:
            yield call("disconnect")
            t.failures += 1
            if t.shared or t.failures > t.reconnect_attempts:
                raise ConnectionFailed(
                    f"the tail lost its connection and could not reconnect after "
                    f"{t.reconnect_attempts} attempt(s): {error}. Nothing was skipped: "
                    f"resume with store.tail(after={t.position})"
                ) from error
            if (yield call("wait", min(0.1 * 2 ** (t.failures - 1), 5.0))):
                return


def _follow(q: Queries, t: TailState) -> Feed:
    """Deliver events after t.position until stopped or idle. The wake-up is primed before
    every read, so a commit between a read and the following wait is seen by the wait; a full
    page is followed by the next page at once."""
    yield call("connect")
    wake = q.wake(t.memory)
    yield from wake.prime()  # LISTEN, or the data_version baseline, before the first read
    idle_since = time.monotonic()
    while not t.stopped():
        page = yield from shared.read_all(q, t.position, t.page_size, t.types)
        t.failures = 0  # connected and reading again
        if page:
            for event in page:
                t.position = event.position
                yield call("deliver", event)
                if t.stopped():
                    return
            idle_since = time.monotonic()
            if len(page) == t.page_size:
                continue
        while not (yield from wake.wait(t.poll_interval)):
            if t.stopped() or _idle(t, idle_since):
                return
        if _idle(t, idle_since):
            return


def _idle(t: TailState, since: float) -> bool:
    return t.idle_timeout is not None and time.monotonic() - since >= t.idle_timeout
