"""Hypothesis runs the same operations on SQLite and PostgreSQL: identical results and errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evstore
from tests.conftest import scratch_database

pytestmark = pytest.mark.postgres

IDS = [f"01ARZ3NDEKTSV4RRFFQ69G5F{i:02d}" for i in range(12)]
streams = st.sampled_from(["a", "b", "c"])
expected = st.one_of(
    st.sampled_from([evstore.ANY, evstore.NO_STREAM, evstore.STREAM_EXISTS]),
    st.integers(0, 4),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
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
