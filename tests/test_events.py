"""RecordedEvent (lazy JSON, immutable, ordered by position), the JSON decoder and ULID checks."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest

import evstore
from evstore.events import RecordedEvent, check_event_id, decode_json

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def lazy(position: int = 1, payload: str = '{"a":[1,2]}') -> RecordedEvent:
    return RecordedEvent.from_json(position, "s", 1, "01ARZ3NDEKTSV4RRFFQ69G5FAV", "T",
                                   payload, '{"m":true}', WHEN)


def test_lazy_record_decodes_on_first_access_and_keeps_the_value() -> None:
    record = lazy()
    first = record.data
    assert first == {"a": [1, 2]}
    assert record.data is first  # decoded once
    assert record.metadata == {"m": True}


def test_lazy_and_eager_records_are_equal_ordered_and_hash_alike() -> None:
    eager = RecordedEvent(1, "s", 1, "01ARZ3NDEKTSV4RRFFQ69G5FAV", "T", {"a": [1, 2]},
                          {"m": True}, WHEN)
    assert lazy() == eager
    assert hash(lazy()) == hash(eager)
    assert sorted([lazy(3), lazy(1), lazy(2)]) == [lazy(1), lazy(2), lazy(3)]
    assert lazy(1) < lazy(2) <= lazy(2) and lazy(3) > lazy(2) >= lazy(2)
    assert lazy(1) != "not an event"
    assert repr(lazy()) == repr(eager)


def test_records_are_immutable() -> None:
    record = lazy()
    with pytest.raises(AttributeError):
        record.position = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        record.data = {}  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del record.type  # type: ignore[misc]
    assert record.position == 1


def test_records_pickle_and_match() -> None:
    copy = pickle.loads(pickle.dumps(lazy()))
    assert copy == lazy() and copy.data == {"a": [1, 2]} and copy.recorded_at == WHEN
    match lazy():
        case RecordedEvent(position, stream_id, _, _, event_type, data):
            assert (position, stream_id, event_type, data) == (1, "s", "T", {"a": [1, 2]})
        case _:
            pytest.fail("RecordedEvent did not match its positional pattern")


@pytest.mark.parametrize("text, value", [
    ('{"a":1}', {"a": 1}),
    (' {"a": 1} ', {"a": 1}),
    ("\n[1, 2]\t", [1, 2]),
    ("1", 1),
    ('"x"', "x"),
    ("null", None),
    (b'{"b":"\xc3\xa9"}', {"b": "é"}),
])
def test_decode_json_matches_json_loads(text: str | bytes, value: object) -> None:
    assert decode_json(text) == value


def test_decode_json_refuses_trailing_garbage() -> None:
    with pytest.raises(ValueError):
        decode_json('{"a":1} x')


def test_event_ids_lower_case_is_upper_cased_and_bad_ones_say_why() -> None:
    assert check_event_id("01arz3ndektsv4rrffq69g5fav") == "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    with pytest.raises(evstore.InvalidInput, match="first character must be 0-7"):
        check_event_id("81ARZ3NDEKTSV4RRFFQ69G5FAV")
    with pytest.raises(evstore.InvalidInput, match="outside Crockford base32"):
        check_event_id("01ARZ3NDEKTSV4RRFFQ69G5FAU")
    with pytest.raises(evstore.InvalidInput, match="26 Crockford"):
        check_event_id("01ARZ3")
    with pytest.raises(evstore.InvalidInput, match="26 Crockford"):
        check_event_id(123)


def test_json_written_by_hand_with_whitespace_reads_back(store: evstore.Store) -> None:
    """A DBA may insert events through SQL; stored JSON text with spaces must still read."""
    store.migrate()
    store.append("s", [evstore.NewEvent("T", {"k": 1})])
    if store.dialect == "sqlite":
        store.execute("INSERT INTO stream (stream_id, version) VALUES (?, 1)", ["hand"])
    digest = evstore.events.digest_of("T", {"k": 2}, {"by": "dba"})
    values = ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "hand", "T", ' { "k" : 2 } ', ' {"by": "dba"}\n',
              digest]
    if store.dialect == "postgres":  # on PostgreSQL, every insert goes through evstore_append()
        store.execute(
            "SELECT * FROM evstore_append(?, 'any', NULL, ARRAY[?], ARRAY[?], ARRAY[?], "
            "ARRAY[?], ARRAY[?::bytea], 5000)",
            ["hand", *values[:1], *values[2:]],
        )
    else:
        store.execute(
            "INSERT INTO event_store (event_id, stream_id, version, event_type, payload, "
            "metadata, content_digest) VALUES (?, ?, 1, ?, ?, ?, ?)",
            values,
        )
    (event,) = store.read_stream("hand")
    assert event.data == {"k": 2} and event.metadata == {"by": "dba"}
    assert [e.data for e in store.read_all()] == [{"k": 1}, {"k": 2}]


def test_append_returns_what_a_read_returns(store: evstore.Store) -> None:
    store.migrate()
    data = {"t": (1, 2), "n": {"x": 1.5}, 3: "int key"}
    (appended,) = store.append("s", [evstore.NewEvent("T", data, {"u": 1})])
    (read,) = store.read_stream("s")
    # Both are decoded from the stored JSON: tuples become lists, keys become strings.
    assert appended.data == read.data == {"t": [1, 2], "n": {"x": 1.5}, "3": "int key"}
    assert appended.metadata == read.metadata == {"u": 1}
    assert (appended.position, appended.version, appended.event_id) == (
        read.position, read.version, read.event_id)
