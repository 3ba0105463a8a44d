"""The event store contract, on SQLite file, SQLite memory and PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import evstore
from evstore import NewEvent

E = NewEvent


def ev(n: int, type_: str = "T") -> list[NewEvent]:
    return [E(type_, {"i": i}) for i in range(n)]


def test_append_assigns_versions_and_contiguous_positions(store: evstore.Store) -> None:
    first = store.append("a", ev(3), evstore.NO_STREAM)
    second = store.append("b", ev(2))
    third = store.append("a", ev(2), 3)
    assert [e.version for e in first + third] == [1, 2, 3, 4, 5]
    for batch in (first, second, third):
        positions = [e.position for e in batch]
        assert positions == list(range(positions[0], positions[0] + len(batch)))
    assert store.stream_version("a") == 5 and store.stream_version("nope") is None
    assert store.read_all() == sorted(first + second + third)


@pytest.mark.parametrize("expected, current, ok", [
    (evstore.NO_STREAM, None, True), (evstore.NO_STREAM, 2, False),
    (evstore.STREAM_EXISTS, None, False), (evstore.STREAM_EXISTS, 2, True),
    (0, None, True), (0, 2, False), (2, 2, True), (1, 2, False), (3, 2, False),
    (evstore.ANY, None, True), (evstore.ANY, 2, True),
])
def test_expected_version(store: evstore.Store, expected: Any, current: int | None,
                          ok: bool) -> None:
    if current:
        store.append("s", ev(current))
    if ok:
        store.append("s", ev(1), expected)
        assert store.stream_version("s") == (current or 0) + 1
    else:
        with pytest.raises(evstore.WrongExpectedVersion) as caught:
            store.append("s", ev(1), expected)
        message = str(caught.value)
        assert "'s'" in message and str(expected) in message
        assert caught.value.actual == current
        assert store.stream_version("s") == current
        assert len(store.read_all()) == (current or 0)


def test_idempotent_retry_returns_stored_records(store: evstore.Store) -> None:
    events = [E("T", {"i": i}, event_id=evstore_ulid(i)) for i in range(3)]
    first = store.append("s", events, evstore.NO_STREAM)
    assert store.append("s", events, evstore.NO_STREAM) == first
    assert store.append("s", events) == first
    assert len(store.read_all()) == 3
    with pytest.raises(evstore.DuplicateEventId):
        store.append("other", [events[0]])
    with pytest.raises(evstore.DuplicateEventId):
        store.append("s", [*events[:2], E("T", {})])
    with pytest.raises(evstore.DuplicateEventId):
        store.append("s", events, 1)  # same ids, but the retry claims other versions
    assert len(store.read_all()) == 3


def evstore_ulid(i: int) -> str:
    return f"01ARZ3NDEKTSV4RRFFQ69G5F{i:02d}"


def test_multi_stream_transaction_is_atomic(store: evstore.Store) -> None:
    with store.transaction() as tx:
        tx.append("a", ev(2))
        tx.append("b", ev(1))
    assert store.stream_version("a") == 2 and store.stream_version("b") == 1
    with pytest.raises(evstore.WrongExpectedVersion), store.transaction() as tx:
        tx.append("c", ev(1))
        tx.append("a", ev(1), expected_version=7)
    assert store.stream_version("c") is None and store.stream_version("a") == 2
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.append("d", ev(1))
        raise RuntimeError("caller gives up")
    assert store.stream_version("d") is None
    with store.transaction() as tx:  # a conflict caught inside keeps the transaction usable
        with pytest.raises(evstore.WrongExpectedVersion):
            tx.append("a", ev(1), expected_version=0)
        tx.append("e", ev(1))
    assert store.stream_version("e") == 1 and store.stream_version("a") == 2


def test_read_stream_forms(store: evstore.Store) -> None:
    store.append("s", ev(5))
    assert [e.version for e in store.read_stream("s", from_version=3)] == [3, 4, 5]
    assert [e.version for e in store.read_stream("s", limit=2)] == [1, 2]
    assert [e.version for e in store.read_stream("s", backwards=True)] == [5, 4, 3, 2, 1]
    assert [e.version for e in store.read_stream("s", 4, 2, backwards=True)] == [4, 3]
    assert store.read_stream("missing") == []


def test_read_all_pages_and_types(store: evstore.Store) -> None:
    store.append("a", [E("A", 1), E("B", 2), E("A", 3)])
    store.append("b", [E("C", 4), E("A", 5)])
    page = store.read_all(after=0, limit=2)
    assert [e.data for e in page] == [1, 2]
    assert [e.data for e in store.read_all(after=page[-1].position)] == [3, 4, 5]
    assert [e.data for e in store.read_all(types=["A"])] == [1, 3, 5]
    assert [e.data for e in store.read_all(types=["B", "C"])] == [2, 4]
    assert [e.data for e in store.iter_all(page_size=2)] == [1, 2, 3, 4, 5]


def test_tail_yields_committed_events_once_and_stops(store: evstore.Store) -> None:
    store.append("s", ev(3))
    tail = store.tail(poll_interval=0.02, idle_timeout=30)
    got = [next(tail) for _ in range(3)]
    assert [e.version for e in got] == [1, 2, 3]
    if store.url.is_memory:
        store.append("s", ev(2))
    else:
        writer = threading.Thread(target=lambda: (time.sleep(0.1), _append_other(store.url.url)))
        writer.start()
    more = [next(tail), next(tail)]
    assert [e.version for e in more] == [4, 5]
    tail.stop()
    assert list(tail) == []
    tail.close()
    quiet = store.tail(after=store.head_position(), poll_interval=0.02, idle_timeout=0.2)
    assert list(quiet) == []


def _append_other(url: str) -> None:
    with evstore.connect(url) as other:
        other.append("s", ev(2))


def test_tail_filters_types(store: evstore.Store) -> None:
    store.append("s", [E("A", 1), E("B", 2), E("A", 3)])
    with store.tail(types=["A"], poll_interval=0.02, idle_timeout=0.2) as tail:
        assert [e.data for e in tail] == [1, 3]


class Counter:
    """Counts events per type in a table of its own; ignores nothing but unknown types."""

    name = "counter"

    def __init__(self, store: evstore.Store) -> None:
        store.execute("CREATE TABLE IF NOT EXISTS counts (type TEXT PRIMARY KEY, n INTEGER)")

    def reset(self, tx: evstore.Transaction) -> None:
        tx.execute("DELETE FROM counts")

    def apply(self, tx: evstore.Transaction, event: evstore.RecordedEvent) -> None:
        if event.type not in ("A", "B"):
            return
        tx.execute("INSERT INTO counts (type, n) VALUES (?, 1) ON CONFLICT (type) "
                   "DO UPDATE SET n = counts.n + 1", (event.type,))


def test_projection_live_equals_replay(store: evstore.Store) -> None:
    projection = Counter(store)
    assert isinstance(projection, evstore.Projection)
    store.append("a", [E("A", 1), E("B", 2), E("Unknown", 3)])
    assert store.run_projection(projection, batch_size=2) == 3
    store.append("b", [E("A", 4)])
    assert store.run_projection(projection) == 1
    assert store.run_projection(projection) == 0
    live = store.execute("SELECT type, n FROM counts ORDER BY type")
    assert live == [("A", 2), ("B", 1)]
    assert store.checkpoint("counter") == store.head_position()
    assert store.replay(projection, batch_size=3) == 4
    assert store.execute("SELECT type, n FROM counts ORDER BY type") == live


class Exploding(Counter):
    name = "exploding"

    def apply(self, tx: evstore.Transaction, event: evstore.RecordedEvent) -> None:
        super().apply(tx, event)
        if event.data == "boom":
            raise RuntimeError("projection bug")


def test_projection_failure_rolls_back_its_batch_and_checkpoint(store: evstore.Store) -> None:
    projection = Exploding(store)
    store.append("a", [E("A", 1)])
    store.run_projection(projection)
    store.append("a", [E("A", 2), E("A", "boom")])
    with pytest.raises(RuntimeError):
        store.run_projection(projection)
    assert store.execute("SELECT n FROM counts") == [(1,)]
    assert store.checkpoint("exploding") == 1


def test_snapshots(store: evstore.Store) -> None:
    store.append("s", ev(3))
    assert store.load_snapshot("s") is None
    store.save_snapshot("s", 2, {"total": 2})
    saved = store.save_snapshot("s", 3, {"total": 3, "nested": [1, {"x": None}]})
    loaded = store.load_snapshot("s")
    assert loaded == saved and loaded is not None and loaded.version == 3
    with pytest.raises(evstore.SnapshotError, match="version 4"):
        store.save_snapshot("s", 4, {})
    with pytest.raises(evstore.SnapshotError, match="does not exist"):
        store.save_snapshot("missing", 1, {})


@pytest.mark.parametrize("stream, events, expected, fragment", [
    ("", ev(1), evstore.ANY, "empty"),
    ("x" * 201, ev(1), evstore.ANY, "limit is 200"),
    ("s", [], evstore.ANY, "at least one event"),
    ("s", [E("T", {"x": {1, 2}})], evstore.ANY, "not JSON-serialisable"),
    ("s", [E("T", {"x": float("nan")})], evstore.ANY, "NaN"),
    ("s", [E("T", [float("inf")])], evstore.ANY, "NaN or Infinity"),
    ("s", [E("T", {"x": "a\x00b"})], evstore.ANY, "NUL"),
    ("s", [E("T", {"a\x00": 1})], evstore.ANY, "NUL"),
    ("s\x00", ev(1), evstore.ANY, "NUL"),
    ("s", [E("T", {}, event_id="not-a-ulid")], evstore.ANY, "not a ULID"),
    ("s", [E("T", {}, event_id="8ZZZZZZZZZZZZZZZZZZZZZZZZZ")], evstore.ANY, "not a ULID"),
    ("s", ev(1), -1, "negative"),
    ("s", ev(1), "3", "must be"),
    ("s", [E("", {})], evstore.ANY, "empty"),
    ("s", [E("T", {}, metadata=[1])], evstore.ANY, "metadata"),  # type: ignore[arg-type]
])
def test_bad_input_is_refused_and_nothing_is_written(
    store: evstore.Store, stream: str, events: list[NewEvent], expected: Any, fragment: str
) -> None:
    store.append("s", ev(1))
    with pytest.raises(evstore.InvalidInput, match=fragment):
        store.append(stream, [*ev(1), *events] if events else events, expected)
    assert len(store.read_all()) == 1 and store.stream_version("s") == 1


def test_literal_backslash_u0000_text_round_trips(store: evstore.Store) -> None:
    [event] = store.append("s", [E("T", {"text": "\\u0000 is fine as text"})])
    assert store.read_all() == [event] and event.data["text"].startswith("\\u0000")


def test_large_payload_and_large_batch(store: evstore.Store) -> None:
    big = {"blob": "x" * (10 * 1024 * 1024)}
    [event] = store.append("big", [E("T", big)])
    assert store.read_stream("big")[0].data == big and event.version == 1
    many = store.append("many", ev(10_000))
    assert [e.version for e in many] == list(range(1, 10_001))
    assert many[-1].position - many[0].position == 9_999
    assert store.stream_version("many") == 10_000


def test_closed_store_says_so(url: str) -> None:
    store = evstore.connect(url)
    store.close()
    with pytest.raises(evstore.StoreClosed):
        store.read_all()
