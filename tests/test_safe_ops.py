"""Destructive commands ask or refuse, dry runs touch nothing, the checksum guard holds across
rollbacks, faults (full disk, dead lock holders, killed parity runs) leave things clean."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

import evstore
from evstore.cli import main
from evstore.schema.migrations import CHECKSUM_TABLE, Migrator
from evstore.urls import parse_url
from tests.conftest import IN_CI, SQL
from tests.pg_scram import ScramServer, scram_server

IDS = sorted(p.name[:-4] for p in (SQL / "sqlite").glob("*.sql") if "rollback" not in p.name)


def run(*args: str, cwd: Path | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evstore", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120, **kw)  # type: ignore[call-overload]


def applied(url: str, folder: Path | None = None) -> list[str]:
    migrator = Migrator(parse_url(url), folder or SQL / parse_url(url).dialect)
    return [s.id for s in migrator.status() if s.applied]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def migrated(file_url: str) -> str:
    with evstore.connect(file_url) as store:
        store.migrate()
        store.append("order-1", [evstore.NewEvent("Placed", {"n": 1})])
    return file_url


@pytest.fixture
def folder(tmp_path: Path, file_url: str) -> Path:
    dialect = parse_url(file_url).dialect
    shutil.copytree(SQL / dialect, tmp_path / "sql")
    return tmp_path / "sql"


def dir_option(url: str) -> str:
    return "--pg-dir" if parse_url(url).dialect == "postgres" else "--sqlite-dir"


# -- 1. destructive commands ask or refuse ---------------------------------------------------


@pytest.mark.parametrize("count", ["0", "-1", "-7"])
def test_rollback_takes_only_positive_counts(migrated: str, count: str) -> None:
    result = run("rollback", "--count", count, "--database", migrated)
    assert result.returncode == 2 and "--count" in result.stderr, result.stderr
    assert applied(migrated) == IDS


def test_rollback_dropping_data_needs_yes_away_from_a_terminal(migrated: str) -> None:
    # 0008 drops only the checksum copy, 0007 drops no table: no question asked.
    assert run("rollback", "--count", "2", "--database", migrated).returncode == 0
    refused = run("rollback", "--to", "base", "--database", migrated)
    assert refused.returncode == 2, refused.stderr
    assert "event_store" in refused.stderr and "--yes" in refused.stderr
    assert applied(migrated) == IDS[:-2]  # nothing changed
    with evstore.connect(migrated) as store:
        assert len(store.read_all()) == 1
    done = run("rollback", "--to", "base", "--yes", "--database", migrated)
    assert done.returncode == 0, done.stderr
    assert applied(migrated) == []


def test_rollback_of_a_table_with_rows_is_refused(file_url: str) -> None:
    with evstore.connect(file_url) as store:
        store.migrate()
        store.save_checkpoint("projection", 0)  # a row in subscription (0005)
    for _ in range(len(IDS) - 5):  # 0012 to 0006: tables without rows, or none
        assert run("rollback", "--database", file_url).returncode == 0
    refused = run("rollback", "--database", file_url)
    assert refused.returncode == 2 and "subscription (holds rows" in refused.stderr
    assert applied(file_url) == IDS[:5]


def test_rollback_of_a_column_holding_events_is_refused(file_url: str) -> None:
    with evstore.connect(file_url) as store:
        store.migrate()
        store.append("s", [evstore.NewEvent("T", {})])
    digest = IDS.index("0009_event_store_digests")
    refused = run("rollback", "--database", file_url, "--count", str(len(IDS) - digest))
    assert refused.returncode == 2, refused.stderr
    assert "column content_digest of event_store (holds rows" in refused.stderr
    assert applied(file_url) == IDS


def _on_terminal(args: list[str], answer: bytes) -> tuple[int, str]:
    """Run the command with stdin and stderr on a pseudo-terminal and type `answer`."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "evstore", *args], stdin=follower,
                            stderr=follower, stdout=subprocess.PIPE)
    os.close(follower)
    seen = b""
    while b"[y/N]" not in seen:
        chunk = os.read(leader, 1024)
        assert chunk, seen
        seen += chunk
    os.write(leader, answer)
    out, _ = proc.communicate(timeout=120)
    try:
        while True:
            chunk = os.read(leader, 1024)
            if not chunk:
                break
            seen += chunk
    except OSError:
        pass
    os.close(leader)
    return proc.returncode, seen.decode() + out.decode()


def test_rollback_asks_on_a_terminal(migrated: str) -> None:
    code, text = _on_terminal(["rollback", "--to", "base", "--database", migrated], b"n\n")
    assert code == 2 and "[y/N]" in text and "event_store (holds rows" in text
    assert applied(migrated) == IDS
    code, text = _on_terminal(["rollback", "--to", "base", "--database", migrated], b"y\n")
    assert code == 0, text
    assert applied(migrated) == []


