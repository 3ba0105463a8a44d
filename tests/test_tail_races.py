"""Tail races, made deterministic: a suspended tail generator is the control point.

`next(tail)` returns once the tail has read a page and handed over an event; the test then
commits from another connection while the tail is exactly there, and consumes on. A tail that
misses the commit would stop at its idle_timeout (StopIteration) instead of delivering it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import evstore
from evstore import NewEvent
from evstore.errors import ConnectionFailed
from evstore.store import Tail
from evstore.urls import parse_url
from tests.pg_server import local_server

E = NewEvent
IDLE = 10.0  # a safety net only: a correct tail never waits this long in these tests


def take(tail: Tail, n: int) -> list[evstore.RecordedEvent]:
    """The next n events; a tail that stops early (missed a commit) fails here."""
    got = []
    for _ in range(n):
        try:
            got.append(next(tail))
        except StopIteration:
            pytest.fail(f"the tail stopped after {len(got)} of {n} events: it missed a commit")
    return got


def ids(events: list[evstore.RecordedEvent]) -> list[str]:
    return [e.event_id for e in events]


def assert_no_repeat(tail: Tail, writer: evstore.Store) -> None:
    """The next event the tail gives is a fresh marker: nothing was queued twice."""
    marker = writer.append("marker", [E("Marker", {})])
    assert ids(take(tail, 1)) == ids(marker)


@pytest.fixture
def stores(file_url: str) -> Iterator[tuple[evstore.Store, evstore.Store]]:
    """The tailing Store and a writer on another connection, on a SQLite file and PostgreSQL."""
    with evstore.connect(file_url) as reader, evstore.connect(file_url) as writer:
        reader.migrate()
        yield reader, writer


def test_commit_while_the_first_page_is_consumed(
    stores: tuple[evstore.Store, evstore.Store],
) -> None:
    """The original SQLite bug: the data_version baseline was read after the first page, so a
    commit that landed while the page was consumed never woke the tail."""
    reader, writer = stores
    first = writer.append("s", [E("T", {"i": i}) for i in range(3)])
    with reader.tail(after=0, idle_timeout=IDLE, page_size=10, poll_interval=0.02) as tail:
        got = take(tail, 1)
        late = writer.append("s", [E("T", {"i": 3})])
        got += take(tail, 3)
        assert ids(got) == ids(first + late)
        assert [e.position for e in got] == sorted(e.position for e in got)
        assert_no_repeat(tail, writer)


def test_commit_between_a_later_page_read_and_the_wait(
    stores: tuple[evstore.Store, evstore.Store],
) -> None:
    reader, writer = stores
    seeded = writer.append("s", [E("T", {"i": i}) for i in range(3)])
    with reader.tail(after=0, idle_timeout=IDLE, page_size=2, poll_interval=0.02) as tail:
        got = take(tail, 3)  # page [1, 2], then page [3]: suspended right after that read
        assert ids(got) == ids(seeded)
        for round_ in range(5):
            committed = writer.append("s", [E("T", {"round": round_})])
            assert ids(take(tail, 1)) == ids(committed)  # read after a wake-up, then again
        assert_no_repeat(tail, writer)


def test_page_boundary(stores: tuple[evstore.Store, evstore.Store]) -> None:
    """Exactly one full page, then a commit while the tail holds that page's last event."""
    reader, writer = stores
    page = writer.append("s", [E("T", {"i": 0}), E("T", {"i": 1})])
    with reader.tail(after=0, idle_timeout=IDLE, page_size=2, poll_interval=0.02) as tail:
        assert ids(take(tail, 2)) == ids(page)
        more = writer.append("s", [E("T", {"i": 2})])
        assert ids(take(tail, 1)) == ids(more)
        two_pages = writer.append("s", [E("T", {"i": i}) for i in range(3, 7)])
        assert ids(take(tail, 4)) == ids(two_pages)
        again = writer.append("t", [E("T", {}), E("T", {})])  # a full page from a wait
        assert ids(take(tail, 2)) == ids(again)
        assert_no_repeat(tail, writer)


