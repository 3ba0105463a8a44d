"""Checkpoints as compare-and-set, alone and inside store.transaction(), on every backend,
and two processes racing for the same checkpoint."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest

import evstore
from evstore import CheckpointConflict, InvalidInput, NewEvent


def test_compare_and_set_moves_only_from_the_expected_position(store: evstore.Store) -> None:
    # A missing checkpoint counts as 0.
    with pytest.raises(CheckpointConflict) as caught:
        store.save_checkpoint("mailer", 5, expected=3)
    assert (caught.value.name, caught.value.expected, caught.value.actual) == ("mailer", 3, 0)
    assert store.checkpoint("mailer") == 0
    store.save_checkpoint("mailer", 5, expected=0)
    assert store.checkpoint("mailer") == 5
    store.save_checkpoint("mailer", 9, expected=5)
    assert store.checkpoint("mailer") == 9
    with pytest.raises(CheckpointConflict) as caught:
        store.save_checkpoint("mailer", 12, expected=5)
    assert caught.value.actual == 9
    assert store.checkpoint("mailer") == 9
    # expected=0 does not create a second row over an existing one.
    with pytest.raises(CheckpointConflict):
        store.save_checkpoint("mailer", 1, expected=0)
    # Without expected, a plain save overwrites, as before.
    store.save_checkpoint("mailer", 2)
    assert store.checkpoint("mailer") == 2
    # A deleted subscription is missing: it counts as 0 again.
    assert store.delete_subscription("mailer")
    with pytest.raises(CheckpointConflict):
        store.save_checkpoint("mailer", 3, expected=2)
    store.save_checkpoint("mailer", 3, expected=0)
    assert store.checkpoint("mailer") == 3


def test_conflict_message_names_checkpoint_values_and_remedy(store: evstore.Store) -> None:
    store.save_checkpoint("billing", 7)
    with pytest.raises(CheckpointConflict) as caught:
        store.save_checkpoint("billing", 8, expected=6)
    message = str(caught.value)
    assert "'billing'" in message
    assert "at 7" in message and "expected 6" in message
    assert "store.checkpoint(name)" in message and "expected=None" in message
    assert isinstance(caught.value, evstore.EvstoreError)


@pytest.mark.parametrize("bad", [-1, True, 1.5, "3", 2**63])
def test_expected_must_be_a_position(store: evstore.Store, bad: Any) -> None:
    with pytest.raises(InvalidInput, match="expected"):
        store.save_checkpoint("p", 1, expected=bad)
    assert store.checkpoint("p") == 0


def test_transaction_commits_checkpoint_with_appends(store: evstore.Store) -> None:
    with store.transaction() as tx:
        assert tx.checkpoint("orders") == 0
        tx.append("audit", [NewEvent("Seen", {"n": 1})])
        tx.save_checkpoint("orders", 1, expected=0)
        assert tx.checkpoint("orders") == 1
    assert store.checkpoint("orders") == 1
    assert [e.type for e in store.read_stream("audit")] == ["Seen"]


def test_transaction_rolls_checkpoint_back_with_appends(store: evstore.Store) -> None:
    store.save_checkpoint("orders", 4)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.append("audit", [NewEvent("Seen", {})])
        tx.save_checkpoint("orders", 5, expected=4)
        raise RuntimeError("the handler failed after saving")
    assert store.checkpoint("orders") == 4
    assert store.read_stream("audit") == []


def test_conflict_inside_a_transaction_undoes_its_appends(store: evstore.Store) -> None:
    store.save_checkpoint("orders", 4)
    with pytest.raises(CheckpointConflict), store.transaction() as tx:
        tx.append("audit", [NewEvent("Seen", {})])
        tx.save_checkpoint("orders", 5, expected=3)
    assert store.checkpoint("orders") == 4
    assert store.read_stream("audit") == []
    assert store.head_position() in (0, 1)  # PostgreSQL may have burnt the position


STEPS = 25


def _racer(url: str, who: str, barrier: Barrier, results: Any) -> None:
    """One of two processes: at every step, both handle step k in a transaction (an event in
    the effects stream) and save the checkpoint from k to k + 1; exactly one may commit."""
    with evstore.connect(url) as store:
        outcomes = []
        for k in range(STEPS):
            barrier.wait(timeout=60)
            try:
                with store.transaction() as tx:
                    tx.append("effects", [NewEvent("Handled", {"step": k, "by": who})])
                    tx.save_checkpoint("race", k + 1, expected=k)
                outcomes.append((k, True, None))
            except CheckpointConflict as conflict:
                outcomes.append((k, False, conflict.actual))
        results.put((who, outcomes))


def test_two_processes_race_for_one_checkpoint(file_url: str) -> None:
    with evstore.connect(file_url) as store:
        store.migrate()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    racers = [ctx.Process(target=_racer, args=(file_url, who, barrier, results))
              for who in ("a", "b")]
    for p in racers:
        p.start()
    got = dict(results.get(timeout=120) for _ in racers)
    for p in racers:
        p.join(timeout=60)
        assert p.exitcode == 0
    for k in range(STEPS):
        (a_k, a_won, a_actual), (b_k, b_won, b_actual) = got["a"][k], got["b"][k]
        assert a_k == b_k == k
        assert a_won != b_won, f"step {k}: both or neither committed"
        assert (a_actual if b_won else b_actual) == k + 1  # the loser saw the winner's save
    with evstore.connect(file_url) as store:
        assert store.checkpoint("race") == STEPS
        effects = store.read_stream("effects")
    # Exactly once: one effect per step, by the process that won it.
    assert [e.data["step"] for e in effects] == list(range(STEPS))
    winners = {k: ("a" if got["a"][k][1] else "b") for k in range(STEPS)}
    assert [e.data["by"] for e in effects] == [winners[k] for k in range(STEPS)]