def test_dry_runs_touch_nothing(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = f"sqlite:///{path}"
    planned = run("migrate", "--dry-run", "--database", db)
    assert planned.returncode == 0 and "0001_event_store" in planned.stdout
    assert "CREATE TABLE event_store" in planned.stdout
    assert not path.exists()
    assert run("migrate", "--database", db).returncode == 0
    assert run("rollback", "--count", "3", "--database", db).returncode == 0
    before = digest(path)
    # The lock is held by someone else: a dry run takes no lock, so it still answers.
    holder = Migrator(parse_url(db), SQL / "sqlite")
    with holder.backend.lock():
        before = digest(path)
        plan = run("migrate", "--dry-run", "--json", "--database", db)
        assert plan.returncode == 0, plan.stderr
        assert [s["id"] for s in json.loads(plan.stdout)["plan"]] == IDS[-3:]
        back = run("rollback", "--to", "base", "--dry-run", "--database", db)
        assert back.returncode == 0 and "DROP TABLE event_store" in back.stdout
        assert digest(path) == before
    holder.close()
    assert applied(db) == IDS[:-3]


@pytest.mark.postgres
def test_dry_run_on_postgres_changes_nothing(pg_url: str) -> None:
    plan = run("migrate", "--dry-run", "--database", pg_url)
    assert plan.returncode == 0 and "0008_evstore_migration_checksum" in plan.stdout
    with psycopg.connect(parse_url(pg_url).conninfo or "") as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)  # not even yoyo's tables


# -- 2. the checksum guard holds across rollback and re-apply --------------------------------


def test_edited_applied_migration_blocks_rollback(file_url: str, folder: Path) -> None:
    dirs = [dir_option(file_url), str(folder)]
    assert run("migrate", "--database", file_url, *dirs).returncode == 0
    target = folder / "0004_stream.sql"
    target.write_text(target.read_text() + "\n-- edited after it was applied\n")
    for args in (["rollback"], ["rollback", "--count", "5", "--yes"], ["migrate"]):
        result = run(*args, "--database", file_url, *dirs)
        assert result.returncode == 1 and "0004_stream" in result.stderr, (args, result.stderr)
    assert applied(file_url, folder) == IDS


def test_checksums_outlive_the_migration_that_created_their_table(
    file_url: str, folder: Path
) -> None:
    """The old hole: roll back 0008, edit an applied file, migrate records the edited hash."""
    with evstore.connect(file_url, migrations_dir=folder) as store:
        store.migrate()
        assert store.rollback() == [IDS[-1]]  # drops evstore_migration_checksum
        target = folder / "0004_stream.sql"
        target.write_text(target.read_text() + "\n-- edited after it was applied\n")
        with pytest.raises(evstore.ChecksumMismatch, match="0004_stream"):
            store.migrate()
        with pytest.raises(evstore.ChecksumMismatch, match="0004_stream"):
            store.rollback()
        assert [s.id for s in store.status() if s.changed] == ["0004_stream"]
        rows = store.execute(f"SELECT migration_id FROM {CHECKSUM_TABLE}")
        assert sorted(r[0] for r in rows) == IDS[:-1]


def test_missing_rollback_file_is_refused_before_anything_changes(
    migrated: str, folder: Path
) -> None:
    dirs = [dir_option(migrated), str(folder)]
    # The checksum covers the rollback file, so deleting it is caught as a change.
    (folder / "0008_evstore_migration_checksum.rollback.sql").unlink()
    result = run("rollback", "--database", migrated, *dirs)
    assert result.returncode == 1
    assert "0008_evstore_migration_checksum" in result.stderr
    assert applied(migrated, folder) == IDS


