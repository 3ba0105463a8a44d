"""Torture, contention and crash tests with real processes, on PostgreSQL and a SQLite file."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time

import pytest

import evstore

pytestmark = pytest.mark.slow
CTX = mp.get_context("spawn")


def _writer(url: str, seed: int, seconds: float, committed: mp.Queue[list[str]]) -> None:
    rng = random.Random(seed)
    ids: list[str] = []
    with evstore.connect(url) as store:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = [evstore.NewEvent("T", {"w": seed}) for _ in range(rng.randint(1, 50))]
            try:
                with store.transaction() as tx:
                    recorded = tx.append(f"s{rng.randint(0, 9)}", batch)
                    time.sleep(rng.random() * 0.01)  # hold the transaction open
                    if rng.random() < 0.1:
                        raise KeyError("roll back on purpose")
                ids += [e.event_id for e in recorded]
            except KeyError:
                pass
    committed.put(ids)


def _reader(url: str, name: str, seconds: float, out: mp.Queue[list[int]]) -> None:
    positions: list[int] = []
    with evstore.connect(url) as store:
        after = store.checkpoint(name)
        with store.tail(after=after, poll_interval=0.02, idle_timeout=seconds) as tail:
            for event in tail:
                positions.append(event.position)
                if len(positions) % 25 == 0:
                    store.save_checkpoint(name, event.position)
    out.put(positions)


def test_torture_every_reader_gets_every_committed_event_once(file_url: str) -> None:
    with evstore.connect(file_url) as store:
        store.migrate()
    committed: mp.Queue[list[str]] = CTX.Queue()
    read: mp.Queue[list[int]] = CTX.Queue()
    writers = [CTX.Process(target=_writer, args=(file_url, i, 4.0, committed)) for i in range(4)]
    readers = [CTX.Process(target=_reader, args=(file_url, f"r{i}", 3.0, read)) for i in range(2)]
    for p in readers + writers:
        p.start()
    ids = [i for _ in writers for i in committed.get(timeout=120)]
    results = [read.get(timeout=120) for _ in readers]
    for p in readers + writers:
        p.join(timeout=30)
    with evstore.connect(file_url) as store:
        stored = list(store.iter_all())
    assert sorted(e.event_id for e in stored) == sorted(ids)  # no rolled-back event stored
    everything = [e.position for e in stored]
    assert len(everything) > 100
    for positions in results:
        assert positions == everything  # each once, in order, none skipped


def _contender(url: str, rounds: int, out: mp.Queue[int]) -> None:
    wins = 0
    with evstore.connect(url) as store:
        for _ in range(rounds):
            current = store.stream_version("hot") or 0
            try:
                store.append("hot", [evstore.NewEvent("T", {"pid": os.getpid()})], current)
                wins += 1
            except evstore.WrongExpectedVersion:
                pass
    out.put(wins)


def test_contention_on_one_stream_has_one_winner_per_version(file_url: str) -> None:
    with evstore.connect(file_url) as store:
        store.migrate()
    out: mp.Queue[int] = CTX.Queue()
    procs = [CTX.Process(target=_contender, args=(file_url, 60, out)) for _ in range(4)]
    for p in procs:
        p.start()
    wins = sum(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    with evstore.connect(file_url) as store:
        versions = [e.version for e in store.read_stream("hot")]
    assert versions == list(range(1, wins + 1))


def _crasher(url: str, ready: mp.Event) -> None:  # type: ignore[name-defined]
    with evstore.connect(url) as store, store.transaction() as tx:
        tx.append("crash", [evstore.NewEvent("T", {"i": i}) for i in range(500)])
        ready.set()
        time.sleep(60)


def test_sigkill_mid_batch_leaves_nothing(file_url: str) -> None:
    with evstore.connect(file_url) as store:
        store.migrate()
        store.append("before", [evstore.NewEvent("T", {})])
    ready = CTX.Event()
    proc = CTX.Process(target=_crasher, args=(file_url, ready))
    proc.start()
    assert ready.wait(60)
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join(30)
    with evstore.connect(file_url) as store:
        assert store.stream_version("crash") is None
        assert [e.stream_id for e in store.read_all()] == ["before"]
        store.append("after", [evstore.NewEvent("T", {})])
        assert [e.stream_id for e in store.read_all()] == ["before", "after"]


def _tail_threads(url: str, starts: list[int | None], out: mp.Queue[list[object]]) -> None:
    """One reader process, one Store, a tailing thread per start (None: the head at the moment
    the thread starts, while writers run). Each tail stops at the End event."""
    import threading

    results: list[object] = [None] * len(starts)
    with evstore.connect(url) as store:

        def follow(k: int, start: int | None) -> None:
            after = store.head_position() if start is None else start
            positions: list[int] = []
            try:
                with store.tail(after=after, poll_interval=0.02, idle_timeout=60) as tail:
                    for event in tail:
                        positions.append(event.position)
                        if event.type == "End":
                            break
            except Exception as e:
                positions.append(-1)
                print(f"tail {k} failed: {e!r}")
            results[k] = (after, positions)

        threads = [threading.Thread(target=follow, args=(k, s)) for k, s in enumerate(starts)]
        for i, t in enumerate(threads):
            t.start()
            if starts[i] is None:
                time.sleep(0.3)  # let writers move the head between mid-stream starts
        for t in threads:
            t.join(120)
    out.put(results)


def test_torture_tails_mid_stream_and_several_per_store(file_url: str) -> None:
    with evstore.connect(file_url) as store:
        store.migrate()
        early = store.append("early", [evstore.NewEvent("T", {"i": i}) for i in range(40)])
    starts: list[int | None] = [0, early[9].position, early[-1].position, None, None]
    committed: mp.Queue[list[str]] = CTX.Queue()
    read: mp.Queue[list[object]] = CTX.Queue()
    writers = [CTX.Process(target=_writer, args=(file_url, i, 4.0, committed)) for i in range(4)]
    readers = [CTX.Process(target=_tail_threads, args=(file_url, starts, read)) for _ in range(2)]
    for p in readers + writers:
        p.start()
    ids = [i for _ in writers for i in committed.get(timeout=120)]
    with evstore.connect(file_url) as store:
        end = store.append("end", [evstore.NewEvent("End", {})])
    results = [read.get(timeout=180) for _ in readers]
    for p in readers + writers:
        p.join(timeout=30)
    with evstore.connect(file_url) as store:
        stored = list(store.iter_all())
    assert sorted(e.event_id for e in stored) == sorted(
        [e.event_id for e in early] + ids + [end[0].event_id])
    everything = [e.position for e in stored]
    assert len(everything) > 100 and everything[-1] == end[0].position
    for per_process in results:
        assert len(per_process) == len(starts)
        for (after, positions), start in zip(per_process, starts, strict=True):  # type: ignore[misc]
            if start is not None:
                assert after == start
            # each once, in order, none skipped, nothing at or before its start
            assert positions == [p for p in everything if p > after]
