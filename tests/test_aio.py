"""evstore.aio natively: tasks sharing one AsyncStore, the async tail's races, cancellation.

The whole contract also runs through the AsyncStore via the `store` fixture (conftest.py,
tests/aio_facade.py); these tests use what only asyncio has."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec

import pytest

import evstore
import evstore.aio
from evstore import NewEvent, groups
from evstore.aio import AsyncStore, AsyncTail, AsyncTransaction
from evstore.errors import (
    AppendLockTimeout,
    ConnectionFailed,
    GroupSizeChanged,
    InvalidInput,
    MemberClaimed,
)
from evstore.operations.verify import verify
from evstore.urls import parse_url
from tests.conftest import ROOT

E = NewEvent
IDLE = 10.0  # a safety net only: a correct tail never waits this long in these tests
P = ParamSpec("P")


def run(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test function on a new event loop."""

    @wraps(test)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


@asynccontextmanager
async def opened(url: str, **options: Any) -> AsyncIterator[AsyncStore]:
    async with await evstore.aio.connect(url, **options) as store:
        await store.migrate()
        yield store


async def take(tail: AsyncTail, n: int) -> list[evstore.RecordedEvent]:
    got = []
    for _ in range(n):
        try:
            got.append(await anext(tail))
        except StopAsyncIteration:
            pytest.fail(f"the tail stopped after {len(got)} of {n} events: it missed a commit")
    return got


def ids(events: list[evstore.RecordedEvent]) -> list[str]:
    return [e.event_id for e in events]


# -- fifty tasks on one store ----------------------------------------------------------------


@run
async def test_fifty_tasks_share_one_store(url: str) -> None:
    """50 tasks append with expected versions (to their own stream and to contended shared
    streams, retrying on WrongExpectedVersion), read their streams back, run transactions
    (some rolled back), while a tail follows the log: every acknowledged event is stored once,
    in order, and the tail delivers exactly the log."""
    async with opened(url) as store:
        acked: list[evstore.RecordedEvent] = []
        conflicts = 0

        async def worker(n: int) -> None:
            nonlocal conflicts
            own = f"task-{n}"
            for i in range(4):
                expected = i or evstore.NO_STREAM
                recorded = await store.append(own, [E("Own", {"n": n, "i": i})], expected)
                assert [e.version for e in recorded] == [i + 1]
                acked.extend(recorded)
            shared = f"shared-{n % 5}"
            while True:
                version = await store.stream_version(shared)
                try:
                    acked.extend(await store.append(shared, [E("Shared", {"n": n})],
                                                    version or evstore.NO_STREAM))
                    break
                except evstore.WrongExpectedVersion as e:
                    assert e.actual is not None and e.actual != version
                    conflicts += 1
            try:
                async with store.transaction() as tx:
                    pending = await tx.append(own, [E("InTx", {"n": n})], 4)
                    assert await tx.stream_version(own) == 5
                    if n % 3 == 0:
                        raise RuntimeError("roll back")
                acked.extend(pending)
            except RuntimeError:
                pass
            mine = await store.read_stream(own)
            assert [e.data.get("i") for e in mine[:4]] == [0, 1, 2, 3]
            assert len(mine) == (4 if n % 3 == 0 else 5)

        async def follow(into: list[evstore.RecordedEvent]) -> None:
            async with store.tail(after=0, idle_timeout=IDLE, page_size=7,
                                  poll_interval=0.02) as tail:
                async for event in tail:
                    into.append(event)
                    if event.type == "End":
                        return

        tailed: list[evstore.RecordedEvent] = []
        follower = asyncio.create_task(follow(tailed))
        results = await asyncio.gather(*(worker(n) for n in range(50)), return_exceptions=True)
        assert [r for r in results if r is not None] == []
        end = await store.append("end", [E("End", {})])
        await asyncio.wait_for(follower, 60)
        log = [e async for e in store.iter_all(page_size=64)]
        assert sorted(ids(log)) == sorted(ids(acked + end))
        assert [e.position for e in tailed] == [e.position for e in log]
        for n in range(50):
            assert await store.stream_version(f"task-{n}") == (4 if n % 3 == 0 else 5)
        shared_versions = [e.version for e in log if e.stream_id.startswith("shared-")]
        assert sorted(shared_versions) == sorted(list(range(1, 11)) * 5)
        assert not any(e.type == "InTx" and e.data["n"] % 3 == 0 for e in log)
        assert conflicts >= 0  # contention depends on scheduling; correctness does not


