"""Real deployments: named PostgreSQL schemas, and applications' own migrations beside
evstore's, through the API, the command line and plain yoyo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

import evstore
from evstore.cli import main
from evstore.operations.verify import verify
from evstore.urls import parse_url
from tests.conftest import ROOT, SQL, with_search_path

APP = ROOT / "scripts" / "demo_app"
EVSTORE_IDS = sorted(p.name[:-4] for p in (SQL / "sqlite").glob("*.sql")
                     if not p.name.endswith(".rollback.sql"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evstore", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def tables_in(url: str, schema: str) -> set[str]:
    with psycopg.connect(parse_url(url).conninfo or "", autocommit=True) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = %s", (schema,)).fetchall()
    return {r[0] for r in rows}


@pytest.mark.postgres
def test_two_stores_in_two_schemas_see_nothing_of_each_other(pg_url: str) -> None:
    with evstore.connect(pg_url, schema="billing") as billing, \
            evstore.connect(pg_url, schema="shipping") as shipping:
        assert billing.migrate() == shipping.migrate() == EVSTORE_IDS
        billing.append("invoice-1", [evstore.NewEvent("Issued", {"n": 1})])
        shipping_tail = shipping.tail(idle_timeout=0.5)
        assert list(shipping_tail) == []
        assert shipping.read_all() == [] and shipping.stream_version("invoice-1") is None
        shipping.append("parcel-1", [evstore.NewEvent("Sent", {})])
        assert [e.stream_id for e in billing.read_all()] == ["invoice-1"]
        assert billing.head_position() == shipping.head_position() == 1
        billing.save_checkpoint("p", 1)
        assert shipping.checkpoint("p") == 0
        for store in (billing, shipping):
            assert verify(store).intact
    assert tables_in(pg_url, "public") == set()
    for schema in ("billing", "shipping"):
        assert {"event_store", "stream", "_yoyo_migration", "yoyo_lock"} <= tables_in(
            pg_url, schema)


@pytest.mark.postgres
def test_every_command_follows_the_schema(pg_url: str, tmp_path: Path) -> None:
    db = ["--database", pg_url, "--schema", "events"]
    assert run("migrate", *db).returncode == 0
    assert tables_in(pg_url, "public") == set()
    status = run("status", *db, "--json")
    assert status.returncode == 0 and all(s["applied"] for s in json.loads(status.stdout))
    assert run("append", "s", "--type", "T", "--data", "{}", *db).returncode == 0
    read = run("read", *db, "--json")
    assert [json.loads(line)["stream_id"] for line in read.stdout.splitlines()] == ["s"]
    assert run("read", "--database", pg_url, "--schema", "other").returncode == 2
    assert run("tail", *db, "--idle-timeout", "0.3").stdout.count(" s@1 ") == 1
    assert run("verify", *db).returncode == 0
    drift = run("drift", *db)
    assert drift.returncode == 0, drift.stdout + drift.stderr
    schema = json.loads(run("schema", *db).stdout)
    assert "event_store" in json.dumps(schema)
    grant = run("grant", *db, "--role", "somebody_else")
    assert '"events"."event_store"' in grant.stdout and '"public"' not in grant.stdout
    lite = f"sqlite:///{tmp_path}/l.db"
    assert run("migrate", "--database", lite).returncode == 0
    live = run("parity", "--live", "--postgres", pg_url, "--sqlite", lite, "--schema", "events")
    assert live.returncode == 0, live.stdout + live.stderr
    dry = run("rollback", *db, "--dry-run")
    assert dry.returncode == 0 and EVSTORE_IDS[-1] in dry.stdout
    assert run("rollback", *db, "--to", "base", "--yes").returncode == 0
    assert tables_in(pg_url, "events") <= {"_yoyo_migration", "_yoyo_log", "_yoyo_version",
                                           "yoyo_lock", "_yoyo_evstore_checksum"}


@pytest.mark.postgres
def test_the_urls_own_search_path_is_kept(pg_url: str) -> None:
    admin = parse_url(pg_url)
    with psycopg.connect(admin.conninfo or "", autocommit=True) as conn:
        conn.execute("CREATE SCHEMA attune")
    url = with_search_path(pg_url, "attune")
    with evstore.connect(url) as store:
        store.migrate()
        store.append("s", [evstore.NewEvent("T", {})])
        assert store.execute("SELECT current_schema()") == [("attune",)]
    assert "event_store" in tables_in(pg_url, "attune") and tables_in(pg_url, "public") == set()
    drift = run("drift", "--database", url)
    assert drift.returncode == 0, drift.stdout + drift.stderr


@pytest.mark.postgres
def test_plain_yoyo_apply_into_a_schema(pg_url: str) -> None:
    admin = parse_url(pg_url)
    with psycopg.connect(admin.conninfo or "", autocommit=True) as conn:
        conn.execute("CREATE SCHEMA ledger")
    yoyo = Path(sys.executable).with_name("yoyo")
    yoyo_url = admin.yoyo_url + ("&" if "?" in admin.yoyo_url else "?") + "schema=ledger"
    done = subprocess.run([str(yoyo), "apply", "--batch", "--database", yoyo_url,
                           str(SQL / "postgres")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with evstore.connect(pg_url, schema="ledger") as store:
        assert store.migrate() == []  # already applied by yoyo, in the schema
        store.append("s", [evstore.NewEvent("T", {})])
        assert verify(store).intact


def test_schema_is_refused_on_sqlite_and_when_not_a_plain_name(sqlite_url: str) -> None:
    with pytest.raises(evstore.InvalidInput, match="only on PostgreSQL"):
        evstore.connect(sqlite_url, schema="events")
    with pytest.raises(evstore.InvalidInput, match="plain PostgreSQL name"):
        evstore.connect("postgresql://u@127.0.0.1:1/db", schema="Bad; DROP")


def _project(tmp_path: Path, database: str | None = None) -> Path:
    project = tmp_path / "project"
    shutil.copytree(APP / "postgres", project / "migrations" / "postgres")
    shutil.copytree(APP / "sqlite", project / "migrations" / "sqlite")
    lines = ["[project]", 'name = "shop"', "", "[tool.evstore]",
             'pg_dir = "migrations/postgres"', 'sqlite_dir = "migrations/sqlite"']
    if database:
        lines.append(f"database = {json.dumps(database)}")
    (project / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return project


def test_application_migrations_run_after_evstores(tmp_path: Path) -> None:
    project = _project(tmp_path, f"sqlite:///{tmp_path}/shop.db")
    migrated = run("migrate", "--json", cwd=project)
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["applied"] == [*EVSTORE_IDS, "app_0001_order_totals"]
    status = json.loads(run("status", "--json", cwd=project / "migrations").stdout)
    assert [s["id"] for s in status][-1] == "app_0001_order_totals"
    assert run("lint", "--no-squawk", cwd=project).returncode == 0
    new = run("new", "add order notes", cwd=project)
    assert new.returncode == 0, new.stderr
    created = sorted(p.name for p in (project / "migrations" / "postgres").glob("*notes*"))
    assert created == ["app_0002_add_order_notes.rollback.sql", "app_0002_add_order_notes.sql"]
    assert not list(SQL.rglob("*add_order_notes*"))
    assert run("sum", cwd=project).returncode == 0
    assert (project / "migrations" / "sqlite" / "evstore.sum").exists()


def test_new_and_sum_refuse_evstores_own_or_an_installed_package(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for command in (["new", "x"], ["sum"]):
        refused = run(*command, cwd=bare)
        assert refused.returncode == 2 and "pg_dir" in refused.stderr, refused.stderr
    site = tmp_path / "lib" / "site-packages" / "pkg"
    for dialect in ("postgres", "sqlite"):
        (site / dialect).mkdir(parents=True)
    refused = run("new", "x", "--pg-dir", str(site / "postgres"),
                  "--sqlite-dir", str(site / "sqlite"))
    assert refused.returncode == 2 and "installed package" in refused.stderr
    assert not list(site.rglob("*.sql"))


def test_application_ids_must_not_collide_with_evstores(tmp_path: Path) -> None:
    project = _project(tmp_path, f"sqlite:///{tmp_path}/shop.db")
    for dialect in ("postgres", "sqlite"):
        folder = project / "migrations" / dialect
        (folder / "0004_stream.sql").write_text("-- Collide.\nSELECT 1;\n")
        (folder / "0004_stream.rollback.sql").write_text("-- Undo.\nSELECT 1;\n")
    refused = run("migrate", cwd=project)
    assert refused.returncode == 1 and "0004_stream" in refused.stderr
    assert "prefix" in refused.stderr and not (tmp_path / "shop.db").exists()


def test_configuration_errors_are_clear(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "evstore.toml").write_text('pg_dirr = "x"\n')
    bad = run("status", cwd=project)
    assert bad.returncode == 2 and "unknown evstore setting" in bad.stderr
    (project / "evstore.toml").write_text('database = "${EVSTORE_NOT_SET_ANYWHERE}"\n')
    unset = run("status", cwd=project)
    assert unset.returncode == 2 and "EVSTORE_NOT_SET_ANYWHERE" in unset.stderr
    (project / "evstore.toml").write_text("database = [\n")
    broken = run("status", cwd=project)
    assert broken.returncode == 2 and "cannot read" in broken.stderr


@pytest.mark.postgres
def test_parity_covers_the_union_and_the_demo_runs(pg_url: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    project = _project(tmp_path)
    config = str(project / "pyproject.toml")
    assert main(["parity", "--config", config, "--postgres", pg_url]) == 0
    assert "schemas match" in capsys.readouterr().out
    broken = project / "migrations" / "sqlite" / "app_0001_order_totals.sql"
    broken.write_text(broken.read_text().replace("DEFAULT 0,\n    lines", "DEFAULT 1,\n    lines"))
    code = main(["parity", "--config", config, "--postgres", pg_url, "--json"])
    found = json.loads(capsys.readouterr().out)
    assert code == 1 and [(d["object"], d["field"]) for d in found] == [
        ("column order_totals.total", "default")]
    demo = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo_app.py"), "--database",
                           f"sqlite:///{tmp_path}/demo.db", "--postgres", pg_url],
                          capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert "app_0001_order_totals" in demo.stdout and "schemas match" in demo.stdout
    assert "('order-1', 10, 2)" in demo.stdout
