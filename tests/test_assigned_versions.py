"""Caller-assigned versions (NewEvent.version), streams that start at version 0 (migration
0014) and binary payloads, on every backend."""

from __future__ import annotations

import json
from typing import Any

import pytest

import evstore
from evstore import InvalidInput, NewEvent, WrongExpectedVersion
from evstore.events import as_document, canonical_json
from evstore.operations.verify import verify


def at(*versions: int | None, data: Any = None) -> list[NewEvent]:
    return [NewEvent("T", {"v": v} if data is None else data, version=v) for v in versions]


def test_assigned_versions_from_one(store: evstore.Store) -> None:
    assert [e.version for e in store.append("s", at(1, 2))] == [1, 2]
    assert [e.version for e in store.append("s", at(3))] == [3]
    with pytest.raises(WrongExpectedVersion) as caught:
        store.append("s", at(3))
    assert "version 3 for the first event" in str(caught.value)
    assert caught.value.actual == 3
    with pytest.raises(WrongExpectedVersion):
        store.append("s", at(5))
    with pytest.raises(WrongExpectedVersion):  # a stream of 1.. has no head at 0
        store.append("s", at(1))
    with pytest.raises(WrongExpectedVersion):  # nor can it start again at 0
        store.append("s", at(0))
    assert [e.version for e in store.read_stream("s")] == [1, 2, 3]


def test_a_stream_that_starts_at_zero(store: evstore.Store) -> None:
    assert [e.version for e in store.append("z", at(0))] == [0]
    assert store.stream_version("z") == 0
    assert [e.version for e in store.append("z", at(1, 2))] == [1, 2]
    with pytest.raises(WrongExpectedVersion):
        store.append("z", at(0))
    assert [e.version for e in store.read_stream("z")] == [0, 1, 2]
    assert [e.version for e in store.read_stream("z", backwards=True)] == [2, 1, 0]
    assert [e.version for e in store.read_stream("z", from_version=1)] == [1, 2]
    assert store.append("z", [NewEvent("T", {})], expected_version=2)[0].version == 3
    # A whole new stream from 0 in one append, then evstore's own numbering goes on.
    assert [e.version for e in store.append("y", at(0, 1, 2))] == [0, 1, 2]
    assert store.append("y", [NewEvent("T", {})])[0].version == 3
    # A head at 0 is a stream: NO_STREAM refuses it, STREAM_EXISTS accepts it.
    store.append("x", at(0))
    with pytest.raises(WrongExpectedVersion):
        store.append("x", [NewEvent("T", {})], expected_version=evstore.NO_STREAM)
    assert store.append("x", [NewEvent("T", {})], evstore.STREAM_EXISTS)[0].version == 1
    report = verify(store)
    assert report.findings == [], report.findings


def test_assigned_versions_retry_and_transactions(store: evstore.Store) -> None:
    first = [NewEvent("T", {"n": n}, event_id=None, version=n) for n in (0, 1)]
    stored = store.append("r", first)
    retry = [NewEvent("T", {"n": e.version}, event_id=e.event_id, version=e.version)
             for e in stored]
    assert [e.position for e in store.append("r", retry)] == [e.position for e in stored]
    with store.transaction() as tx:
        tx.append("r", at(2))
        tx.append("q", at(0, 1))
    assert store.stream_version("r") == 2 and store.stream_version("q") == 1
    with pytest.raises(WrongExpectedVersion), store.transaction() as tx:
        tx.append("p", at(1))
        tx.append("q", at(1))  # q is at 1 already: the whole transaction rolls back
    assert store.stream_version("p") is None


@pytest.mark.parametrize(("versions", "match"), [
    ((1, 3), "follow each other"),
    ((2, 1), "follow each other"),
    ((1, 1), "follow each other"),
    ((None, 2), "no version but a later event has one"),
    ((1, None), "must be an int or None"),
    ((-1, 0), "starts at version 0 or 1"),
])
def test_assigned_versions_refused(
    store: evstore.Store, versions: tuple[int | None, ...], match: str
) -> None:
    with pytest.raises(InvalidInput, match=match):
        store.append("bad", at(*versions))
    assert store.stream_version("bad") is None


@pytest.mark.parametrize("bad", [True, 1.0, "1"])
def test_assigned_version_types(store: evstore.Store, bad: Any) -> None:
    with pytest.raises(InvalidInput, match="must be an int"):
        store.append("bad", [NewEvent("T", {}, version=bad)])