# -- transactions belong to their task -------------------------------------------------------


@run
async def test_a_transaction_belongs_to_its_task(url: str) -> None:
    async with opened(url) as store:
        async with store.transaction() as tx:
            await tx.append("s", [E("T", {"i": 0})])
            attempts = [tx.append("s", [E("T", {"by": "other task"})]),
                        tx.execute("SELECT 1"), tx.stream_version("s")]
            refused = await asyncio.gather(*attempts, return_exceptions=True)
        assert all(isinstance(r, InvalidInput) and "belongs to the task" in str(r)
                   for r in refused), refused
        assert [e.data for e in await store.read_all()] == [{"i": 0}]


@run
async def test_a_cancelled_task_rolls_its_transaction_back(url: str) -> None:
    async with opened(url) as store:
        inside = asyncio.Event()

        async def writer() -> None:
            async with store.transaction() as tx:
                await tx.append("s", [E("T", {"lost": True})])
                inside.set()
                await asyncio.Event().wait()  # until cancelled

        task = asyncio.create_task(writer())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.read_all() == [] and await store.stream_version("s") is None
        recorded = await store.append("s", [E("T", {"kept": True})], evstore.NO_STREAM)
        assert recorded[0].version == 1
        report = await asyncio.to_thread(_verify, url, store)
        assert report


def _verify(url: str, store: AsyncStore) -> bool:
    if store.url.is_memory:
        return True  # one connection: nobody else can open the database
    with evstore.connect(url) as sync:
        return verify(sync).intact


@run
async def test_sqlite_tasks_wait_their_turn_and_time_out(sqlite_url: str) -> None:
    """On SQLite an open transaction keeps the turn: another task's append waits for it,
    and gives up after lock_timeout with AppendLockTimeout."""
    async with opened(sqlite_url, lock_timeout=0.2) as store:
        async with store.transaction() as tx:
            await tx.append("s", [E("T", {"i": 0})])
            other = asyncio.create_task(store.append("s", [E("T", {"i": 1})]))
            with pytest.raises(AppendLockTimeout) as caught:
                await other
        assert "another task" in str(caught.value).lower()
        assert [e.data for e in await store.read_all()] == [{"i": 0}]


# -- projections may be sync or async --------------------------------------------------------


class Totals:
    """A read model with an async apply and reset."""

    name = "totals"

    async def reset(self, tx: AsyncTransaction) -> None:
        await tx.execute("DELETE FROM totals")

    async def apply(self, tx: AsyncTransaction, event: evstore.RecordedEvent) -> None:
        await asyncio.sleep(0)  # really a coroutine: other tasks run meanwhile
        await tx.execute("INSERT INTO totals (stream_id, n) VALUES (?, 1) ON CONFLICT "
                         "(stream_id) DO UPDATE SET n = totals.n + 1", (event.stream_id,))


class Count:
    """The same kind of read model with a plain apply, which cannot await: it counts."""

    name = "count"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def apply(self, tx: AsyncTransaction, event: evstore.RecordedEvent) -> None:
        self.seen.append(event.position)


@run
async def test_projection_apply_may_be_sync_or_async(url: str) -> None:
    async with opened(url) as store:
        await store.execute("CREATE TABLE totals (stream_id TEXT PRIMARY KEY, n INTEGER)")
        for i in range(5):
            await store.append(f"s{i % 2}", [E("T", {"i": i})])
        progress: list[int] = []

        async def note(n: int) -> None:
            progress.append(n)

        assert await store.run_projection(Totals(), batch_size=2, progress=note) == 5
        assert progress == [2, 2, 1]
        count = Count()
        assert await store.run_projection(count, progress=progress.append) == 5
        assert count.seen == [e.position for e in await store.read_all()]
        await store.append("s0", [E("T", {"i": 5})])
        assert await store.replay(Totals()) == 6
        assert sorted(await store.execute("SELECT stream_id, n FROM totals")) == [
            ("s0", 4), ("s1", 2)]
        assert await store.checkpoint("totals") == await store.head_position()


