"""`evstore copy`: a whole store moved between SQLite and PostgreSQL, both ways and each to
itself, run as a pipeline runs it (the real command, in a process of its own)."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

import evstore
from evstore import NewEvent
from evstore.urls import parse_url
from tests.conftest import scratch_database

E = NewEvent


def run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evstore", *args], capture_output=True,
                          text=True, timeout=600, **kwargs)


@contextlib.contextmanager
def database(kind: str, tmp_path: Path, name: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/{name}.db"
    else:
        with scratch_database("evstore_copy") as url:
            yield url


PAIRS = [
    pytest.param(("sqlite", "postgres"), marks=pytest.mark.postgres, id="sqlite-to-postgres"),
    pytest.param(("postgres", "sqlite"), marks=pytest.mark.postgres, id="postgres-to-sqlite"),
    pytest.param(("sqlite", "sqlite"), id="sqlite-to-sqlite"),
    pytest.param(("postgres", "postgres"), marks=pytest.mark.postgres, id="postgres-to-postgres"),
]


@pytest.fixture(params=PAIRS)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    source_kind, destination_kind = request.param
    with database(source_kind, tmp_path, "source") as source, database(
        destination_kind, tmp_path, "destination"
    ) as destination:
        yield source, destination


def fill(url: str) -> None:
    """A store with something of everything: documents that test canonical JSON, a rolled-back
    transaction (on PostgreSQL a gap in the positions), several streams, a live and a
    soft-deleted subscription of the same name, and a snapshot."""
    with evstore.connect(url) as store:
        store.migrate()
        store.append("order-1", [
            E("Placed", {"total": 1.5, "items": ["tea", "café ☕"], "big": 10**16, "neg": -0.0,
                         "nested": {"b": [1, {"z": None, "a": True}], "a": "x"}}),
            E("Paid", {}, {"by": "card", "ip": "192.0.2.1"}),
        ])
        # What COPY's text format must escape: tabs, line breaks and backslashes, in a stream
        # id, a type and the documents (JSON writes \" and \\ with backslashes).
        store.append("tab\there\\back\nline\rend", [
            E("Odd\\Type\t", {"quote": 'say "hi"', "path": "C:\\temp\\x", "nl": "a\nb\tc"},
              {"\\key": "\\N"}),
        ])
        with pytest.raises(KeyError), store.transaction() as tx:
            tx.append("rolled-back", [E("T", {}) for _ in range(3)])
            raise KeyError("roll back")
        for i in range(30):
            store.append(f"s{i % 4}", [E("T", {"i": i}), E("U", [i, str(i)])])
        store.save_checkpoint("live", 5)
        store.save_checkpoint("gone", 2)
        store.delete_subscription("gone")
        store.save_checkpoint("gone", 7)
        store.save_snapshot("order-1", 2, {"paid": True, "lines": [1, 2]})


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """Rows read with the driver alone, times as datetimes and JSON decoded, so both
    dialects compare."""
    parsed = parse_url(url)
    if parsed.dialect == "sqlite":
        assert parsed.sqlite_path is not None
        with contextlib.closing(sqlite3.connect(parsed.sqlite_path)) as conn:
            raw = conn.execute(query).fetchall()
    else:
        with psycopg.connect(parsed.conninfo or "") as conn:
            raw = conn.execute(query).fetchall()
    return [tuple(_plain(v) for v in row) for row in raw]


def _plain(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        return datetime.fromisoformat(value)
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "events": rows(url, "SELECT position, event_id, stream_id, version, event_type, payload, "
                           "metadata, recorded_at, content_digest, chain_digest FROM event_store "
                           "ORDER BY position"),
        "streams": rows(url, "SELECT stream_id, version, metadata, created_at, updated_at "
                             "FROM stream ORDER BY stream_id"),
        "subscriptions": rows(url, "SELECT subscription_id, name, position, created_at, "
                                   "updated_at, deleted_at FROM subscription "
                                   "ORDER BY subscription_id"),
        "snapshots": rows(url, "SELECT stream_id, version, state, created_at FROM snapshot "
                               "ORDER BY stream_id, version"),
    }


def chain_head(url: str) -> str:
    verified = run("verify", "--database", url, "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["intact"]
    return str(report["chain_head"])


def test_copy_keeps_everything_and_the_destination_goes_on_appending(
    pair: tuple[str, str],
) -> None:
    source, destination = pair
    fill(source)
    copied = run("copy", source, destination)
    assert copied.returncode == 0, copied.stderr
    assert "identical to the source" in copied.stdout
    before = contents(source)
    after = contents(destination)
    assert after == before
    assert len(after["events"]) == 63 and len(after["subscriptions"]) == 3
    assert [s[5] is None for s in after["subscriptions"]] == [True, False, True]
    # The chain verifies on the destination and ends where the source's does.
    assert chain_head(destination) == chain_head(source)
    # The identity sequence (or AUTOINCREMENT) goes on after the highest copied position.
    top = before["events"][-1][0]
    with evstore.connect(destination) as store:
        shipped = store.append("order-1", [E("Shipped", {})], expected_version=2)
        assert (shipped[0].position, shipped[0].version) == (top + 1, 3)
        assert store.append("new", [E("T", {})])[0].position == top + 2
        store.save_checkpoint("fresh", 1)
    ids = rows(destination, "SELECT subscription_id FROM subscription WHERE name = 'fresh'")
    assert ids == [(max(s[0] for s in before["subscriptions"]) + 1,)]
    assert run("verify", "--database", destination).returncode == 0


def test_a_source_with_gaps_keeps_its_positions(tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL draws positions that rolled-back transactions never use; the copy keeps
    the gaps rather than renumbering, so checkpoints taken on the source stay valid."""
    fill(pg_url)
    positions = [r[0] for r in rows(pg_url, "SELECT position FROM event_store ORDER BY 1")]
    assert positions != list(range(1, len(positions) + 1))
    destination = f"sqlite:///{tmp_path}/gaps.db"
    assert run("copy", pg_url, destination).returncode == 0
    assert [r[0] for r in rows(destination, "SELECT position FROM event_store ORDER BY 1")] == (
        positions)


