"""One Store shared by threads, on SQLite file, SQLite memory and PostgreSQL."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

import evstore
from evstore import NewEvent
from evstore.errors import InvalidInput
from evstore.operations.verify import verify

E = NewEvent
THREADS = 8
ROUNDS = 30


class RollBack(Exception):
    """Raised inside a transaction on purpose."""


def _worker(store: evstore.Store, n: int, acked: list[str], versions: list[int],
            errors: list[BaseException]) -> None:
    rng = random.Random(n)
    own = f"t{n}"
    try:
        for i in range(ROUNDS):
            if i % 2 == 0:
                recorded = store.append(own, [E("Plain", {"t": n, "i": i})
                                              for _ in range(rng.randint(1, 3))])
                acked += [e.event_id for e in recorded]
                versions += [e.version for e in recorded]
                continue
            shared = f"shared{rng.randint(0, 2)}"
            pending: list[evstore.RecordedEvent] = []
            try:
                with store.transaction() as tx:
                    pending += tx.append(own, [E("InTx", {"t": n, "i": i})])
                    pending += tx.append(shared, [E("InTx", {"t": n, "i": i}),
                                                  E("InTx", {"t": n, "i": i, "k": 2})])
                    if i % 3 == 0:
                        raise RollBack()
            except RollBack:
                continue
            acked += [e.event_id for e in pending]
            versions += [e.version for e in pending if e.stream_id == own]
    except BaseException as e:  # reported by the test
        errors.append(e)


def test_threads_sharing_a_store_lose_no_acknowledged_append(store: evstore.Store) -> None:
    """The bug: one Store shared by threads on PostgreSQL lost an acknowledged append when
    another thread's transaction rolled back."""
    acked: list[list[str]] = [[] for _ in range(THREADS)]
    versions: list[list[int]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_worker, args=(store, n, acked[n], versions[n], errors))
               for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    stored = list(store.iter_all())
    acknowledged = [i for ids in acked for i in ids]
    assert len(acknowledged) == len(set(acknowledged))
    assert sorted(e.event_id for e in stored) == sorted(acknowledged)
    assert not any(e.data.get("i", 1) % 3 == 0 and e.type == "InTx" for e in stored)
    by_stream: dict[str, list[int]] = {}
    for e in stored:
        by_stream.setdefault(e.stream_id, []).append(e.version)
    for stream_id, seen in by_stream.items():
        assert seen == list(range(1, len(seen) + 1)), stream_id
        assert store.stream_version(stream_id) == len(seen)
    for n in range(THREADS):
        assert versions[n] == list(range(1, len(versions[n]) + 1))  # acked in stream order
    report = verify(store)
    assert report.intact, report.findings
    assert report.events == len(acknowledged)


def test_a_transaction_belongs_to_its_thread(store: evstore.Store) -> None:
    store.append("s", [E("T", {"i": 0})])
    refused: list[Any] = []
    with store.transaction() as tx:
        mine = tx.append("s", [E("T", {"i": 1})])

        def intruder() -> None:
            for attempt in (lambda: tx.append("s", [E("T", {"by": "intruder"})]),
                            lambda: tx.append("x", [E("T", {"by": "intruder"})]),
                            lambda: tx.execute("SELECT 1"),
                            lambda: tx.read_stream("s"),
                            lambda: tx.stream_version("s")):
                try:
                    attempt()
                    refused.append("accepted")
                except InvalidInput as e:
                    refused.append(str(e))
                except BaseException as e:
                    refused.append(repr(e))

        thread = threading.Thread(target=intruder)
        thread.start()
        thread.join(30)
        assert not thread.is_alive()
        assert tx.read_stream("s")[-1].event_id == mine[0].event_id  # still usable here
    assert len(refused) == 5
    assert all("belongs to the thread that opened it" in r for r in refused), refused
    stored = store.read_all()
    assert [e.data for e in stored] == [{"i": 0}, {"i": 1}]
    assert store.stream_version("x") is None and store.stream_version("s") == 2
    assert verify(store).intact


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_reads_from_another_thread_never_see_an_open_transaction(
    store: evstore.Store, outcome: str
) -> None:
    """PostgreSQL: the reader does not see the uncommitted events. SQLite: operations take
    turns on one connection, so the reader waits for the transaction to end."""
    store.append("s", [E("T", {"i": 0})])
    seen: list[Any] = []

    def reader() -> None:
        try:
            seen.append(([e.data for e in store.read_all()], store.stream_version("s"),
                         store.stream_version("other")))
        except BaseException as e:
            seen.append(e)

    thread = threading.Thread(target=reader)
    try:
        with store.transaction() as tx:
            tx.append("s", [E("T", {"i": 1})])
            tx.append("other", [E("T", {"i": 2})])
            thread.start()
            thread.join(0.3 if store.dialect == "sqlite" else 30)
            if store.dialect == "postgres":
                assert not thread.is_alive()
                assert seen == [([{"i": 0}], 1, None)]  # the committed state only
            else:
                assert thread.is_alive() and seen == []  # waiting for the transaction
            if outcome == "rollback":
                raise RuntimeError("roll back")
    except RuntimeError:
        pass
    thread.join(30)
    assert not thread.is_alive()
    after = [e.data for e in store.read_all()]
    if outcome == "commit":
        assert after == [{"i": 0}, {"i": 1}, {"i": 2}]
    else:
        assert after == [{"i": 0}] and store.stream_version("other") is None
    if store.dialect == "sqlite":
        assert seen == [(after, len([d for d in after if d != {"i": 2}]),
                         1 if outcome == "commit" else None)]
    assert verify(store).intact


@pytest.mark.postgres
def test_more_threads_than_the_pool_wait_for_a_connection(pg_url: str) -> None:
    """Twelve threads, a pool of two: every append still lands, none is lost or doubled."""
    with evstore.connect(pg_url, pool_size=2) as store:
        store.migrate()
        acked: list[list[str]] = [[] for _ in range(12)]
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(10):
                    with store.transaction() as tx:
                        acked[n] += [e.event_id for e in tx.append(f"p{n}", [E("T", {"i": i})])]
                    acked[n] += [e.event_id for e in store.append("hot", [E("T", {"n": n})])]
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == [] and not any(t.is_alive() for t in threads)
        stored = store.read_all(limit=10_000)
        assert sorted(e.event_id for e in stored) == sorted(i for ids in acked for i in ids)
        assert [e.version for e in store.read_stream("hot")] == list(range(1, 121))
        assert verify(store).intact