# -- the async tail's races (tests/test_tail_races.py, on the async tail) --------------------


@asynccontextmanager
async def reader_and_writer(file_url: str) -> AsyncIterator[tuple[AsyncStore, AsyncStore]]:
    async with opened(file_url) as reader, await evstore.aio.connect(file_url) as writer:
        yield reader, writer


async def assert_no_repeat(tail: AsyncTail, writer: AsyncStore) -> None:
    marker = await writer.append("marker", [E("Marker", {})])
    assert ids(await take(tail, 1)) == ids(marker)


@run
async def test_async_commit_while_the_first_page_is_consumed(file_url: str) -> None:
    async with reader_and_writer(file_url) as (reader, writer):
        first = await writer.append("s", [E("T", {"i": i}) for i in range(3)])
        async with reader.tail(after=0, idle_timeout=IDLE, page_size=10,
                               poll_interval=0.02) as tail:
            got = await take(tail, 1)
            late = await writer.append("s", [E("T", {"i": 3})])
            got += await take(tail, 3)
            assert ids(got) == ids(first + late)
            await assert_no_repeat(tail, writer)


@run
async def test_async_commit_between_a_later_page_read_and_the_wait(file_url: str) -> None:
    async with reader_and_writer(file_url) as (reader, writer):
        seeded = await writer.append("s", [E("T", {"i": i}) for i in range(3)])
        async with reader.tail(after=0, idle_timeout=IDLE, page_size=2,
                               poll_interval=0.02) as tail:
            assert ids(await take(tail, 3)) == ids(seeded)
            for round_ in range(5):
                committed = await writer.append("s", [E("T", {"round": round_})])
                assert ids(await take(tail, 1)) == ids(committed)
            await assert_no_repeat(tail, writer)


@run
async def test_async_page_boundary_and_mid_stream_start(file_url: str) -> None:
    async with reader_and_writer(file_url) as (reader, writer):
        log = await writer.append("s", [E("T", {"i": i}) for i in range(10)])
        for start in (0, 4, 10):
            after = 0 if start == 0 else log[start - 1].position
            async with reader.tail(after=after, idle_timeout=IDLE, page_size=2,
                                   poll_interval=0.02) as tail:
                before = await writer.read_all(after=after)
                assert ids(await take(tail, len(before))) == ids(before)
                more = await writer.append(f"t{start}", [E("T", {}), E("T", {})])
                assert ids(await take(tail, 2)) == ids(more)
                assert tail.position == more[-1].position
                await assert_no_repeat(tail, writer)


@run
async def test_async_tail_stops_from_another_task(url: str) -> None:
    async with opened(url) as store:
        await store.append("s", [E("T", {})])
        tail = store.tail(after=0, poll_interval=0.02)
        got = []

        async def consume() -> None:
            async for event in tail:
                got.append(event)

        task = asyncio.create_task(consume())
        while not got:
            await asyncio.sleep(0.01)
        tail.stop()
        await asyncio.wait_for(task, IDLE)
        assert len(got) == 1 and tail.position == got[0].position
        await tail.aclose()


# -- PostgreSQL: the tail's own LISTEN connection, reconnect ---------------------------------


async def _evstore_sessions(store: AsyncStore) -> list[tuple[Any, ...]]:
    return await store.execute(
        "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'evstore' AND pid <> pg_backend_pid()")


@pytest.mark.postgres
@run
async def test_postgres_async_tail_listens_on_a_connection_of_its_own(pg_url: str) -> None:
    """psycopg #340: a connection waiting for notifications holds up everything else on it.
    The tail waits on its own connection, so the store keeps serving while it waits."""
    async with opened(pg_url) as store:
        first = await store.append("s", [E("T", {"i": 0})])
        async with store.tail(after=0, poll_interval=30) as tail:
            assert ids(await take(tail, 1)) == ids(first)
            waiting = asyncio.create_task(anext(tail))
            await asyncio.sleep(0.1)  # the tail is now inside its wait
            assert not waiting.done()
            (_, query), = await _evstore_sessions(store)  # the tail's, and only that
            assert query.startswith("LISTEN") or "FROM event_store" in query, query
            # Not held up by the wait (IDLE is a safety net: this takes milliseconds).
            later = await asyncio.wait_for(store.append("s", [E("T", {"i": 1})]), IDLE)
            assert await store.read_all(after=first[0].position) == later
            assert (await asyncio.wait_for(waiting, IDLE)).event_id == later[0].event_id


