"""encode_events' one-pass encoding against the careful path that checks each document on its
own: the same canonical text and the same content digest for every value, or the same refusal.
The careful path is what evstore did before the one pass existed, so the stored text and the
digests of existing logs do not change."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evstore import InvalidInput, NewEvent
from evstore.events import (
    MAX_JSON_DEPTH,
    _encode_carefully,
    canonical_json,
    content_digest,
    encode_events,
)

EVENT_ID = "01HZY3J7W0K2M5Q8R1T4V7X9B2"

# Keys that stress the key check: numbers, minus signs, bool and None keys, strings that look
# like numbers, and braces, commas and quotes inside strings.
keys = st.one_of(
    st.text(max_size=6),
    st.sampled_from(['1', '-1', '{"1', ',"2', 'true', 'null', 'e+', '-0.0']),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from([-0.0, 0.0, 1e16, -1e16, 1e300, 5e-324, 1.5e-7, "\x00", "\ud800", "\\u0000"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=12,
)


def careful(event_type: str, data: Any, metadata: Any) -> tuple[str, str, bytes] | str:
    try:
        return _encode_carefully(0, event_type, data, metadata)
    except InvalidInput as e:
        return f"refused: {e}"


def one_pass(event_type: str, data: Any, metadata: Any) -> tuple[str, str, bytes] | str:
    try:
        (e,) = encode_events("s", [NewEvent(event_type, data, metadata, EVENT_ID)])
    except InvalidInput as err:
        return f"refused: {err}"
    return e.payload, e.metadata, e.digest


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_type=st.one_of(st.sampled_from(["T", "e+", '{"1', "\\u0000"]), st.text(min_size=1,
                                                                                max_size=5)),
    data=documents,
    metadata=st.one_of(st.none(), st.dictionaries(keys, documents, max_size=4)),
)
def test_one_pass_equals_the_careful_path(event_type: str, data: Any, metadata: Any) -> None:
    if "\x00" in event_type:
        return  # refused before either path runs (check_name)
    assert one_pass(event_type, data, metadata) == careful(event_type, data, metadata)


@pytest.mark.parametrize(
    "data",
    [
        {10: "a", 9: "b"},  # sorted as numbers by the encoder: 9 before 10
        {"b": {-1: 1, -2: 2}},
        [{"x": 1e16}],
        {"z": -0.0, "a": 1},
        {"a": [{"2": 1, "10": 2}]},
        {False: "a", 5: "b", True: "c"},  # sorted 0, 1, 5: "false", "true", "5"
        {"n": {-3: 1, 2.5: 2}},
    ],
)
def test_values_that_need_the_careful_path_come_out_canonical(data: Any) -> None:
    (e,) = encode_events("s", [NewEvent("T", data, None, EVENT_ID)])
    assert e.payload == canonical_json(data)
    assert e.digest == content_digest("T", canonical_json(data), "{}")


def test_nesting_limit_holds_on_the_one_pass() -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nested more than"):
        encode_events("s", [NewEvent("T", deep)])
    shallow: Any = 1
    for _ in range(MAX_JSON_DEPTH):
        shallow = [shallow]
    (e,) = encode_events("s", [NewEvent("T", shallow, None, EVENT_ID)])
    assert e.payload == canonical_json(shallow)
