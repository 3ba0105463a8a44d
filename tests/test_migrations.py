"""Migration round trips through evstore and through the real yoyo command line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import evstore
from evstore.urls import parse_url
from tests.conftest import SQL
from tests.test_schema import schema_of

IDS = sorted(p.name[:-4] for p in (SQL / "sqlite").glob("*.sql") if "rollback" not in p.name)


def _ours(store: evstore.Store) -> list[str]:
    """Every object of ours in the catalog (not yoyo's bookkeeping)."""
    if store.dialect == "sqlite":
        rows = store.execute(
            "SELECT type || ' ' || name FROM sqlite_schema WHERE name NOT LIKE '%yoyo%' "
            "AND name NOT LIKE 'sqlite_%'")
    else:
        rows = store.execute(
            "SELECT 'rel ' || relname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND relname NOT LIKE '%yoyo%' "
            "UNION ALL SELECT 'fn ' || proname FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname = current_schema() "
            "UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal")
    return sorted(r[0] for r in rows)


def test_round_trip_through_evstore(url: str) -> None:
    with evstore.connect(url) as store:
        assert store.migrate() == IDS
        assert store.migrate() == []
        head = schema_of(store)
        assert {"event_store", "stream", "subscription", "snapshot"} <= set(head.tables)
        assert [s.applied for s in store.status()] == [True] * len(IDS)
        assert store.rollback() == [IDS[-1]]
        assert store.rollback(to=IDS[3]) == IDS[4:-1][::-1]
        assert [s.id for s in store.status() if s.applied] == IDS[:4]
        store.rollback(to="base")
        assert _ours(store) == []
        assert store.migrate() == IDS
        assert schema_of(store).to_json() == head.to_json()


def test_rollback_to_unknown_id(store: evstore.Store) -> None:
    with pytest.raises(evstore.UnknownMigration, match="no migration 'nope'"):
        store.rollback(to="nope")


def _yoyo(*args: str) -> subprocess.CompletedProcess[str]:
    yoyo = Path(sys.executable).parent / "yoyo"
    return subprocess.run([str(yoyo), *args, "--batch", "--no-config-file"],
                          capture_output=True, text=True, timeout=120)


def test_round_trip_through_the_yoyo_command_line(file_url: str) -> None:
    url = parse_url(file_url)
    folder = str(SQL / url.dialect)
    applied = _yoyo("apply", "--database", url.yoyo_url, folder)
    assert applied.returncode == 0, applied.stderr
    listed = _yoyo("list", "--database", url.yoyo_url, folder)
    assert listed.stdout.count("A ") >= len(IDS), listed.stdout
    with evstore.connect(file_url) as store:
        assert store.migrate() == []  # evstore sees what yoyo applied, and records checksums
        assert store.append("s", [evstore.NewEvent("T", {"n": 1})])[0].version == 1
        with pytest.raises(evstore.AppendOnlyViolation):
            store.execute("DELETE FROM event_store")
    rolled = _yoyo("rollback", "--all", "--database", url.yoyo_url, folder)
    assert rolled.returncode == 0, rolled.stderr
    with evstore.connect(file_url) as store:
        assert _ours(store) == []
    again = _yoyo("apply", "--database", url.yoyo_url, folder)
    assert again.returncode == 0, again.stderr
    with evstore.connect(file_url) as store:
        assert [s.applied for s in store.status()] == [True] * len(IDS)


def test_changed_applied_migration_is_refused(url: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    shutil.copytree(SQL / parse_url(url).dialect, folder)
    with evstore.connect(url, migrations_dir=folder) as store:
        store.migrate()
        target = folder / "0004_stream.sql"
        target.write_text(target.read_text() + "\n-- edited after it was applied\n")
        with pytest.raises(evstore.ChecksumMismatch, match="0004_stream"):
            store.migrate()
        assert [s.id for s in store.status() if s.changed] == ["0004_stream"]
