"""Hypothesis runs the same operations on SQLite and PostgreSQL: identical results and errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evstore
from tests.conftest import scratch_database

pytestmark = pytest.mark.postgres

# NUL is refused on both dialects (jsonb cannot hold it; tested elsewhere): not generated here.
no_nul = st.characters(exclude_characters="\x00")
IDS = [f"01ARZ3NDEKTSV4RRFFQ69G5F{i:02d}" for i in range(12)]
streams = st.sampled_from(["a", "b", "c"])
expected = st.one_of(
    st.sampled_from([evstore.ANY, evstore.NO_STREAM, evstore.STREAM_EXISTS]),
    st.integers(0, 4),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(no_nul, max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(no_nul, max_size=3), inner,
                                                               max_size=3),
    max_leaves=6,
)
event = st.builds(lambda t, d, i: ("event", t, d, i), st.sampled_from(["A", "B"]), json_values,
                  st.one_of(st.none(), st.sampled_from(IDS)))
append = st.tuples(st.just("append"), streams, st.lists(event, min_size=1, max_size=3), expected)
tx = st.tuples(st.just("tx"), st.lists(append, min_size=1, max_size=3))
read = st.tuples(st.just("read"), streams)
operations = st.lists(st.one_of(append, tx, read), max_size=12)


def _events(spec: list[tuple[str, str, Any, str | None]]) -> list[evstore.NewEvent]:
    return [evstore.NewEvent(t, d, event_id=i) for _, t, d, i in spec]


def _run(store: evstore.Store, ops: list[Any]) -> list[Any]:
    results: list[Any] = []

    def shape(records: list[evstore.RecordedEvent]) -> list[Any]:
        return [(r.stream_id, r.version, r.type, r.data, r.metadata) for r in records]

    for op in ops:
        try:
            if op[0] == "append":
                results.append(shape(store.append(op[1], _events(op[2]), op[3])))
            elif op[0] == "tx":
                with store.transaction() as t:
                    results.append([shape(t.append(a[1], _events(a[2]), a[3])) for a in op[1]])
            else:
                results.append(shape(store.read_stream(op[1])))
        except evstore.EvstoreError as e:
            results.append(type(e).__name__)
    results.append(shape(store.read_all()))
    results.append([store.stream_version(s) for s in "abc"])
    return results


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_sqlite_and_postgres_behave_identically(ops: list[Any]) -> None:
    with scratch_database("evstore_diff") as pg_url:
        with evstore.connect("sqlite:///:memory:") as lite, evstore.connect(pg_url) as pg:
            lite.migrate()
            pg.migrate()
            assert _run(lite, ops) == _run(pg, ops)


# Content digests: the same events give the same digest on both dialects, and the digest
# recomputed from what each dialect gives back equals the stored one. Floats (the spellings
# jsonb normalises), integer and tricky string keys are where they could part.
tricky_text = st.sampled_from(["e+", "-0.0", "1e+16", "\u2028", "é", "🐢", '"', "\\", ""])
digest_leaves = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e16, 1.5e300, -0.0, 0.1, 5e-324, -1.5e16, 2.0**63])
    | st.text(no_nul, max_size=4) | tricky_text
)
digest_values = st.recursive(
    digest_leaves,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(no_nul, max_size=3) | tricky_text, inner, max_size=3)
    | st.dictionaries(st.integers(-20, 20), inner, max_size=3)
    | st.dictionaries(st.integers(-3, 3) | st.sampled_from(["a", "é", "10"]), inner,
                      max_size=3),
    max_leaves=8,
)
digest_events = st.lists(
    st.tuples(st.sampled_from(["A", "B", "ÄB"]), digest_values,
              st.one_of(st.none(), st.dictionaries(st.text(no_nul, max_size=3), digest_values,
                                                   max_size=2))),
    min_size=1, max_size=6,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(digest_events, min_size=1, max_size=3))
def test_content_digests_are_identical_on_both_dialects(
    batches: list[list[tuple[str, Any, dict[str, Any] | None]]],
) -> None:
    from evstore.events import digest_of

    ids = iter(f"01ARZ3NDEKTSV4RRFFQ69G{i:04d}" for i in range(1000))
    appends = [[evstore.NewEvent(t, d, m, next(ids)) for t, d, m in batch] for batch in batches]
    seen: list[list[Any]] = []
    with scratch_database("evstore_diff") as pg_url:
        with evstore.connect("sqlite:///:memory:") as lite, evstore.connect(pg_url) as pg:
            for store in (lite, pg):
                store.migrate()
                returned = [r for events in appends for r in store.append("s", events)]
                stored = store.read_all()
                for event in stored:
                    assert event.content_digest == digest_of(event.type, event.data,
                                                             event.metadata)
                assert [r.content_digest for r in returned] == [e.content_digest for e in stored]
                seen.append([(e.event_id, e.version, e.type, e.content_digest, e.data,
                              e.metadata) for e in stored])
                # A retry of every append is recognised as the same content.
                again = [r for events in appends for r in store.append("s", events)]
                assert [r.position for r in again] == [r.position for r in returned]
    assert seen[0] == seen[1]
