"""The evstore command line, as a deploy pipeline and a developer would run it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import evstore
from evstore.cli import main
from evstore.schema.migrations import Migrator
from evstore.urls import parse_url
from tests.conftest import SQL, role_url


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evstore", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_help_lists_exit_codes_and_unknown_subcommand_is_usage_error() -> None:
    helped = run("--help")
    assert helped.returncode == 0 and "exit codes" in helped.stdout
    unknown = run("frobnicate")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_main_job_on_the_embedded_default(tmp_path: Path) -> None:
    assert run("migrate", cwd=tmp_path).returncode == 0
    assert (tmp_path / "evstore.db").exists()
    appended = run("append", "order-1", "--type", "Placed", "--data", '{"total": 3}',
                   "--expected-version", "no-stream", "--json", cwd=tmp_path)
    assert appended.returncode == 0, appended.stderr
    assert json.loads(appended.stdout)[0]["version"] == 1
    conflict = run("append", "order-1", "--type", "Placed", "--data", "{}",
                   "--expected-version", "no-stream", cwd=tmp_path)
    assert conflict.returncode == 1 and "Wrong expected version" in conflict.stderr
    read = run("read", "--json", cwd=tmp_path)
    assert [json.loads(line)["data"] for line in read.stdout.splitlines()] == [{"total": 3}]
    assert read.stderr == ""  # no progress bar in a pipe
    tailed = run("tail", "--idle-timeout", "0.3", cwd=tmp_path)
    assert tailed.returncode == 0 and "Placed" in tailed.stdout
    status = run("status", "--json", cwd=tmp_path)
    assert all(s["applied"] for s in json.loads(status.stdout))
    # Dropping event_store needs an explicit yes away from a terminal (see test_safe_ops.py).
    assert run("rollback", "--to", "base", cwd=tmp_path).returncode == 2
    assert run("rollback", "--to", "base", "--yes", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("url, code, fragment", [
    ("mysql://x/y", 2, "unknown database URL scheme"),
    ("postgresql://u:pw@host:bad/db", 2, "malformed"),
    ("postgresql://u:topsecret@127.0.0.1:1/db", 2, "cannot connect"),
])
def test_bad_database_urls(url: str, code: int, fragment: str) -> None:
    result = run("migrate", "--database", url)
    assert result.returncode == code and fragment in result.stderr
    assert "topsecret" not in result.stderr + result.stdout


def test_missing_folder_and_failing_migration(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/x.db"
    missing = run("migrate", "--database", db, "--sqlite-dir", str(tmp_path / "none"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    folder = tmp_path / "sqlite"
    shutil.copytree(SQL / "sqlite", folder)
    (folder / "0009_bad.sql").write_text("-- Break.\nCREATE TABLE ok (id INTEGER);\nSELEC 1;\n")
    (folder / "0009_bad.rollback.sql").write_text("-- Undo.\nDROP TABLE ok;\n")
    failed = run("migrate", "--database", db, "--sqlite-dir", str(folder))
    assert failed.returncode == 1 and "0009_bad" in failed.stderr and "SELEC" in failed.stderr


def test_held_lock_exit_code_and_break_lock(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/x.db"
    holder = Migrator(parse_url(db), SQL / "sqlite")
    with holder.backend.lock():
        locked = run("migrate", "--database", db, "--lock-timeout", "0.2")
        assert locked.returncode == 2 and "break-lock" in locked.stderr
    holder.backend.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, NULL, 999999)")
    holder.backend.connection.commit()
    holder.close()
    assert run("migrate", "--database", db, "--lock-timeout", "0.2").returncode == 2
    assert run("migrate", "--database", db, "--break-lock").returncode == 0


def _copy_sql(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(SQL / "postgres", tmp_path / "postgres")
    shutil.copytree(SQL / "sqlite", tmp_path / "sqlite")
    return tmp_path / "postgres", tmp_path / "sqlite"


def test_new_sum_and_lint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pg, lite = _copy_sql(tmp_path)
    dirs = ["--pg-dir", str(pg), "--sqlite-dir", str(lite)]
    assert main(["lint", "--no-squawk", *dirs]) == 0
    assert main(["new", "Add Stream Index", *dirs]) == 0
    after = max(int(p.name[:4]) for p in pg.glob("[0-9]*.sql") if "add_stream" not in p.name)
    mid = f"{after + 1:04d}_add_stream_index"
    for folder in (pg, lite):
        assert (folder / f"{mid}.sql").exists()
        assert (folder / f"{mid}.rollback.sql").exists()
    capsys.readouterr()
    assert main(["lint", "--no-squawk", "--json", *dirs]) == 1
    rules = {f["rule"] for f in json.loads(capsys.readouterr().out)}
    assert rules == {"checksum"}
    assert main(["sum", *dirs]) == 0
    assert main(["lint", "--no-squawk", *dirs]) == 0


@pytest.mark.parametrize("dialect, file, text, rule", [
    ("sqlite", "0004_stream.sql", None, "rollback-missing"),
    ("sqlite", "0010_x.sql", "CREATE TABLE x (a TEXT);\n", "header-comment"),
    ("postgres", "0010_x.sql", "-- Add x.\n-- Note: careful\nCREATE TABLE x (a text);\n",
     "unknown-directive"),
    ("postgres", "0010_x.sql", "-- Add x.\nCREATE TABL x (a text);\n", "postgres-parse"),
    ("postgres", "0010_x.sql", "-- Index.\nCREATE INDEX CONCURRENTLY ix ON stream (version);\n",
     "concurrently"),
    ("sqlite", "0010_x.sql", "-- Backslash.\nINSERT INTO t VALUES ('a\\');\nSELECT 'b';\n",
     "statement-split"),
])
def test_lint_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str], dialect: str, file: str,
                    text: str | None, rule: str) -> None:
    pg, lite = _copy_sql(tmp_path)
    folder = pg if dialect == "postgres" else lite
    if text is None:
        (folder / file.replace(".sql", ".rollback.sql")).unlink()
    else:
        (folder / file).write_text(text)
        (folder / file.replace(".sql", ".rollback.sql")).write_text("-- Undo.\n")
    main(["sum", "--pg-dir", str(pg), "--sqlite-dir", str(lite)])
    capsys.readouterr()
    assert main(["lint", "--no-squawk", "--json", "--pg-dir", str(pg),
                 "--sqlite-dir", str(lite)]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert rule in {f["rule"] for f in findings}
    assert all(f["fix"] and f["file"] for f in findings)


def test_corrupted_sum_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pg, lite = _copy_sql(tmp_path)
    sums = lite / "evstore.sum"
    sums.write_text(sums.read_text().replace("total ", "total 0") + "garbage line here\n")
    assert main(["lint", "--no-squawk", "--pg-dir", str(pg), "--sqlite-dir", str(lite)]) == 1
    out = capsys.readouterr().out
    assert "malformed" in out and "[checksum]" in out


def test_drift_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path}/d.db"
    with evstore.connect(db) as store:
        store.migrate()
    assert main(["drift", "--database", db]) == 0
    with evstore.connect(db) as store:
        store.execute("CREATE INDEX ix_by_hand ON stream (updated_at)")
        store.execute("DROP TRIGGER stream_set_updated_at")
    capsys.readouterr()
    assert main(["drift", "--database", db, "--json"]) == 1
    found = {(d["object"], d["field"]) for d in json.loads(capsys.readouterr().out)}
    assert found == {("index ix_by_hand", "exists"), ("trigger stream_set_updated_at", "exists")}


@pytest.mark.postgres
def test_drift_on_postgres(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with evstore.connect(pg_url) as store:
        store.migrate()
        assert main(["drift", "--database", pg_url]) == 0
        store.execute("ALTER TABLE stream ALTER COLUMN metadata SET NOT NULL")
    capsys.readouterr()
    assert main(["drift", "--database", pg_url, "--json"]) == 1
    assert [(d["object"], d["field"]) for d in json.loads(capsys.readouterr().out)] == [
        ("column stream.metadata", "not_null")]


@pytest.mark.postgres
def test_grant_gives_exactly_what_the_store_needs(pg_url: str) -> None:
    admin = parse_url(pg_url)
    role = "evstore_app_" + (admin.database or "").rsplit("_", 1)[-1]
    password = "app p@ss:w/rd#1?"  # every character a URL must percent-encode
    with psycopg.connect(admin.conninfo or "", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
    try:
        with evstore.connect(pg_url) as store:
            store.migrate()
        printed = run("grant", "--role", role, "--database", pg_url)
        assert "GRANT EXECUTE ON FUNCTION" in printed.stdout
        assert "GRANT SELECT ON TABLE" in next(line for line in printed.stdout.splitlines()
                                               if "event_store\"" in line and "TABLE" in line)
        assert run("grant", "--role", role, "--database", pg_url, "--apply").returncode == 0
        app_url = role_url(pg_url, role, password)
        with evstore.connect(app_url) as app:
            app.append("s", [evstore.NewEvent("T", {})])
            app.save_checkpoint("p", 1)
            app.save_snapshot("s", 1, {})
            assert len(app.read_all()) == 1
            for forbidden in ("UPDATE event_store SET event_type = 'x'", "DELETE FROM event_store",
                              "INSERT INTO stream (stream_id, version) VALUES ('x', 1)",
                              "UPDATE stream SET version = 1",
                              "TRUNCATE event_store", "CREATE TABLE evil (id int)",
                              "ALTER TABLE event_store DISABLE TRIGGER ALL",
                              "DROP TABLE event_store"):
                with pytest.raises(evstore.DatabaseError) as caught:
                    app.execute(forbidden)
                assert "permission denied" in str(caught.value) or "must be owner" in str(
                    caught.value), forbidden
    finally:
        with psycopg.connect(admin.conninfo or "", autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_scripts_have_help() -> None:
    root = Path(__file__).resolve().parent.parent / "scripts"
    for script in sorted(root.glob("*.py")):
        result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0 and "usage" in result.stdout.lower(), script
