"""Consumer groups: every stream belongs to exactly one member, and misconfiguration fails."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evstore
from evstore import NewEvent
from evstore.errors import GroupSizeChanged, MemberClaimed, MemberOutOfRange
from evstore.groups import Leases, checkpoint_name, member_of
from evstore.urls import parse_url
from tests.conftest import require_pg, scratch_database


@pytest.fixture
def store(url: str) -> Iterator[evstore.Store]:
    """Consumer groups are part of the sync API only (evstore.aio has no group_member yet)."""
    with evstore.connect(url) as s:
        s.migrate()
        yield s

# The member of a stream, spelled in PostgreSQL for a DBA (README, "Consumer groups"); the
# test below checks it against evstore's own function.
PG_MEMBER_OF = """
SELECT mod(('x' || left(encode(sha256(convert_to(%(stream_id)s, 'UTF8')), 'hex'), 16))
           ::bit(64)::bigint::numeric + 18446744073709551616, 18446744073709551616)
       %% %(group_size)s
"""


class Recorder:
    """A projection that records what it applied in its own table, in the same transaction."""

    def __init__(self, name: str) -> None:
        self.name = name

    def apply(self, tx: evstore.Transaction, event: evstore.RecordedEvent) -> None:
        tx.execute("INSERT INTO applied (projection, position, stream_id, version) "
                   "VALUES (?, ?, ?, ?)", (self.name, event.position, event.stream_id,
                                           event.version))

    def reset(self, tx: evstore.Transaction) -> None:
        tx.execute("DELETE FROM applied WHERE projection = ?", (self.name,))


def prepare(store: evstore.Store) -> None:
    store.migrate()
    store.execute("CREATE TABLE IF NOT EXISTS applied (projection text NOT NULL, "
                  "position bigint NOT NULL, stream_id text NOT NULL, version bigint NOT NULL)")


def applied(store: evstore.Store, name: str) -> list[tuple[int, str, int]]:
    rows = store.execute("SELECT position, stream_id, version FROM applied WHERE projection = ? "
                         "ORDER BY position", (name,))
    return [(int(p), str(s), int(v)) for p, s, v in rows]


# -- the hash --------------------------------------------------------------------------------


def test_member_of_is_the_documented_hash() -> None:
    # Fixed values: a changed hash would move every stream to another member.
    assert [member_of("order-1", n) for n in (1, 2, 3, 7, 1000)] == [0, 0, 2, 0, 396]
    assert [member_of("café/ü", n) for n in (1, 2, 3, 7, 1000)] == [0, 1, 1, 2, 541]
    for stream_id in ("order-1", "café/ü", "x" * 200, "😀"):
        digest = hashlib.sha256(stream_id.encode("utf-8")).digest()
        assert member_of(stream_id, 97) == int.from_bytes(digest[:8], "big") % 97


@pytest.mark.postgres
@settings(max_examples=60, deadline=None)
@given(stream_id=st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
                         min_size=1, max_size=200),
       group_size=st.integers(1, 2**31 - 1))
def test_the_documented_sql_computes_the_same_member(stream_id: str, group_size: int) -> None:
    conninfo = parse_url(require_pg()).conninfo
    assert conninfo is not None
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(PG_MEMBER_OF, {"stream_id": stream_id,
                                          "group_size": group_size}).fetchone()
    assert row is not None and int(row[0]) == member_of(stream_id, group_size)


# -- the split, as properties ----------------------------------------------------------------

stream_sets = st.lists(
    st.tuples(st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
                      min_size=1, max_size=12),
              st.integers(1, 4)),
    min_size=1, max_size=12, unique_by=lambda s: s[0],
)


def check_split(store: evstore.Store, name: str, group_size: int) -> None:
    """Every member's projection and tail: union = whole log, no overlap, versions in order,
    each stream with exactly its member."""
    log = [(e.position, e.stream_id, e.version) for e in store.iter_all()]
    seen: list[tuple[int, str, int]] = []
    for member in range(group_size):
        store.run_projection(Recorder(name), group_member=member, group_size=group_size)
    for member in range(group_size):
        # Members share one projection name and table, so sort out each member's rows.
        mine = [row for row in applied(store, name) if member_of(row[1], group_size) == member]
        tailed = [(e.position, e.stream_id, e.version) for e in
                  store.tail(group_member=member, group_size=group_size, idle_timeout=0,
                             poll_interval=0.01)]
        assert tailed == mine
        versions: dict[str, int] = {}
        for _, stream_id, version in tailed:
            assert member_of(stream_id, group_size) == member
            assert version == versions.get(stream_id, 0) + 1  # version order, no gap
            versions[stream_id] = version
        seen += mine
    assert sorted(seen) == log  # the union is the whole log, and nothing twice
    assert len(set(seen)) == len(seen)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams=stream_sets, group_size=st.integers(1, 6))
def test_members_split_the_log_sqlite(streams: list[tuple[str, int]], group_size: int) -> None:
    with tempfile.TemporaryDirectory() as folder, \
            evstore.connect(f"sqlite:///{folder}/groups.db") as store:
        prepare(store)
        for stream_id, count in streams:
            store.append(stream_id, [NewEvent("T", {"n": n}) for n in range(count)])
        check_split(store, "p", group_size)


@pytest.fixture(scope="module")
def pg_store() -> Iterator[evstore.Store]:
    require_pg()
    with scratch_database() as url, evstore.connect(url) as store:
        prepare(store)
        yield store


@pytest.mark.postgres
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(streams=stream_sets, group_size=st.integers(1, 6))
def test_members_split_the_log_postgres(
    pg_store: evstore.Store, streams: list[tuple[str, int]], group_size: int
) -> None:
    prefix = uuid.uuid4().hex[:6]
    for stream_id, count in streams:
        pg_store.append(prefix + stream_id, [NewEvent("T", {"n": n}) for n in range(count)])
    check_split(pg_store, "p" + prefix, group_size)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(group_size=st.integers(1, 5), data=st.data())
def test_misconfigurations_fail_clearly(group_size: int, data: Any) -> None:
    """Out of range, a second holder, a changed size: each refused; a reset allows it."""
    member = data.draw(st.integers(0, group_size - 1))
    other_size = data.draw(st.integers(1, 6).filter(lambda n: n != group_size))
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/groups.db"
        with evstore.connect(url) as first, evstore.connect(url) as second:
            prepare(first)
            first.append("s", [NewEvent("T", {})])
            bad = data.draw(st.sampled_from([group_size, group_size + 3, -1]))
            with pytest.raises(MemberOutOfRange, match="out of range"):
                first.run_projection(Recorder("p"), group_member=bad, group_size=group_size)
            with pytest.raises(MemberOutOfRange, match="both"):
                first.run_projection(Recorder("p"), group_member=member)
            assert applied(first, "p") == []

            first.run_projection(Recorder("p"), group_member=member, group_size=group_size)
            with pytest.raises(MemberClaimed, match=f"member {member} of consumer group 'p'"):
                second.run_projection(Recorder("p"), group_member=member,
                                      group_size=group_size)
            with pytest.raises(GroupSizeChanged, match=f"group size {group_size}, not "
                               f"{other_size}"):
                second.run_projection(Recorder("p"), group_member=0, group_size=other_size)
            with pytest.raises(MemberClaimed, match="cannot reset"):
                second.reset_group("p")
        # The first store closed and gave its lease back; its checkpoint still holds the size.
        with evstore.connect(url) as third:
            with pytest.raises(GroupSizeChanged):
                third.run_projection(Recorder("p"), group_member=0, group_size=other_size)
            reset = third.reset_group(Recorder("p"))  # the projection's reset(tx) runs too
            assert [m.checkpoint for m in reset] == [checkpoint_name("p", member, group_size)]
            assert applied(third, "p") == []
            third.run_projection(Recorder("p"), group_member=0, group_size=other_size)
            if member_of("s", other_size) == 0:
                assert applied(third, "p") == [(1, "s", 1)]


# -- one dialect at a time -------------------------------------------------------------------


def test_group_of_one_is_the_plain_projection(store: evstore.Store) -> None:
    prepare(store)
    store.append("a", [NewEvent("T", {})] * 3)
    assert store.run_projection(Recorder("p"), group_member=0, group_size=1) == 3
    assert store.checkpoint("p") == 3  # the plain name
    store.append("b", [NewEvent("T", {})])
    assert store.run_projection(Recorder("p")) == 1


def test_plain_run_refused_after_a_group_ran(store: evstore.Store) -> None:
    prepare(store)
    store.append("a", [NewEvent("T", {})])
    store.run_projection(Recorder("p"), group_member=1, group_size=2)
    assert store.checkpoint("p/member-1-of-2") == 1
    with pytest.raises(GroupSizeChanged, match="reset"):
        store.run_projection(Recorder("p"))


def test_group_refused_after_a_plain_run(store: evstore.Store) -> None:
    prepare(store)
    store.append("a", [NewEvent("T", {})])
    store.run_projection(Recorder("p"))
    with pytest.raises(GroupSizeChanged, match="checkpoint 'p' at position 1"):
        store.run_projection(Recorder("p"), group_member=0, group_size=3)
    assert applied(store, "p") == [(1, "a", 1)]


def test_tail_checks_its_member(store: evstore.Store) -> None:
    with pytest.raises(MemberOutOfRange):
        store.tail(group_member=2, group_size=2)
    with pytest.raises(MemberOutOfRange):
        store.tail(group_member=True, group_size=2)  # type: ignore[arg-type]


def test_an_expired_lease_can_be_taken_over(file_url: str) -> None:
    with evstore.connect(file_url) as store:
        prepare(store)
        crashed = Leases()
        crashed.claim(store._live(), "p", 0, 2, ttl=0.001)  # a holder that stopped renewing
        store.append("a", [NewEvent("T", {})])
        # Renewal runs in every batch's transaction; the claim succeeds once expired.
        for _ in range(1000):
            try:
                store.run_projection(Recorder("p"), group_member=0, group_size=2)
                break
            except MemberClaimed:
                continue
        else:
            pytest.fail("the expired lease was never taken over")
        holders = {m.holder for m in store.group_status("p") if m.live}
        assert crashed.holder not in holders


def test_a_member_held_by_another_process_is_refused(file_url: str, tmp_path: Path) -> None:
    with evstore.connect(file_url) as store:
        prepare(store)
        store.append("a", [NewEvent("T", {})])
    holder = tmp_path / "holder.py"
    holder.write_text(textwrap.dedent(f"""
        import sys, evstore
        class P:
            name = "p"
            def apply(self, tx, event): pass
        with evstore.connect({file_url!r}) as store:
            store.run_projection(P(), group_member=1, group_size=3)
            print("holding", flush=True)
            sys.stdin.read()
    """))
    process = subprocess.Popen([sys.executable, str(holder)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "holding\n"
        with evstore.connect(file_url) as store:
            with pytest.raises(MemberClaimed, match=f":{process.pid}:"):
                store.run_projection(Recorder("p"), group_member=1, group_size=3)
            # Another member of the same group is free.
            store.run_projection(Recorder("p"), group_member=2, group_size=3)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()
    with evstore.connect(file_url) as store:  # it closed its store: the lease is back
        store.run_projection(Recorder("p"), group_member=1, group_size=3)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evstore", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)


def test_cli_group_status_and_reset(file_url: str) -> None:
    with evstore.connect(file_url) as store:
        prepare(store)
        store.append("a", [NewEvent("T", {})])
        for member in range(2):
            store.run_projection(Recorder("p"), group_member=member, group_size=2)
    status = run_cli("group", "status", "p", "--database", file_url, "--json")
    assert status.returncode == 0, status.stderr
    assert '"checkpoint": "p/member-1-of-2"' in status.stdout
    refused = run_cli("group", "reset", "p", "--database", file_url)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    with evstore.connect(file_url) as store:
        assert store.checkpoint("p/member-0-of-2") == 1
    done = run_cli("group", "reset", "p", "--database", file_url, "--yes")
    assert done.returncode == 0, done.stderr
    assert "reset checkpoint p/member-0-of-2 (was at position 1)" in done.stdout
    with evstore.connect(file_url) as store:
        assert store.checkpoint("p/member-0-of-2") == 0
        assert store.group_status("p") == []
