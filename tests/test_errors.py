"""Bad input to connect and migrate: clear evstore errors, nothing half-applied."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import psycopg
import pytest

import evstore
from evstore.schema.migrations import Migrator
from evstore.urls import parse_url, redact
from tests.conftest import SQL


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("", "empty database URL"),
        ("not a url", "no scheme"),
        ("mysql://root@localhost/db", "unknown database URL scheme 'mysql'"),
        ("sqlite://relative.db", "a SQLite URL has no host"),
        ("sqlite:///", "names no file"),
        ("postgresql://u:secret@host:notaport/db", "malformed database URL"),
        ("postgresql:///db", "names no host"),
        ("postgresql://host:5432/", "names no database"),
    ],
)
def test_bad_urls_are_refused_with_an_example(url: str, fragment: str) -> None:
    with pytest.raises(evstore.InvalidURL) as caught:
        evstore.connect(url)
    assert fragment in str(caught.value)
    assert "secret" not in str(caught.value)


def test_url_forms_pick_the_dialect(tmp_path: Path) -> None:
    assert parse_url("sqlite:///rel/x.db").sqlite_path == "rel/x.db"
    assert parse_url("sqlite:////abs/x.db").sqlite_path == "/abs/x.db"
    assert parse_url("sqlite:///:memory:").is_memory
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        assert parse_url(f"{scheme}://u@h/db").dialect == "postgres"
    assert redact("postgresql://u:hunter2@h/db") == "postgresql://u:***@h/db"


def test_sqlite_creates_missing_parent_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c.db"
    with evstore.connect(f"sqlite:///{target}") as store:
        store.migrate()
        mode = store.execute("PRAGMA journal_mode")[0][0]
        fk = store.execute("PRAGMA foreign_keys")[0][0]
    assert target.exists() and mode == "wal" and fk == 1


def test_unreachable_server_names_the_remedy_without_the_password() -> None:
    with pytest.raises(evstore.ConnectionFailed) as caught:
        evstore.connect("postgresql://app:hunter2@127.0.0.1:1/db")
    message = str(caught.value)
    assert "hunter2" not in message and "***" in message
    assert "check that the server is running" in message


def test_missing_migrations_folder(tmp_path: Path) -> None:
    with evstore.connect("sqlite:///:memory:", migrations_dir=tmp_path / "nope") as store:
        with pytest.raises(evstore.MigrationsNotFound, match="does not exist"):
            store.migrate()


def _broken_copy(tmp_path: Path, dialect: str) -> Path:
    folder = tmp_path / dialect
    shutil.copytree(SQL / dialect, folder)
    (folder / "0009_broken.sql").write_text(
        "-- Add a table, then fail halfway.\n"
        "CREATE TABLE half_done (id integer);\n"
        "CREATE INDEX ix_half_done ON half_done (id);\n"
        "INSERT INTO no_such_table VALUES (1);\n",
        encoding="utf-8",
    )
    (folder / "0009_broken.rollback.sql").write_text(
        "-- Drop half_done.\nDROP TABLE half_done;\n", encoding="utf-8"
    )
    return folder


def test_failing_migration_leaves_nothing_applied(url: str, tmp_path: Path) -> None:
    dialect = parse_url(url).dialect
    folder = _broken_copy(tmp_path, dialect)
    with evstore.connect(url, migrations_dir=folder) as store:
        with pytest.raises(evstore.MigrationFailed) as caught:
            store.migrate()
        message = str(caught.value)
        assert "0009_broken" in message and "no_such_table" in message
        assert caught.value.statement is not None and "no_such_table" in caught.value.statement
        states = {s.id: s.applied for s in store.status()}
        assert states["0008_evstore_migration_checksum"] is True
        assert states["0009_broken"] is False
        if dialect == "sqlite":
            leftovers = store.execute(
                "SELECT name FROM sqlite_schema WHERE name IN ('half_done', 'ix_half_done')")
        else:
            leftovers = store.execute(
                "SELECT relname FROM pg_class WHERE relname IN ('half_done', 'ix_half_done')")
        assert leftovers == []


def test_held_lock_says_how_to_break_it(file_url: str) -> None:
    url = parse_url(file_url)
    holder = Migrator(url, SQL / url.dialect)
    with evstore.connect(file_url) as store, holder.backend.lock():
        with pytest.raises(evstore.MigrationLocked) as caught:
            store.migrate(lock_timeout=0.2)
        assert "break-lock" in str(caught.value)
    holder.close()


def test_two_folders_with_the_same_ids_in_one_process(tmp_path: Path) -> None:
    from evstore.schema.migrations import read_folder

    pg, lite = read_folder(SQL / "postgres"), read_folder(SQL / "sqlite")
    assert [m.id for m in pg] == [m.id for m in lite]
    assert all("sql/postgres" in m.path for m in pg)
    assert all("sql/sqlite" in m.path for m in lite)


def test_driver_errors_are_translated_with_their_cause(store: evstore.Store) -> None:
    with pytest.raises(evstore.DatabaseError) as caught:
        store.execute("SELECT * FROM no_such_table")
    assert isinstance(caught.value.__cause__, (sqlite3.Error, psycopg.Error))
    assert "no_such_table" in str(caught.value)