@pytest.mark.postgres
@run
async def test_postgres_async_tail_reconnects_and_resumes(pg_url: str) -> None:
    async with opened(pg_url) as store:
        first = await store.append("s", [E("T", {"i": 0})])
        async with store.tail(after=0, idle_timeout=IDLE, poll_interval=0.05) as tail:
            assert ids(await take(tail, 1)) == ids(first)
            for round_ in range(2):
                (pid, _), = await _evstore_sessions(store)
                assert await store.execute("SELECT pg_terminate_backend(?)", (pid,)) == [(True,)]
                later = await store.append("s", [E("T", {"round": round_}), E("T", {})])
                assert ids(await take(tail, 2)) == ids(later)  # nothing repeated or skipped
            assert tail.position == await store.head_position()


@pytest.mark.postgres
@run
async def test_postgres_async_connect_failure_is_clear(pg_url: str) -> None:
    bad = parse_url(pg_url).with_database("evstore_no_such_database").url
    with pytest.raises(ConnectionFailed) as caught:
        await evstore.aio.connect(bad)
    assert "evstore_no_such_database" in str(caught.value)
    assert "check that the server is running" in str(caught.value)


# -- the README's example --------------------------------------------------------------------


def test_the_asyncio_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "EVSTORE_DATABASE_URL": f"sqlite:///{tmp_path}/example.db"}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "aio_example.py")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "order-1: Placed, Paid" in done.stdout
    assert "tail saw 3 events" in done.stdout



# -- consumer groups (evstore.groups) on the AsyncStore ----------------------------------------


class Seen:
    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[evstore.RecordedEvent] = []

    async def apply(self, tx: AsyncTransaction, event: evstore.RecordedEvent) -> None:
        self.events.append(event)


@run
async def test_async_consumer_group_members_split_the_log(file_url: str) -> None:
    async with opened(file_url) as first, await evstore.aio.connect(file_url) as second:
        for i in range(12):
            await first.append(f"s{i}", [E("T", {"i": i})])
        log = await first.read_all()
        members = [Seen("g"), Seen("g")]
        assert await first.run_projection(members[0], group_member=0, group_size=2) + \
            await second.run_projection(members[1], group_member=1, group_size=2) == 12
        owned = [[e for e in log if groups.member_of(e.stream_id, 2) == m] for m in (0, 1)]
        assert [ids(m.events) for m in members] == [ids(o) for o in owned]
        status = await first.group_status("g")
        assert [(s.member, s.group_size, s.position, s.live) for s in status] == [
            (0, 2, log[-1].position, True), (1, 2, log[-1].position, True)]
        with pytest.raises(MemberClaimed):  # member 1 is second's
            await first.run_projection(Seen("g"), group_member=1, group_size=2)
        with pytest.raises(GroupSizeChanged):  # a plain run is a group of one
            await first.run_projection(Seen("g"))
        async with first.tail(after=0, idle_timeout=0.5, group_member=1, group_size=2) as tail:
            assert ids([e async for e in tail]) == ids(owned[1])
            assert tail.position == log[-1].position
        await second.close()  # gives its lease back
        assert not (await first.group_status("g"))[1].live
        reset = await first.reset_group("g")
        assert len(reset) == 2 and await first.group_status("g") == []
        plain = Seen("g")
        assert await first.run_projection(plain) == 12 and ids(plain.events) == ids(log)


@run
async def test_read_url_is_refused_with_the_remedy(tmp_path: Path) -> None:
    # The async driver has no read routing yet: it must refuse read_url, not ignore it and
    # read from the primary while the caller believes it reads from the standby.
    url = f"sqlite:///{tmp_path / 'refused.db'}"
    with pytest.raises(InvalidInput, match=r"read_url.*evstore\.connect\(url, read_url"):
        await evstore.aio.connect(url, read_url=url)
    assert not (tmp_path / "refused.db").exists()  # nothing opened
