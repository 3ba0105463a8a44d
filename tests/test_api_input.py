"""Every bad input to the API is an evstore error, and whatever append accepts reads back.

Hypothesis draws stream ids, types, data and metadata from strings with surrogates and control
characters, huge and negative ints, floats at the edges, and deep and wide JSON. An append
either raises evstore.InvalidInput (nothing written) or succeeds; what it stored then reads
back equal to its canonical form, with the digest verify recomputes."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evstore
from evstore.events import MAX_JSON_DEPTH, canonical_json, digest_of

text = st.text(
    alphabet=st.characters(codec=None, blacklist_categories=()), max_size=12
)  # every code point, lone surrogates and controls included
keys = st.one_of(text, st.integers(-(2**70), 2**70), st.booleans())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e16, -1e16, 1.5e300, 5e-324, 1e-7, 2.0**53]),
    text,
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)
    ),
    max_leaves=30,
)
names = st.one_of(text, st.just(""), st.text(min_size=199, max_size=202))
huge_ints = st.one_of(st.integers(-(2**70), -1), st.integers(2**63 - 2, 2**70))


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _append(store: evstore.Store, stream: Any, type_: Any, data: Any, metadata: Any) -> None:
    try:
        (recorded,) = store.append(stream, [evstore.NewEvent(type_, data, metadata)])
    except evstore.InvalidInput as e:
        assert str(e)  # names the problem
        return
    (read,) = store.read_stream(stream, from_version=recorded.version, limit=1)
    assert canonical_json(read.data) == canonical_json(recorded.data)
    assert read.metadata == recorded.metadata and read.type == type_
    assert read.content_digest == digest_of(read.type, read.data, read.metadata)
    assert store.get_event(read.event_id) == read


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(stream=names, type_=names, data=documents,
       metadata=st.one_of(st.none(), st.dictionaries(keys, documents, max_size=4), scalars))
def test_append_accepts_or_refuses_cleanly(
    store: evstore.Store, stream: Any, type_: Any, data: Any, metadata: Any
) -> None:
    _append(store, stream, type_, data, metadata)


@pytest.mark.parametrize("depth, ok", [(MAX_JSON_DEPTH - 1, True), (MAX_JSON_DEPTH + 1, False),
                                       (sys.getrecursionlimit() + 10, False)])
def test_nesting_limit_holds_on_both_dialects(store: evstore.Store, depth: int,
                                              ok: bool) -> None:
    if ok:
        store.append("deep", [evstore.NewEvent("T", nested(depth))])
        (read,) = store.read_stream("deep")
        assert read.data == nested(depth)
        assert store.save_snapshot("deep", 1, nested(depth)).version == 1
    else:
        deep = nested(depth)
        for attempt in (lambda: store.append("deep", [evstore.NewEvent("T", deep)]),
                        lambda: store.append("deep", [evstore.NewEvent("T", {}, {"m": deep})]),
                        lambda: store.save_snapshot("deep", 1, deep)):
            with pytest.raises(evstore.InvalidInput, match="nested"):
                attempt()
        assert store.read_all() == []


def test_document_size_limit(store: evstore.Store) -> None:
    with pytest.raises(evstore.InvalidInput, match="limit is 16,777,216 bytes"):
        store.append("big", [evstore.NewEvent("T", "x" * (16 * 1024 * 1024 + 1))])
    store.append("big", [evstore.NewEvent("T", "é" * (4 * 1024 * 1024))])  # 8 MiB as UTF-8
    (read,) = store.read_all()
    assert len(read.data) == 4 * 1024 * 1024


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=huge_ints)
def test_huge_and_negative_ints_in_arguments(store: evstore.Store, value: int) -> None:
    calls = [
        lambda: store.read_all(after=value),
        lambda: store.read_all(limit=value),
        lambda: store.read_stream("s", from_version=value),
        lambda: store.read_stream("s", limit=value),
        lambda: store.append("s", [evstore.NewEvent("T", {})], value),
        lambda: store.save_checkpoint("c", value),
        lambda: store.save_snapshot("s", value, {}),
        lambda: store.tail(after=value),
    ]
    out_of_range = value < 0 or value > 2**63 - 1
    for call in calls:
        try:
            call()
        except evstore.EvstoreError as e:
            assert isinstance(e, evstore.InvalidInput | evstore.WrongExpectedVersion |
                              evstore.SnapshotError), repr(e)
        else:
            assert not out_of_range, f"{value} was accepted"
    assert store.read_all() == [] or not out_of_range


@pytest.mark.parametrize("name", ["\ud800", "a\udfffb", "ok\x00no"])
def test_lone_surrogates_and_nul_in_names_and_keys(store: evstore.Store, name: str) -> None:
    for attempt in (
        lambda: store.append(name, [evstore.NewEvent("T", {})]),
        lambda: store.append("s", [evstore.NewEvent(name, {})]),
        lambda: store.append("s", [evstore.NewEvent("T", {name: 1})]),
        lambda: store.append("s", [evstore.NewEvent("T", {}, {"k": [name]})]),
        lambda: store.save_checkpoint(name, 1),
        lambda: store.read_stream(name),
    ):
        with pytest.raises(evstore.InvalidInput):
            attempt()
    assert store.read_all() == [] and store.stream_version("s") is None