def test_a_non_empty_destination_is_refused_and_left_as_it_was(
    pair: tuple[str, str],
) -> None:
    source, destination = pair
    fill(source)
    with evstore.connect(destination) as store:
        store.migrate()
        mine = store.append("mine", [E("T", {})])
    refused = run("copy", source, destination)
    assert refused.returncode == 2
    assert "not empty" in refused.stderr and "1 stream(s)" in refused.stderr
    again = run("copy", "--resume", source, destination)
    assert again.returncode == 2 and "not empty" in again.stderr
    assert [r[1] for r in rows(destination, "SELECT position, event_id FROM event_store")] == [
        mine[0].event_id]


def test_a_finished_copy_is_refused_without_resume_and_checked_again_with_it(
    tmp_path: Path,
) -> None:
    source, destination = f"sqlite:///{tmp_path}/s.db", f"sqlite:///{tmp_path}/d.db"
    fill(source)
    assert run("copy", source, destination).returncode == 0
    refused = run("copy", source, destination)
    assert refused.returncode == 2 and "finished copy" in refused.stderr
    checked = run("copy", "--resume", source, destination)
    assert checked.returncode == 0, checked.stderr
    assert "compared it with the source again" in checked.stdout
    other = f"sqlite:///{tmp_path}/other.db"
    fill(other)  # the same appends, other event ids: another log
    wrong = run("copy", "--resume", other, destination)
    assert wrong.returncode == 2 and "another log" in wrong.stderr