def test_assigned_versions_and_expected_version_exclude_each_other(
    store: evstore.Store,
) -> None:
    with pytest.raises(InvalidInput, match="leave expected_version"):
        store.append("s", at(1), expected_version=evstore.NO_STREAM)
    assert store.stream_version("s") is None


BLOBS = [b"", b"\x00\xff\xfe binary \x00", bytes(range(256)), b'{"looks": "like JSON"}']


def test_binary_payloads_round_trip(store: evstore.Store) -> None:
    appended = store.append("b", [NewEvent("Blob", blob) for blob in BLOBS])
    assert [e.data for e in appended] == BLOBS
    assert [e.data for e in store.read_stream("b")] == BLOBS
    assert [e.data for e in store.read_all()] == BLOBS
    assert store.get_event(appended[1].event_id).data == BLOBS[1]  # type: ignore[union-attr]
    assert all(type(e.data) is bytes for e in store.read_stream("b"))
    # The log holds the documented envelope, a real JSON document.
    (stored,) = store.execute("SELECT payload FROM event_store WHERE version = 2")
    payload = stored[0] if isinstance(stored[0], dict) else json.loads(stored[0])
    assert payload == {"$bytes": "AP/+IGJpbmFyeSAA"}
    # bytearray is stored as bytes too, and verify recomputes the digest of the envelope.
    assert store.append("b", [NewEvent("Blob", bytearray(b"ab"))])[0].data == b"ab"
    assert verify(store).findings == []


def test_binary_snapshots_round_trip(store: evstore.Store) -> None:
    store.append("b", [NewEvent("T", {})])
    assert store.save_snapshot("b", 1, b"\x01\x02").state == b"\x01\x02"
    loaded = store.load_snapshot("b")
    assert loaded is not None and loaded.state == b"\x01\x02"


def test_the_binary_envelope_is_reserved(store: evstore.Store) -> None:
    with pytest.raises(InvalidInput, match=r"reserves for binary payloads"):
        store.append("b", [NewEvent("T", {"$bytes": "AAAA"})])
    store.append("b", [NewEvent("T", {"$bytes": "AAAA", "other": 1})])  # not the envelope
    with pytest.raises(InvalidInput, match=r"reserves for binary payloads"):
        store.save_snapshot("b", 1, {"$bytes": "AAAA"})
    assert [e.data for e in store.read_stream("b")] == [{"$bytes": "AAAA", "other": 1}]


def through_0014(store: evstore.Store) -> int:
    """How many migrations a rollback must undo to undo 0014 (later ones come first)."""
    applied = [s.id for s in store.status() if s.applied]
    return len(applied) - next(i for i, m in enumerate(applied) if m.startswith("0014"))


def test_rollback_of_0014_refuses_while_a_stream_starts_at_zero(store: evstore.Store) -> None:
    store.append("z", at(0))
    with pytest.raises(evstore.MigrationFailed):
        store.rollback(count=through_0014(store))
    assert any(s.id.startswith("0014") for s in store.status() if s.applied)
    store.migrate()
    assert store.append("z", at(1))[0].version == 1


def test_rollback_and_reapply_of_0014(store: evstore.Store) -> None:
    store.append("s", at(1, 2))
    assert store.rollback(count=through_0014(store))[-1].startswith("0014")
    with pytest.raises(evstore.EvstoreError):
        store.append("z", at(0))  # the CHECK of 0001 is back
    assert store.stream_version("z") is None
    assert store.append("s", [NewEvent("T", {})])[0].version == 3
    assert store.migrate()[0].startswith("0014")
    assert store.append("z", at(0))[0].version == 0
    assert verify(store).findings == []


@pytest.mark.parametrize("data", ["hello", {"b": 1, "a": [1.5, None, "é"]}, b"\x00\x01", 3, None])
def test_data_json_is_the_stored_text(store: evstore.Store, data: Any) -> None:
    expected = canonical_json(as_document(data))
    [appended] = store.append("j", [NewEvent("T", data)])
    assert appended.data_json == expected
    [read] = store.read_stream("j")
    assert read.data_json == expected
    assert read.data == data  # decoded now; the text stays what was stored
    assert read.data_json == expected