@pytest.mark.parametrize("start", [0, 1, 4, 9, 10])
def test_tail_starting_mid_stream(stores: tuple[evstore.Store, evstore.Store], start: int) -> None:
    reader, writer = stores
    log = writer.append("s", [E("T", {"i": i}) for i in range(10)])
    after = 0 if start == 0 else log[start - 1].position
    expected = [e for e in log if e.position > after]
    with reader.tail(after=after, idle_timeout=IDLE, page_size=3, poll_interval=0.02) as tail:
        got = take(tail, len(expected))
        assert ids(got) == ids(expected)
        later = writer.append("s", [E("T", {"i": 10})])
        assert ids(take(tail, 1)) == ids(later)
        assert tail.position == later[0].position
        assert_no_repeat(tail, writer)


def _follow(store: evstore.Store, after: int, into: list[Any]) -> None:
    """Collect events until the End event (or the safety idle_timeout)."""
    try:
        with store.tail(after=after, idle_timeout=IDLE, page_size=7, poll_interval=0.02) as tail:
            for event in tail:
                into.append(event)
                if event.type == "End":
                    return
    except Exception as e:  # reported by the caller's assertion
        into.append(e)


def test_several_tails_on_one_store(store: evstore.Store) -> None:
    """Threads tailing one shared Store (its in-memory database too) while it is appended to."""
    early = store.append("s", [E("T", {"i": i}) for i in range(5)])
    starts = [0, 0, early[2].position, early[4].position]
    results: list[list[Any]] = [[] for _ in starts]
    threads = [threading.Thread(target=_follow, args=(store, after, out))
               for after, out in zip(starts, results, strict=True)]
    for t in threads:
        t.start()
    for i in range(40):
        if i % 10 == 9:
            with store.transaction() as tx:
                tx.append("t", [E("T", {"i": i})])
                tx.append("u", [E("T", {"i": i})])
        else:
            store.append(f"s{i % 3}", [E("T", {"i": i})] * 1 + [E("T", {"j": i})] * (i % 2))
    store.append("end", [E("End", {})])
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    everything = store.read_all(limit=10_000)
    for after, got in zip(starts, results, strict=True):
        assert [e.position for e in got] == [e.position for e in everything if e.position > after]


# -- PostgreSQL: reconnect, and giving up ----------------------------------------------------


def _terminate_tail_backend(store: evstore.Store) -> None:
    """Terminate the tail's server process: the scratch database's other evstore session."""
    found = store.execute(
        "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'evstore' AND pid <> pg_backend_pid()")
    assert len(found) == 1, found
    pid, query = found[0]
    assert query.startswith("LISTEN") or "FROM event_store" in query, query
    assert store.execute("SELECT pg_terminate_backend(?)", (pid,)) == [(True,)]


@pytest.mark.postgres
def test_postgres_tail_reconnects_and_resumes_after_its_last_event(pg_url: str) -> None:
    with evstore.connect(pg_url) as store:
        store.migrate()
        first = store.append("s", [E("T", {"i": 0})])
        with store.tail(after=0, idle_timeout=IDLE, poll_interval=0.05) as tail:
            assert ids(take(tail, 1)) == ids(first)
            _terminate_tail_backend(store)
            later = store.append("s", [E("T", {"i": i}) for i in range(1, 4)])
            assert ids(take(tail, 3)) == ids(later)  # no repeat of the first event
            _terminate_tail_backend(store)  # and once more, now while it waits
            again = store.append("s", [E("T", {"i": 4})])
            assert ids(take(tail, 1)) == ids(again)
            assert_no_repeat(tail, store)
            assert tail.position == store.head_position()


@contextlib.contextmanager
def stoppable_server() -> Iterator[tuple[str, Any]]:
    """A private PostgreSQL (tests/pg_server.py) and a function that stops it at once."""
    with local_server() as server:
        yield server.url, server.stop


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_tail_gives_up_after_its_reconnect_attempts() -> None:
    with stoppable_server() as (url, stop), evstore.connect(url) as store:
        store.migrate()
        events = store.append("s", [E("T", {"i": 0}), E("T", {"i": 1})])
        tail = store.tail(after=0, poll_interval=0.05, reconnect_attempts=2)
        assert ids(take(tail, 2)) == ids(events)
        stop()
        with pytest.raises(ConnectionFailed) as caught:
            next(tail)
        message = str(caught.value)
        assert f"resume with store.tail(after={events[1].position})" in message
        assert "after 2 attempt(s)" in message
        assert tail.position == events[1].position
        with pytest.raises(StopIteration):
            next(tail)  # a failed tail stays failed; a new tail resumes
        with pytest.raises(psycopg.OperationalError):  # the server is really gone
            psycopg.connect(parse_url(url).conninfo or "", connect_timeout=2)
