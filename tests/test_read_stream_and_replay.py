"""read_stream's arguments against a plain list, and replays that fail halfway."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evstore
from evstore import NewEvent


def expected_versions(
    n: int, from_version: int | None, limit: int | None, backwards: bool
) -> list[int]:
    """The model: a plain list of versions 1..n."""
    versions = list(range(1, n + 1))
    if backwards:
        start = n if from_version is None else from_version
        chosen = [v for v in reversed(versions) if v <= start]
    else:
        start = 1 if from_version is None else from_version
        chosen = [v for v in versions if v >= start]
    return chosen if limit is None else chosen[:limit]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    from_version=st.one_of(st.none(), st.integers(0, 14)),
    limit=st.one_of(st.none(), st.integers(0, 14)),
    backwards=st.booleans(),
)
def test_read_stream_matches_a_list(
    store: evstore.Store, from_version: int | None, limit: int | None, backwards: bool
) -> None:
    if store.stream_version("s") is None:
        store.append("s", [NewEvent("T", {"v": v}) for v in range(1, 11)])
    got = store.read_stream("s", from_version, limit, backwards)
    assert [e.version for e in got] == expected_versions(10, from_version, limit, backwards)
    assert [e.data["v"] for e in got] == [e.version for e in got]


def test_backwards_with_a_limit_is_the_newest_events(store: evstore.Store) -> None:
    store.append("s", [NewEvent("T", {"v": v}) for v in range(1, 6)])
    assert [e.version for e in store.read_stream("s", backwards=True, limit=2)] == [5, 4]
    assert [e.version for e in store.read_stream("s", 1, backwards=True)] == [1]
    assert [e.version for e in store.read_stream("s", 3, 5, backwards=True)] == [3, 2, 1]
    with store.transaction() as tx:
        assert [e.version for e in tx.read_stream("s", backwards=True, limit=1)] == [5]


def test_cli_read_backwards_with_a_limit(tmp_path: Any) -> None:
    db = f"sqlite:///{tmp_path}/r.db"
    with evstore.connect(db) as store:
        store.migrate()
        store.append("s", [NewEvent("T", {"v": v}) for v in range(1, 6)])
    out = subprocess.run(
        [sys.executable, "-m", "evstore", "read", "--database", db, "--stream", "s",
         "--backwards", "--limit", "2", "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["version"] for line in out.stdout.splitlines()] == [5, 4]


class Totals:
    """A read model: one row per stream with the sum of its events' "n"."""

    name = "totals"

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.seen = 0

    def reset(self, tx: evstore.Transaction) -> None:
        tx.execute("DELETE FROM totals")

    def apply(self, tx: evstore.Transaction, event: evstore.RecordedEvent) -> None:
        self.seen += 1
        if self.fail_at is not None and self.seen == self.fail_at:
            raise RuntimeError("projection bug")
        rows = tx.execute("SELECT n FROM totals WHERE stream_id = ?", (event.stream_id,))
        if rows:
            tx.execute("UPDATE totals SET n = ? WHERE stream_id = ?",
                       (rows[0][0] + event.data["n"], event.stream_id))
        else:
            tx.execute("INSERT INTO totals (stream_id, n) VALUES (?, ?)",
                       (event.stream_id, event.data["n"]))


def _view(store: evstore.Store) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store.execute("SELECT stream_id, n FROM totals ORDER BY stream_id")]


@pytest.mark.parametrize("batch_size", [7, 1000])
def test_a_failing_replay_leaves_the_old_view(store: evstore.Store, batch_size: int) -> None:
    store.execute("CREATE TABLE totals (stream_id TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    for i in range(100):
        store.append(f"s{i % 4}", [NewEvent("T", {"n": i})])
    assert store.run_projection(Totals(), batch_size=batch_size) == 100
    before, checkpoint = _view(store), store.checkpoint("totals")
    assert checkpoint == store.head_position() and len(before) == 4
    with pytest.raises(RuntimeError, match="projection bug"):
        store.replay(Totals(fail_at=50), batch_size=batch_size)
    assert _view(store) == before
    assert store.checkpoint("totals") == checkpoint
    store.append("s9", [NewEvent("T", {"n": 5})])
    assert store.replay(Totals(), batch_size=batch_size) == 101
    assert _view(store) == [*before, ("s9", 5)]
    assert store.checkpoint("totals") == store.head_position()


def test_non_atomic_replay_commits_batch_by_batch(store: evstore.Store) -> None:
    store.execute("CREATE TABLE totals (stream_id TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    for _ in range(20):
        store.append("s", [NewEvent("T", {"n": 1})])
    store.run_projection(Totals())
    with pytest.raises(RuntimeError):
        store.replay(Totals(fail_at=15), batch_size=5, atomic=False)
    assert _view(store) == [("s", 10)] and store.checkpoint("totals") == 10
