"""Real hot standbys (tests/pg_replicas.py): a standby is a read-only store, a Store with a
read_url reads there and waits for its own writes, and a tail on a standby misses nothing."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import evstore
from evstore import NewEvent
from tests.conftest import IN_CI
from tests.pg_replicas import Replicas, replicas
from tests.test_concurrency import _writer

pytestmark = pytest.mark.postgres
CTX = mp.get_context("spawn")
E = NewEvent


@pytest.fixture(scope="session")
def cluster() -> Iterator[Replicas]:
    """A primary, two hot standbys and a delayed standby, started once for the session."""
    with contextlib.ExitStack() as stack:
        try:
            started = stack.enter_context(replicas(standbys=2))
        except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
            detail = getattr(e, "stderr", b"") or b""
            reason = f"cannot start PostgreSQL replicas: {e} {detail.decode(errors='replace')}"
            if IN_CI:
                pytest.fail(f"CI=true and {reason}", pytrace=False)
            pytest.skip(reason)
        yield started


@pytest.fixture
def urls(cluster: Replicas) -> Iterator[tuple[str, list[str]]]:
    """A fresh database on the primary, and its URLs on the primary and the hot standbys."""
    with cluster.database() as (primary, standbys, _):
        yield primary, standbys


@pytest.fixture
def delayed(cluster: Replicas) -> Iterator[tuple[str, str]]:
    """A fresh database, on the primary and on the standby that applies commits late."""
    with cluster.database(delayed=True) as (primary, _, late):
        assert late is not None
        yield primary, late


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def populated(primary: str) -> list[evstore.RecordedEvent]:
    with evstore.connect(primary) as store:
        store.migrate()
        events = store.append("order-1", [E("Placed", {"n": i}) for i in range(5)])
        events += store.append("order-2", [E("Placed", {"n": 9})])
        store.save_checkpoint("projector", events[2].position)
        store.save_snapshot("order-1", 3, {"seen": 3})
        return events


# -- a standby is a read-only store ----------------------------------------------------------


def test_a_standby_store_reads_what_the_primary_wrote(
    cluster: Replicas, urls: tuple[str, list[str]]
) -> None:
    primary, standbys = urls
    events = populated(primary)
    cluster.wait_replayed(cluster.standbys[0])
    with evstore.connect(standbys[0]) as standby:
        assert standby.read_only
        assert [e.event_id for e in standby.read_all()] == [e.event_id for e in events]
        assert [e.event_id for e in standby.iter_all(page_size=2)] == [
            e.event_id for e in events]
        assert [e.version for e in standby.read_stream("order-1", backwards=True, limit=2)] == [
            5, 4]
        assert standby.head_position() == events[-1].position
        assert standby.stream_version("order-1") == 5
        found = standby.get_event(events[1].event_id)
        assert found is not None and found.data == {"n": 1}
        assert standby.checkpoint("projector") == events[2].position
        snapshot = standby.load_snapshot("order-1")
        assert snapshot is not None and snapshot.state == {"seen": 3}


def test_every_write_on_a_standby_raises_read_only_store_naming_it(
    cluster: Replicas, urls: tuple[str, list[str]]
) -> None:
    primary, standbys = urls
    events = populated(primary)
    cluster.wait_replayed(cluster.standbys[0])
    secret_url = with_password(standbys[0], "s3cret-pw")

    class Counter:
        name = "counter"

        def apply(self, tx: evstore.Transaction, event: evstore.RecordedEvent) -> None:
            pass

    writes = {
        "append": lambda s: s.append("order-1", [E("Paid", {})]),
        "transaction": lambda s: s.transaction().__enter__(),
        "save_checkpoint": lambda s: s.save_checkpoint("projector", 1),
        "delete_subscription": lambda s: s.delete_subscription("projector"),
        "save_snapshot": lambda s: s.save_snapshot("order-1", 1, {}),
        "migrate": lambda s: s.migrate(),
        "rollback": lambda s: s.rollback(),
        "run_projection": lambda s: s.run_projection(Counter()),
        "replay": lambda s: s.replay(Counter()),
    }
    with evstore.connect(secret_url) as standby:
        for operation, write in writes.items():
            with pytest.raises(evstore.ReadOnlyStore) as raised:
                write(standby)
            message = str(raised.value)
            assert "standby" in message, operation
            assert "127.0.0.1" in message and "s3cret-pw" not in message, operation
        # SQL of the caller's own is refused by the server, and says the same.
        with pytest.raises(evstore.ReadOnlyStore, match="standby"):
            standby.execute("INSERT INTO subscription (name) VALUES (?)", ["x"])
    with evstore.connect(primary) as store:  # nothing was written anywhere
        assert [e.event_id for e in store.read_all()] == [e.event_id for e in events]
        assert store.checkpoint("projector") == events[2].position


def test_a_tail_on_a_standby_polls_and_delivers_each_commit(
    urls: tuple[str, list[str]],
) -> None:
    """LISTEN is refused on a standby, so a tail there polls its replay position."""
    primary, standbys = urls
    with evstore.connect(primary) as writer:
        writer.migrate()
        first = writer.append("s", [E("T", {"i": 0})])
        with evstore.connect(standbys[1]) as standby:
            assert standby.wait_for_position(first[0].position, 30)
            delivered: list[int] = []
            tail = standby.tail(after=0, idle_timeout=30)
            delivered.append(next(tail).position)
            later = [writer.append("s", [E("T", {"i": i})])[0] for i in range(1, 4)]
            end = writer.append("end", [E("End", {})])[0]
            for event in tail:
                delivered.append(event.position)
                if event.type == "End":
                    break
            tail.close()
    assert delivered == [first[0].position, *(e.position for e in later), end.position]


def test_the_command_line_reads_and_verifies_a_standby_and_refuses_to_append(
    cluster: Replicas, urls: tuple[str, list[str]]
) -> None:
    primary, standbys = urls
    events = populated(primary)
    cluster.wait_replayed(cluster.standbys[0])

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "evstore", *args], capture_output=True,
                              text=True, timeout=120)

    read = cli("read", "--database", standbys[0], "--json")
    assert read.returncode == 0, read.stderr
    assert len(read.stdout.splitlines()) == len(events)
    verified = cli("verify", "--database", standbys[0])
    assert verified.returncode == 0, verified.stderr
    refused = cli("append", "order-1", "--type", "Paid", "--database", standbys[0])
    assert refused.returncode == 1
    assert "standby" in refused.stderr and "Traceback" not in refused.stderr


def test_a_standby_can_be_copied_from_but_not_into(
    cluster: Replicas, urls: tuple[str, list[str]], tmp_path: Path
) -> None:
    primary, standbys = urls
    populated(primary)
    cluster.wait_replayed(cluster.standbys[0])
    copied = subprocess.run(
        [sys.executable, "-m", "evstore", "copy", standbys[0], f"sqlite:///{tmp_path}/c.db"],
        capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    assert "verified 6 event(s)" in copied.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "evstore", "copy", f"sqlite:///{tmp_path}/c.db", standbys[1]],
        capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "standby" in refused.stderr


# -- routing: writes to the primary, reads from the read_url ----------------------------------


def test_a_read_after_this_stores_append_waits_for_the_standby(
    delayed: tuple[str, str], cluster: Replicas
) -> None:
    primary, late = delayed
    with evstore.connect(primary) as admin:
        admin.migrate()
    cluster.wait_replayed(cluster.delayed)
    with evstore.connect(primary, read_url=late, read_wait_timeout=cluster.delay * 5) as store:
        written = store.append("order-1", [E("Placed", {"total": 3})])
        # The delayed standby applies the commit only after the delay: the read waits for it.
        assert [e.event_id for e in store.read_all()] == [written[0].event_id]
        assert store.stream_version("order-1") == 1
        assert store.head_position() == written[0].position


def test_a_lagging_standby_raises_replica_lag_timeout_and_wait_for_position_says_false(
    delayed: tuple[str, str], cluster: Replicas
) -> None:
    primary, late = delayed
    with evstore.connect(primary) as admin:
        admin.migrate()
    cluster.wait_replayed(cluster.delayed)
    with evstore.connect(primary, read_url=late, read_wait_timeout=0.2) as store:
        written = store.append("order-1", [E("Placed", {})])
        position = written[0].position
        with pytest.raises(evstore.ReplicaLagTimeout) as raised:
            store.read_all()
        assert raised.value.position == position and raised.value.reached < position
        assert "127.0.0.1" in str(raised.value) and "read_wait_timeout" in str(raised.value)
        assert store.wait_for_position(position, 0.1) is False
        assert store.wait_for_position(position, cluster.delay * 5) is True
        assert [e.position for e in store.read_all()] == [position]  # no wait now


def test_reads_go_to_the_read_url_and_others_writes_are_not_waited_for(
    delayed: tuple[str, str], cluster: Replicas
) -> None:
    """Another Store's append is not this Store's own: its reads show the standby as it is."""
    primary, late = delayed
    with evstore.connect(primary) as writer:
        writer.migrate()
        cluster.wait_replayed(cluster.delayed)
        with evstore.connect(primary, read_url=late, read_wait_timeout=0.2) as reader:
            other = writer.append("order-1", [E("Placed", {})])
            assert reader.read_all() == []  # the standby has not applied it yet
            assert reader.head_position() == 0
            with reader.tail(after=0, idle_timeout=0.3) as tail:
                assert list(tail) == []  # a tail reads there too
            # Checkpoints are the primary's: a projection reads its own at once.
            reader.save_checkpoint("p", other[0].position)
            assert reader.checkpoint("p") == other[0].position


def test_a_rolled_back_transaction_leaves_nothing_to_wait_for(
    delayed: tuple[str, str], cluster: Replicas
) -> None:
    primary, late = delayed
    with evstore.connect(primary) as admin:
        admin.migrate()
    cluster.wait_replayed(cluster.delayed)
    with evstore.connect(primary, read_url=late, read_wait_timeout=0.3) as store:
        with pytest.raises(KeyError), store.transaction() as tx:
            tx.append("order-1", [E("Placed", {})])
            assert tx.read_stream("order-1")[0].version == 1  # inside: on the primary
            raise KeyError("roll back")
        assert store.read_all() == []  # nothing committed, so no wait and no timeout
        with store.transaction() as tx:
            written = tx.append("order-2", [E("Placed", {})])
        with pytest.raises(evstore.ReplicaLagTimeout):
            store.read_all()  # committed: the read waits for it, and here times out
        assert store.wait_for_position(written[0].position, cluster.delay * 5)


def test_a_projection_on_a_routed_store_writes_its_read_model_on_the_primary(
    urls: tuple[str, list[str]],
) -> None:
    primary, standbys = urls
    with evstore.connect(primary) as admin:
        admin.migrate()
        admin.execute("CREATE TABLE totals (stream_id text PRIMARY KEY, n bigint NOT NULL)")

    class Totals:
        name = "totals"

        def apply(self, tx: evstore.Transaction, event: evstore.RecordedEvent) -> None:
            tx.execute("INSERT INTO totals VALUES (?, 1) ON CONFLICT (stream_id) DO UPDATE "
                       "SET n = totals.n + 1", [event.stream_id])

    with evstore.connect(primary, read_url=standbys[0], read_wait_timeout=30) as store:
        store.append("a", [E("T", {}), E("T", {})])
        store.append("b", [E("T", {})])
        assert store.run_projection(Totals()) == 3
        assert store.checkpoint("totals") == store.head_position()
        assert store.execute("SELECT stream_id, n FROM totals ORDER BY 1") == [("a", 2), ("b", 1)]


def test_read_url_is_refused_for_sqlite(tmp_path: object) -> None:
    with pytest.raises(evstore.InvalidInput, match="read_url"):
        evstore.connect(f"sqlite:///{tmp_path}/x.db", read_url=f"sqlite:///{tmp_path}/y.db")


# -- the no-skip guarantee on a standby ------------------------------------------------------


def _standby_reader(url: str, out: mp.Queue[list[int]]) -> None:
    """Tail the standby until the End event; every position delivered, in delivery order."""
    positions: list[int] = []
    with evstore.connect(url) as store, store.tail(
        after=0, poll_interval=0.01, page_size=7, idle_timeout=120
    ) as tail:
        for event in tail:
            positions.append(event.position)
            if event.type == "End":
                break
    out.put(positions)


@pytest.mark.slow
def test_torture_tails_on_standbys_get_every_committed_event_once_in_order(
    cluster: Replicas, urls: tuple[str, list[str]]
) -> None:
    """Four writer processes (a tenth of their transactions rolled back) on the primary, a
    tailing process on each hot standby: each tail delivers exactly the committed events,
    once each, in position order, with none skipped."""
    primary, standbys = urls
    with evstore.connect(primary) as store:
        store.migrate()
    for standby in cluster.standbys:
        cluster.wait_replayed(standby)
    committed: mp.Queue[list[str]] = CTX.Queue()
    read: mp.Queue[list[int]] = CTX.Queue()
    readers = [CTX.Process(target=_standby_reader, args=(url, read)) for url in standbys]
    writers = [CTX.Process(target=_writer, args=(primary, i, 4.0, committed)) for i in range(4)]
    for p in readers + writers:
        p.start()
    ids = [i for _ in writers for i in committed.get(timeout=120)]
    with evstore.connect(primary) as store:
        end = store.append("end", [E("End", {})])
    results = [read.get(timeout=180) for _ in readers]
    for p in readers + writers:
        p.join(timeout=30)
    with evstore.connect(primary) as store:
        stored = list(store.iter_all())
    assert sorted(e.event_id for e in stored) == sorted([*ids, end[0].event_id])
    everything = [e.position for e in stored]
    assert len(everything) > 100
    assert everything != list(range(1, len(everything) + 1))  # rollbacks left gaps to skip
    for positions in results:
        assert positions == everything


def test_the_harness_standbys_are_in_recovery(cluster: Replicas) -> None:
    for server in [*cluster.standbys, cluster.delayed]:
        with psycopg.connect(server.url) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            assert row == (True,)
    with psycopg.connect(cluster.primary.url) as conn:
        sent = conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()
        assert sent == (len(cluster.standbys) + 1,)