def test_copy_refuses_nonsense_arguments(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/s.db"
    fill(source)
    same = run("copy", source, f"sqlite:///{tmp_path}/./s.db")
    assert same.returncode == 2 and "same database" in same.stderr
    missing = run("copy", f"sqlite:///{tmp_path}/nothing.db", f"sqlite:///{tmp_path}/d.db")
    assert missing.returncode == 2 and "no database at" in missing.stderr
    assert not (tmp_path / "nothing.db").exists() and not (tmp_path / "d.db").exists()
    memory = run("copy", source, "sqlite:///:memory:")
    assert memory.returncode == 2 and "in-memory" in memory.stderr


def test_a_source_that_fails_its_digests_stops_the_copy_naming_the_event(
    tmp_path: Path,
) -> None:
    source, destination = f"sqlite:///{tmp_path}/s.db", f"sqlite:///{tmp_path}/d.db"
    fill(source)
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as conn:
        sql = conn.execute("SELECT sql FROM sqlite_schema WHERE name = "
                           "'event_store_reject_update'").fetchone()[0]
        conn.execute("DROP TRIGGER event_store_reject_update")
        conn.execute("UPDATE event_store SET payload = '{\"i\":99}' WHERE position = 10")
        conn.execute(sql)
        conn.commit()
    failed = run("copy", source, destination)
    assert failed.returncode == 1
    assert "source event at position 10" in failed.stderr
    assert "content digest does not match" in failed.stderr
    assert [r[0] for r in rows(destination, "SELECT count(*) FROM event_store")] == [0]


# -- killed halfway, then resumed ------------------------------------------------------------


def _events(url: str) -> int:
    parsed = parse_url(url)
    try:
        if parsed.dialect == "sqlite":
            assert parsed.sqlite_path is not None
            if not Path(parsed.sqlite_path).exists():
                return 0
            with contextlib.closing(sqlite3.connect(parsed.sqlite_path)) as conn:
                return int(conn.execute("SELECT count(*) FROM event_store").fetchone()[0])
        with psycopg.connect(parsed.conninfo or "") as conn:
            row = conn.execute("SELECT count(*) FROM event_store").fetchone()
            return int(row[0]) if row else 0
    except (sqlite3.Error, psycopg.Error):
        return 0  # not created yet


@contextlib.contextmanager
def writes_blocked(url: str) -> Iterator[None]:
    """Hold the destination's write lock, so the copy cannot commit another batch."""
    parsed = parse_url(url)
    if parsed.dialect == "sqlite":
        assert parsed.sqlite_path is not None
        conn = sqlite3.connect(parsed.sqlite_path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with psycopg.connect(parsed.conninfo or "") as pg, pg.transaction():
        pg.execute("LOCK TABLE event_store IN EXCLUSIVE MODE")
        yield


def big_source(url: str, n: int) -> None:
    with evstore.connect(url) as store:
        store.migrate()
        for i in range(n // 500):
            store.append(f"s{i % 7}", [E("T", {"i": i, "k": k}) for k in range(500)])
        store.save_checkpoint("reader", 1234)


KILL_PAIRS = [
    pytest.param("sqlite", "postgres", marks=pytest.mark.postgres, id="sqlite-to-postgres"),
    pytest.param("postgres", "sqlite", marks=pytest.mark.postgres, id="postgres-to-sqlite"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("source_kind", "destination_kind"), KILL_PAIRS)
def test_a_copy_killed_halfway_resumes_to_an_identical_store(
    source_kind: str, destination_kind: str, tmp_path: Path
) -> None:
    n = 40_000
    with database(source_kind, tmp_path, "source") as source, database(
        destination_kind, tmp_path, "destination"
    ) as destination:
        big_source(source, n)
        copy = subprocess.Popen(
            [sys.executable, "-m", "evstore", "copy", source, destination, "--batch-size",
             "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while _events(destination) == 0:
                assert copy.poll() is None, copy.stderr.read() if copy.stderr else ""
                time.sleep(0.01)
            with writes_blocked(destination):
                landed = _events(destination)
                assert 0 < landed < n  # halfway: some batches in, not all
                os.kill(copy.pid, signal.SIGKILL)
                copy.wait(30)
        finally:
            if copy.poll() is None:
                copy.kill()
                copy.wait(30)
            if copy.stderr is not None:
                copy.stderr.close()
        assert _events(destination) == landed  # whole batches only
        refused = run("copy", source, destination)
        assert refused.returncode == 2 and "unfinished copy" in refused.stderr
        resumed = run("copy", "--resume", source, destination)
        assert resumed.returncode == 0, resumed.stderr
        assert f"resumed after position {landed}" in resumed.stdout
        assert contents(destination) == contents(source)  # identical, no duplicates
        assert chain_head(destination) == chain_head(source)


@pytest.mark.slow
def test_a_destination_changed_before_resuming_is_named_at_its_first_difference(
    tmp_path: Path,
) -> None:
    source, destination = f"sqlite:///{tmp_path}/s.db", f"sqlite:///{tmp_path}/d.db"
    big_source(source, 20_000)
    copied = run("copy", source, destination, "--batch-size", "1000")
    assert copied.returncode == 0, copied.stderr
    # Mark the copy unfinished again, and change one copied event's chain digest by hand.
    with contextlib.closing(sqlite3.connect(tmp_path / "d.db")) as conn:
        sql = conn.execute("SELECT sql FROM sqlite_schema WHERE name = "
                           "'event_store_reject_update'").fetchone()[0]
        conn.execute("DROP TRIGGER event_store_reject_update")
        conn.execute("UPDATE event_store SET chain_digest = zeroblob(32) WHERE position = 777")
        conn.execute(sql)
        conn.execute("UPDATE evstore_copy SET finished_at = NULL")
        conn.commit()
    resumed = run("copy", "--resume", source, destination)
    assert resumed.returncode == 1
    assert "event at position 777: chain_digest differs" in resumed.stderr


def test_a_progress_bar_shows_on_a_terminal(tmp_path: Path) -> None:
    source, destination = f"sqlite:///{tmp_path}/s.db", f"sqlite:///{tmp_path}/d.db"
    fill(source)
    primary, replica = pty.openpty()
    termios.tcsetwinsize(replica, (24, 100))  # a terminal of 100 columns, as a person's
    try:
        copy = subprocess.Popen([sys.executable, "-m", "evstore", "copy", source, destination],
                                stdout=subprocess.PIPE, stderr=replica)
        os.close(replica)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the copy has closed the terminal
            while chunk := os.read(primary, 65536):
                shown += chunk
        copy.communicate(timeout=120)
    finally:
        os.close(primary)
    assert copy.returncode == 0
    assert b"copy" in shown and b"63/63" in shown
    plain = run("copy", "--resume", source, destination)  # not a terminal: no bar
    assert plain.returncode == 0 and "ev/s" not in plain.stderr