def test_rollback_file_missing_for_a_target(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    shutil.copytree(SQL / "sqlite", folder)
    db = f"sqlite:///{tmp_path}/r.db"
    extra = f"{int(IDS[-1][:4]) + 1:04d}_extra.sql"
    (folder / extra).write_text("-- Add extra.\nCREATE TABLE extra (id INTEGER);\n")
    assert run("migrate", "--database", db, "--sqlite-dir", str(folder)).returncode == 0
    # A rollback file never existed: the checksum matches, the rollback must still refuse.
    result = run("rollback", "--database", db, "--sqlite-dir", str(folder))
    assert result.returncode == 1 and "no .rollback.sql" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    with closing(sqlite3.connect(tmp_path / "r.db")) as conn:
        assert conn.execute("SELECT name FROM sqlite_schema WHERE name = 'extra'").fetchone()


def test_deleted_file_of_an_applied_migration(file_url: str, folder: Path) -> None:
    dirs = [dir_option(file_url), str(folder)]
    assert run("migrate", "--database", file_url, *dirs).returncode == 0
    for suffix in (".sql", ".rollback.sql"):
        (folder / f"0008_evstore_migration_checksum{suffix}").unlink()
    status = run("status", "--database", file_url, *dirs)
    assert status.returncode == 1 and "FILE MISSING" in status.stdout
    for args in (["rollback"], ["migrate"]):
        result = run(*args, "--database", file_url, *dirs)
        assert result.returncode == 1 and "no file" in result.stderr, result.stderr
    assert applied(file_url) == IDS


# -- 6. faults -------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 260 KiB tmpfs: room for a few migrations, not for all of them."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=260k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_during_migrate(tiny_disk: Path) -> None:
    db = f"sqlite:///{tiny_disk}/e.db"
    result = run("migrate", "--database", db)
    assert result.returncode in (1, 2), result.stdout
    assert "Traceback" not in result.stderr and "full" in result.stderr, result.stderr
    with closing(sqlite3.connect(f"file:{tiny_disk}/e.db?mode=ro", uri=True)) as conn:
        assert conn.execute("SELECT count(*) FROM yoyo_lock").fetchone() == (0,)
    status = run("status", "--database", db)
    assert status.returncode == 0 and "pending" in status.stdout, status.stderr
    assert not list(tiny_disk.glob("*ballast*"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leave_lock(url: str, pid: int) -> None:
    holder = Migrator(parse_url(url), SQL / parse_url(url).dialect)
    holder.backend.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, NULL, :pid)",
                           {"pid": pid})
    holder.backend.connection.commit()
    holder.close()


def test_stale_lock_names_its_dead_pid(migrated: str) -> None:
    pid = _dead_pid()
    _leave_lock(migrated, pid)
    status = run("status", "--database", migrated)
    assert status.returncode == 0, status.stderr  # a stale lock does not break status
    locked = run("migrate", "--database", migrated, "--lock-timeout", "0.2")
    assert locked.returncode == 2
    assert f"process {pid}, which is not running" in locked.stderr
    assert "--break-lock" in locked.stderr
    freed = run("migrate", "--json", "--break-lock", "--database", migrated)
    assert freed.returncode == 0
    assert json.loads(freed.stdout)["lock_removed"] is True  # stdout is JSON alone
    assert "removed" in freed.stderr


def test_live_lock_holder_is_named(migrated: str) -> None:
    _leave_lock(migrated, os.getpid())
    locked = run("rollback", "--database", migrated, "--lock-timeout", "0.2")
    assert locked.returncode == 2
    assert f"process {os.getpid()}, which is running on this host" in locked.stderr


@pytest.fixture(scope="module")
def own_server() -> Iterator[ScramServer]:
    """A throwaway server: killing parity runs and cleaning up must not touch the shared one."""
    try:
        with scram_server() as server:
            yield server
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        if IN_CI:
            pytest.fail(f"CI=true and no throwaway PostgreSQL server: {e}", pytrace=False)
        pytest.skip(f"no throwaway PostgreSQL server: {e}")


def socket_url(server: ScramServer, db: str, spelling: str) -> str:
    if spelling == "query":
        return urlunsplit(("postgresql", "postgres@", f"/{db}",
                           urlencode({"host": server.socket_dir, "port": server.port}), ""))
    return urlunsplit(("postgresql", f"postgres@{quote(server.socket_dir, safe='')}:"
                       f"{server.port}", f"/{db}", "", ""))


def _scratch_databases(server: str) -> set[str]:
    with psycopg.connect(parse_url(server).conninfo or "", autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname ~ "
                            "'^evstore_(parity|drift)_[0-9a-f]{12}$'").fetchall()
    return {r[0] for r in rows}


def _parity_until_scratch_exists(server: str) -> tuple[subprocess.Popen[str], set[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "evstore", "parity", "--postgres", server],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (made := _scratch_databases(server)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "parity never created its scratch database"
        time.sleep(0.01)
    return proc, made


@pytest.mark.postgres
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_parity_drops_its_scratch_database_when_interrupted(
    own_server: ScramServer, signum: int, code: int
) -> None:
    server = socket_url(own_server, "postgres", "query")
    proc, made = _parity_until_scratch_exists(server)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not made & _scratch_databases(server)


@pytest.mark.postgres
def test_parity_cleanup_drops_what_a_killed_run_left(own_server: ScramServer) -> None:
    server = socket_url(own_server, "postgres", "path")
    proc, made = _parity_until_scratch_exists(server)
    proc.kill()
    proc.communicate(timeout=120)
    assert made <= _scratch_databases(server)
    cleaned = run("parity", "--cleanup", "--postgres", server)
    assert cleaned.returncode == 0, cleaned.stderr
    for name in made:
        assert f"dropped scratch database {name}" in cleaned.stdout
    assert _scratch_databases(server) == set()
    again = run("parity", "--cleanup", "--postgres", server)
    assert again.returncode == 0 and "no scratch databases" in again.stdout


# -- 8. Unix-socket URLs, both spellings, for every command ----------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("spelling", ["query", "path"])
def test_unix_socket_urls_work_for_every_command(own_server: ScramServer, spelling: str) -> None:
    db = f"sock_{spelling}"
    with psycopg.connect(own_server.socket_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
        conn.execute("DO $$ BEGIN CREATE ROLE evstore_sock_app LOGIN; "
                     "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    url = socket_url(own_server, db, spelling)
    steps = [
        ["migrate"], ["status"], ["append", "s", "--type", "Placed", "--data", "{}"], ["read"],
        ["tail", "--idle-timeout", "0"], ["schema"], ["drift"],
        ["grant", "--role", "evstore_sock_app"], ["rollback", "--dry-run"],
    ]
    for args in steps:
        result = run(*args, "--database", url)
        assert result.returncode == 0, (args, result.stderr)
    assert "Placed" in run("read", "--database", url).stdout
    parity = run("parity", "--postgres", url)
    assert parity.returncode == 0, parity.stderr


# -- 4. grant refuses dangerous roles --------------------------------------------------------


@pytest.mark.postgres
def test_grant_refuses_public_pg_roles_superusers_and_itself(pg_url: str) -> None:
    with evstore.connect(pg_url) as store:
        store.migrate()
        me = store.execute("SELECT current_user")[0][0]
    admin = parse_url(pg_url).conninfo or ""
    superuser = "evstore_super_" + urlsplit(pg_url).path.rsplit("_", 1)[-1]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{superuser}" SUPERUSER')
    try:
        for role in ("PUBLIC", "public", "Public", "pg_monitor", "pg_read_all_data", me,
                     superuser):
            for extra in ([], ["--apply"]):
                result = run("grant", "--role", role, "--database", pg_url, *extra)
                assert result.returncode == 2, (role, result.stdout, result.stderr)
                assert "will not grant" in result.stderr and "GRANT" not in result.stdout
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{superuser}"')


def test_grant_on_sqlite_says_grants_do_not_apply(tmp_path: Path) -> None:
    result = run("grant", "--role", "app", "--database", f"sqlite:///{tmp_path}/g.db")
    assert result.returncode == 2 and "do not apply to SQLite" in result.stderr
    assert result.stdout == "" and not (tmp_path / "g.db").exists()


# -- 5. read-only commands never create a database --------------------------------------------


@pytest.mark.parametrize("command", ["status", "read", "tail", "schema", "drift", "rollback"])
def test_read_commands_refuse_a_missing_sqlite_file(tmp_path: Path, command: str) -> None:
    path = tmp_path / "typo.db"
    result = run(command, "--database", f"sqlite:///{path}")
    assert result.returncode == 2
    assert f"no database at {path}" in result.stderr and "evstore migrate" in result.stderr
    assert not path.exists()


def test_read_on_a_database_without_evstore_tables(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE unrelated (id INTEGER)")
    for args in (["read"], ["read", "--stream", "s"], ["append", "s", "--type", "T"]):
        result = run(*args, "--database", f"sqlite:///{path}")
        assert result.returncode == 2 and "run `evstore migrate`" in result.stderr
        assert "no such table" not in result.stderr


# -- 7. output lines cannot be forged ---------------------------------------------------------


def test_control_characters_are_escaped_in_human_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path}/e.db"
    assert main(["migrate", "--database", db]) == 0
    forged = "s\n1 admin@1 Forged {}"
    ansi = "t\x1b[31mred\x1b[0m\u2028\x85\\n"
    assert main(["append", forged, "--type", ansi, "--database", db]) == 0
    capsys.readouterr()
    assert main(["read", "--database", db]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "\u2028" not in out
    assert "s\\n1 admin@1 Forged" in out and "t\\x1b[31mred" in out and "\\\\n" in out
    assert main(["read", "--json", "--database", db]) == 0
    event = json.loads(capsys.readouterr().out)
    assert (event["stream_id"], event["type"]) == (forged, ansi)


def test_migrate_json_is_json_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path}/e.db"
    assert main(["migrate", "--json", "--break-lock", "--database", db]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["applied"] == IDS
    assert re.search("lock .* removed", captured.err)
