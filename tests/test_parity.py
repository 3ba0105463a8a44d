"""Parity: the shipped schema matches, and every kind of drift is reported exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest

import evstore
from evstore.cli import main
from evstore.schema.catalog import mapping
from evstore.schema.catalog.diff import Difference
from evstore.schema.catalog.parity import run_parity
from tests.conftest import ROOT, SQL, require_pg, scratch_database

pytestmark = pytest.mark.postgres
TEMPLATES = ROOT / "tests" / "schemas" / "templates"


def _parity(pg_dir: Path, sqlite_dir: Path, declared: Path | None) -> set[tuple[str, str]]:
    report = run_parity(require_pg(), pg_dir, sqlite_dir, declared)
    return {(d.object, d.field) for d in report.differences}


def test_shipped_schema_is_at_parity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parity", "--postgres", require_pg()]) == 0
    assert "match" in capsys.readouterr().out
    assert main(["parity", "--postgres", require_pg(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_second_schema_is_at_parity() -> None:
    found = _parity(TEMPLATES / "postgres", TEMPLATES / "sqlite", TEMPLATES / "parity.toml")
    assert found == set()


SNAP_CREATED_PG = "    created_at  timestamptz NOT NULL DEFAULT now(),\n"
SNAP_CREATED_LITE = (
    "    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),\n"
)

# (kind, dialect, file, old text, new text, expected differences)
MUTATIONS = [
    ("column missing", "postgres", "0006_snapshot.sql", SNAP_CREATED_PG, "",
     {("column snapshot.created_at", "exists")}),
    ("column missing", "sqlite", "0006_snapshot.sql", SNAP_CREATED_LITE, "",
     {("column snapshot.created_at", "exists")}),
    ("column extra", "postgres", "0006_snapshot.sql", SNAP_CREATED_PG,
     SNAP_CREATED_PG + "    note text,\n", {("column snapshot.note", "exists")}),
    ("column extra", "sqlite", "0006_snapshot.sql", SNAP_CREATED_LITE,
     SNAP_CREATED_LITE + "    note TEXT,\n", {("column snapshot.note", "exists")}),
    ("column renamed", "postgres", "0006_snapshot.sql", SNAP_CREATED_PG,
     SNAP_CREATED_PG.replace("created_at", "created_on"),
     {("column snapshot.created_at", "exists"), ("column snapshot.created_on", "exists")}),
    ("column renamed", "sqlite", "0006_snapshot.sql", SNAP_CREATED_LITE,
     SNAP_CREATED_LITE.replace("created_at", "created_on"),
     {("column snapshot.created_at", "exists"), ("column snapshot.created_on", "exists")}),
    ("column retyped", "postgres", "0005_subscription.sql", "position         bigint",
     "position         numeric", {("column subscription.position", "type")}),
    ("column retyped", "sqlite", "0005_subscription.sql", "position         INTEGER",
     "position         REAL", {("column subscription.position", "type")}),
    ("nullability flipped", "postgres", "0006_snapshot.sql", "state       jsonb       NOT NULL",
     "state       jsonb", {("column snapshot.state", "not_null")}),
    ("nullability flipped", "sqlite", "0006_snapshot.sql", "state       TEXT    NOT NULL",
     "state       TEXT", {("column snapshot.state", "not_null")}),
    ("default changed", "postgres", "0005_subscription.sql", "NOT NULL DEFAULT 0",
     "NOT NULL DEFAULT 1", {("column subscription.position", "default")}),
    ("default changed", "sqlite", "0005_subscription.sql", "NOT NULL DEFAULT 0",
     "NOT NULL DEFAULT 1", {("column subscription.position", "default")}),
    ("check changed", "postgres", "0006_snapshot.sql", "CHECK (version >= 1)",
     "CHECK (version >= 0)", {("check snapshot.ck_snapshot_version_positive", "expression")}),
    ("check changed", "sqlite", "0006_snapshot.sql", "CHECK (version >= 1)",
     "CHECK (version > 1)", {("check snapshot.ck_snapshot_version_positive", "expression")}),
    ("check missing", "postgres", "0006_snapshot.sql",
     "    CONSTRAINT ck_snapshot_version_positive CHECK (version >= 1),\n", "",
     {("check snapshot.ck_snapshot_version_positive", "exists")}),
    ("check missing", "sqlite", "0006_snapshot.sql",
     "    CONSTRAINT ck_snapshot_version_positive CHECK (version >= 1),\n", "",
     {("check snapshot.ck_snapshot_version_positive", "exists")}),
    ("check extra", "sqlite", "0006_snapshot.sql",
     "    CONSTRAINT ck_snapshot_version_positive CHECK (version >= 1),\n",
     ("    CONSTRAINT ck_snapshot_version_positive CHECK (version >= 1),\n"
     "    CONSTRAINT ck_snapshot_version_small CHECK (version < 1000000),\n"),
     {("check snapshot.ck_snapshot_version_small", "exists")}),
    ("unique missing", "postgres", "0001_event_store.sql",
     "    CONSTRAINT uq_event_store_event_id UNIQUE (event_id),\n", "",
     {("unique event_store.uq_event_store_event_id", "exists")}),
    ("unique missing", "sqlite", "0001_event_store.sql",
     "    CONSTRAINT uq_event_store_event_id UNIQUE (event_id),\n", "",
     {("unique event_store.uq_event_store_event_id", "exists")}),
    ("unique columns reordered", "sqlite", "0001_event_store.sql",
     "UNIQUE (stream_id, version)", "UNIQUE (version, stream_id)",
     {("unique event_store.uq_event_store_stream_id_version", "columns")}),
    ("foreign key on delete", "postgres", "0006_snapshot.sql", "(stream_id) ON DELETE CASCADE",
     "(stream_id) ON DELETE RESTRICT", {("foreign key snapshot.fk_snapshot_stream", "on_delete")}),
    ("foreign key on delete", "sqlite", "0006_snapshot.sql", "(stream_id) ON DELETE CASCADE",
     "(stream_id) ON DELETE SET NULL", {("foreign key snapshot.fk_snapshot_stream", "on_delete")}),
    ("foreign key on update", "postgres", "0006_snapshot.sql", "ON UPDATE NO ACTION",
     "ON UPDATE CASCADE", {("foreign key snapshot.fk_snapshot_stream", "on_update")}),
    ("foreign key on update", "sqlite", "0006_snapshot.sql", "ON UPDATE NO ACTION",
     "ON UPDATE CASCADE", {("foreign key snapshot.fk_snapshot_stream", "on_update")}),
    ("index missing", "postgres", "0001_event_store.sql",
     "CREATE INDEX ix_event_store_event_type_position ON event_store (event_type, position);",
     "", {("index ix_event_store_event_type_position", "exists")}),
    ("index missing", "sqlite", "0001_event_store.sql",
     "CREATE INDEX ix_event_store_event_type_position ON event_store (event_type, position);",
     "", {("index ix_event_store_event_type_position", "exists")}),
    ("index columns reordered", "postgres", "0001_event_store.sql",
     "(event_type, position);", "(position, event_type);",
     {("index ix_event_store_event_type_position", "columns")}),
    ("index columns reordered", "sqlite", "0001_event_store.sql",
     "(event_type, position);", "(position, event_type);",
     {("index ix_event_store_event_type_position", "columns")}),
    ("index uniqueness flipped", "postgres", "0001_event_store.sql",
     "CREATE INDEX ix_event_store_event_type_position",
     "CREATE UNIQUE INDEX ix_event_store_event_type_position",
     {("index ix_event_store_event_type_position", "unique")}),
    ("index uniqueness flipped", "sqlite", "0005_subscription.sql",
     "CREATE UNIQUE INDEX ux_subscription_name_active", "CREATE INDEX ux_subscription_name_active",
     {("index ux_subscription_name_active", "unique")}),
    ("partial predicate changed", "postgres", "0005_subscription.sql",
     "WHERE deleted_at IS NULL", "WHERE deleted_at IS NOT NULL",
     {("index ux_subscription_name_active", "predicate")}),
    ("partial predicate changed", "sqlite", "0005_subscription.sql",
     "WHERE deleted_at IS NULL", "WHERE deleted_at IS NULL AND position > 0",
     {("index ux_subscription_name_active", "predicate")}),
    ("partial predicate dropped", "postgres", "0005_subscription.sql",
     " WHERE deleted_at IS NULL;", ";", {("index ux_subscription_name_active", "predicate")}),
    ("partial predicate dropped", "sqlite", "0005_subscription.sql",
     " WHERE deleted_at IS NULL;", ";", {("index ux_subscription_name_active", "predicate")}),
    ("trigger missing", "postgres", "0002_event_store_append_only.sql",
     ("CREATE TRIGGER event_store_reject_delete\n    BEFORE DELETE ON event_store\n"
     "    FOR EACH ROW EXECUTE FUNCTION event_store_reject_change();"), "",
     {("trigger event_store_reject_delete", "exists")}),
    ("trigger missing", "sqlite", "0002_event_store_append_only.sql",
     ("CREATE TRIGGER event_store_reject_delete\n    BEFORE DELETE ON event_store\n"
     "    FOR EACH ROW\nBEGIN\n    SELECT RAISE(ABORT, 'evstore: event_store is append-only');\n"
     "END;"), "", {("trigger event_store_reject_delete", "exists")}),
    ("trigger timing changed", "postgres", "0002_event_store_append_only.sql",
     "BEFORE UPDATE ON event_store", "AFTER UPDATE ON event_store",
     {("trigger event_store_reject_update", "timing")}),
    ("trigger timing changed", "sqlite", "0002_event_store_append_only.sql",
     "BEFORE UPDATE ON event_store", "AFTER UPDATE ON event_store",
     {("trigger event_store_reject_update", "timing")}),
    ("trigger events changed", "postgres", "0002_event_store_append_only.sql",
     "BEFORE DELETE ON event_store", "BEFORE DELETE OR INSERT ON event_store",
     {("trigger event_store_reject_delete", "events")}),
    ("trigger events changed", "sqlite", "0002_event_store_append_only.sql",
     "BEFORE DELETE ON event_store", "BEFORE INSERT ON event_store",
     {("trigger event_store_reject_delete", "events")}),
    ("declared timing equivalence broken", "sqlite", "0004_stream.sql",
     "AFTER UPDATE ON stream", "BEFORE UPDATE ON stream",
     {("trigger stream_set_updated_at", "timing (declared equivalent)")}),
    ("identity lost", "sqlite", "0005_subscription.sql", "PRIMARY KEY AUTOINCREMENT",
     "PRIMARY KEY", {("column subscription.subscription_id", "identity")}),
    ("declared object gone", "postgres", "0003_event_store_json_indexes.sql",
     "CREATE INDEX ix_event_store_payload_gin ON event_store USING gin (payload jsonb_path_ops);",
     "", {("index ix_event_store_payload_gin", "declared postgres-only")}),
    ("undeclared one-dialect index", "sqlite", "0004_stream.sql", ") STRICT;",
     ") STRICT;\n\nCREATE INDEX ix_stream_version ON stream (version);",
     {("index ix_stream_version", "exists")}),
    ("unique unnamed on both sides", "both", "0001_event_store.sql",
     "CONSTRAINT uq_event_store_event_id UNIQUE", "UNIQUE", set()),
    ("unique named on one side only", "postgres", "0001_event_store.sql",
     "CONSTRAINT uq_event_store_event_id UNIQUE", "UNIQUE",
     {("unique event_store.uq_event_store_event_id", "name")}),
    ("unique named on one side only", "sqlite", "0001_event_store.sql",
     "CONSTRAINT uq_event_store_event_id UNIQUE", "UNIQUE",
     {("unique event_store.uq_event_store_event_id", "name")}),
    ("unique named differently", "postgres", "0001_event_store.sql",
     "CONSTRAINT uq_event_store_event_id UNIQUE", "CONSTRAINT uq_event_id UNIQUE",
     {("unique event_store.uq_event_id", "name")}),
    ("unique named differently", "sqlite", "0001_event_store.sql",
     "CONSTRAINT uq_event_store_event_id UNIQUE", "CONSTRAINT uq_event_id UNIQUE",
     {("unique event_store.uq_event_store_event_id", "name")}),
    ("trigger WHEN added", "postgres", "0002_event_store_append_only.sql",
     "BEFORE UPDATE ON event_store\n    FOR EACH ROW",
     "BEFORE UPDATE ON event_store\n    FOR EACH ROW WHEN (OLD.version > 0)",
     {("trigger event_store_reject_update", "when")}),
    ("trigger WHEN added", "sqlite", "0002_event_store_append_only.sql",
     "BEFORE UPDATE ON event_store\n    FOR EACH ROW",
     "BEFORE UPDATE ON event_store\n    FOR EACH ROW WHEN OLD.version > 0",
     {("trigger event_store_reject_update", "when")}),
    ("index key DESC", "postgres", "0001_event_store.sql",
     "(event_type, position);", "(event_type, position DESC);",
     {("index ix_event_store_event_type_position", "directions")}),
    ("index key DESC", "sqlite", "0001_event_store.sql",
     "(event_type, position);", "(event_type, position DESC);",
     {("index ix_event_store_event_type_position", "directions")}),
    ("index key NOCASE", "sqlite", "0001_event_store.sql",
     "(event_type, position);", "(event_type COLLATE NOCASE, position);",
     {("index ix_event_store_event_type_position", "collations")}),
]

# A schema whose constraints are all unnamed (PostgreSQL names them, SQLite does not), one of
# them on a table whose name leaves PostgreSQL's choices cut to 63 bytes and numbered, with
# ordered and collated index keys and a trigger with WHEN and UPDATE OF. At parity as shipped.
LIBRARY = ROOT / "tests" / "schemas" / "library"
ICU = '"und-x-icu"'  # ICU's root collation: linguistic order, not BINARY's

LIBRARY_MUTATIONS = [
    ("primary key named", "postgres", "PRIMARY KEY (author_id, book_no)",
     "CONSTRAINT pk_book PRIMARY KEY (author_id, book_no)", {("primary key book", "name")}),
    ("primary key named", "sqlite", "PRIMARY KEY (author_id, book_no)",
     "CONSTRAINT pk_book PRIMARY KEY (author_id, book_no)", {("primary key book", "name")}),
    ("primary key named as PostgreSQL would", "sqlite", "PRIMARY KEY (author_id, book_no)",
     "CONSTRAINT book_pkey PRIMARY KEY (author_id, book_no)", set()),
    ("unique named", "postgres", "NOT NULL UNIQUE,\n    nickname",
     "NOT NULL CONSTRAINT uq_author_email UNIQUE,\n    nickname",
     {("unique author.uq_author_email", "name")}),
    ("unique named", "sqlite", "NOT NULL UNIQUE,\n    nickname",
     "NOT NULL CONSTRAINT uq_author_email UNIQUE,\n    nickname",
     {("unique author.uq_author_email", "name")}),
    ("unique columns changed", "postgres", "UNIQUE (author_id, title)", "UNIQUE (title)",
     {("unique book.(author_id,title)", "exists"), ("unique book.(title)", "exists")}),
    ("foreign key named", "postgres", "NOT NULL REFERENCES",
     "NOT NULL CONSTRAINT fk_book_author REFERENCES",
     {("foreign key book.fk_book_author", "name")}),
    ("foreign key named", "sqlite", "NOT NULL REFERENCES",
     "NOT NULL CONSTRAINT fk_book_author REFERENCES",
     {("foreign key book.fk_book_author", "name")}),
    ("foreign key action", "postgres", "ON DELETE CASCADE", "ON DELETE RESTRICT",
     {("foreign key book.(author_id)", "on_delete")}),
    ("foreign key action", "sqlite", "ON DELETE CASCADE", "ON DELETE SET NULL",
     {("foreign key book.(author_id)", "on_delete")}),
    ("foreign key named and action", "postgres", "NOT NULL REFERENCES author (author_id) "
     "ON DELETE CASCADE", "NOT NULL CONSTRAINT fk_book_author REFERENCES author (author_id) "
     "ON DELETE RESTRICT", {("foreign key book.fk_book_author", "name"),
                            ("foreign key book.fk_book_author", "on_delete")}),
    ("check named", "postgres", "CHECK (pages >= 0)", "CONSTRAINT ck_book_pages CHECK (pages >= 0)",
     {("check book.ck_book_pages", "name")}),
    ("check named", "sqlite", "CHECK (pages >= 0)", "CONSTRAINT ck_book_pages CHECK (pages >= 0)",
     {("check book.ck_book_pages", "name")}),
    ("check unnamed changed", "postgres", "CHECK (pages < 100000)", "CHECK (pages < 99999)",
     {("check book.(pages < 100000)", "exists"), ("check book.(pages < 99999)", "exists")}),
    ("check unnamed changed", "sqlite", "CHECK (born > 1800)", "CHECK (born > 1700)",
     {("check author.(born > 1800)", "exists"), ("check author.(born > 1700)", "exists")}),
    ("check unnamed, truncated name, numbered", "sqlite", "CHECK (length(contact_email) < 300)",
     "CHECK (length(contact_email) <= 300)",
     {("check publisher_of_the_books_in_this_library_whose_name_is_very_long."
       "(length(contact_email) < 300)", "exists"),
      ("check publisher_of_the_books_in_this_library_whose_name_is_very_long."
       "(length(contact_email) <= 300)", "exists")}),
    ("trigger WHEN changed", "postgres", "WHEN (NEW.pages < OLD.pages",
     "WHEN (NEW.pages <= OLD.pages",
     {("trigger book_reject_change", "when")}),
    ("trigger WHEN changed", "sqlite", "WHEN NEW.pages < OLD.pages",
     "WHEN NEW.pages <= OLD.pages",
     {("trigger book_reject_change", "when")}),
    ("trigger WHEN IS NOT as IS DISTINCT FROM", "postgres", "NEW.isbn IS DISTINCT FROM OLD.isbn",
     "NEW.isbn IS NOT DISTINCT FROM OLD.isbn", {("trigger book_reject_change", "when")}),
    ("trigger WHEN dropped", "sqlite",
     "    WHEN NEW.pages < OLD.pages OR NEW.isbn IS NOT OLD.isbn\n", "",
     {("trigger book_reject_change", "when")}),
    ("trigger UPDATE OF changed", "postgres", "UPDATE OF pages, isbn", "UPDATE OF pages",
     {("trigger book_reject_change", "columns")}),
    ("trigger UPDATE OF changed", "sqlite", "UPDATE OF pages, isbn", "UPDATE",
     {("trigger book_reject_change", "columns")}),
    ("index key DESC", "postgres", "(title, pages DESC)", "(title DESC, pages DESC)",
     {("index ix_book_title_pages", "directions")}),
    ("index key ASC", "sqlite", "(title, pages DESC)", "(title, pages ASC)",
     {("index ix_book_title_pages", "directions")}),
    ("index keys reordered", "sqlite", "(title, pages DESC)", "(pages DESC, title)",
     {("index ix_book_title_pages", "columns"), ("index ix_book_title_pages", "directions")}),
    ("index defaults spelled out on NOT NULL keys", "postgres", "(title, pages DESC)",
     "(title ASC NULLS FIRST, pages DESC NULLS LAST)", set()),
    ("index NULLS LAST", "postgres", "nickname NULLS FIRST", "nickname NULLS LAST",
     {("index ix_author_nickname_born", "nulls")}),
    ("index NULLS by default", "postgres", "born DESC NULLS LAST", "born DESC",
     {("index ix_author_nickname_born", "nulls")}),
    # SQLite's CREATE INDEX takes no NULLS clause; its NULLs move only with the direction.
    ("index NULLS with the direction", "sqlite", "(nickname, born DESC)",
     "(nickname DESC, born DESC)",
     {("index ix_author_nickname_born", "directions"), ("index ix_author_nickname_born", "nulls")}),
    ("index collation NOCASE", "sqlite", "(title, pages DESC)",
     "(title COLLATE NOCASE, pages DESC)",
     {("index ix_book_title_pages", "collations")}),
    ("index collation linguistic", "postgres", "(title, pages DESC)",
     f"(title COLLATE {ICU}, pages DESC)", {("index ix_book_title_pages", "collations")}),
    ("index collation C as BINARY", "postgres", "(title, pages DESC)",
     '(title COLLATE "POSIX", pages DESC)', set()),
    ("index collation BINARY by name", "sqlite", "(title, pages DESC)",
     "(title COLLATE BINARY, pages DESC)", set()),
    ("index renamed", "sqlite", "ix_book_title_pages", "ix_book_title",
     {("index ix_book_title_pages", "name")}),
    ("index named by PostgreSQL", "postgres", "INDEX ix_book_title_pages ON", "INDEX ON",
     {("index book_title_pages_idx", "name")}),
    ("index renamed and changed", "sqlite", "ix_book_title_pages ON book (title, pages DESC)",
     "ix_book_title ON book (title, pages)",
     {("index ix_book_title_pages", "exists"), ("index ix_book_title", "exists")}),
    ("trigger renamed", "postgres", "CREATE TRIGGER book_reject_change",
     "CREATE TRIGGER book_guard", {("trigger book_guard", "name")}),
]


def _mutate(tmp_path: Path, base: Path, kind: str, dialect: str, file: str, old: str,
            new: str) -> dict[str, Path]:
    """Copies of base's two folders, `old` replaced by `new` in `file` of one or both."""
    folders = {d: tmp_path / d for d in ("postgres", "sqlite")}
    for d, folder in folders.items():
        shutil.copytree(base / d, folder)
    for d in ("postgres", "sqlite") if dialect == "both" else (dialect,):
        target = folders[d] / file
        text = target.read_text()
        assert text.count(old) == 1, f"mutation {kind!r} does not apply cleanly to {d}"
        target.write_text(text.replace(old, new))
    return folders


@pytest.mark.parametrize(
    "kind, dialect, file, old, new, expected", MUTATIONS,
    ids=[f"{m[0]}-{m[1]}" for m in MUTATIONS],
)
def test_mutation_is_reported_exactly(
    tmp_path: Path, kind: str, dialect: str, file: str, old: str, new: str,
    expected: set[tuple[str, str]],
) -> None:
    folders = _mutate(tmp_path, SQL, kind, dialect, file, old, new)
    assert _parity(folders["postgres"], folders["sqlite"], SQL / "parity.toml") == expected


def test_library_schema_is_at_parity() -> None:
    assert _parity(LIBRARY / "postgres", LIBRARY / "sqlite", LIBRARY / "parity.toml") == set()


def _has_collation(name: str) -> bool:
    with psycopg.connect(require_pg()) as conn:
        return conn.execute("SELECT 1 FROM pg_collation WHERE collname = %s",
                            (name,)).fetchone() is not None


@pytest.mark.parametrize(
    "kind, dialect, old, new, expected", LIBRARY_MUTATIONS,
    ids=[f"{m[0]}-{m[1]}" for m in LIBRARY_MUTATIONS],
)
def test_library_mutation_is_reported_exactly(
    tmp_path: Path, kind: str, dialect: str, old: str, new: str,
    expected: set[tuple[str, str]],
) -> None:
    if ICU in new and not _has_collation(ICU.strip('"')):
        pytest.skip(f"this PostgreSQL has no {ICU} collation (built without ICU)")
    folders = _mutate(tmp_path, LIBRARY, kind, dialect, "0001_library.sql", old, new)
    assert _parity(folders["postgres"], folders["sqlite"], LIBRARY / "parity.toml") == expected


def _differences(tmp_path: Path, dialect: str, old: str, new: str) -> list[Difference]:
    folders = _mutate(tmp_path, LIBRARY, "hint", dialect, "0001_library.sql", old, new)
    return run_parity(require_pg(), folders["postgres"], folders["sqlite"],
                      LIBRARY / "parity.toml").differences


@pytest.mark.parametrize("dialect, old, new, hint", [
    ("postgres", "NOT NULL UNIQUE,\n    nickname",
     "NOT NULL CONSTRAINT uq_author_email UNIQUE,\n    nickname",
     "only the name differs: name it `CONSTRAINT uq_author_email` on the sqlite side"),
    ("sqlite", "NOT NULL UNIQUE,\n    nickname",
     "NOT NULL CONSTRAINT uq_author_email UNIQUE,\n    nickname",
     "only the name differs: name it `CONSTRAINT uq_author_email` on the postgres side "
     "(author_email_key is the name PostgreSQL chose)"),
    ("sqlite", "CONSTRAINT ck_book_isbn_length", "CONSTRAINT ck_book_isbn_13",
     "only the name differs: name it `CONSTRAINT ck_book_isbn_length` on the sqlite side, or "
     "`CONSTRAINT ck_book_isbn_13` on the postgres side"),
    ("postgres", "NOT NULL REFERENCES author (author_id) ON DELETE CASCADE",
     "NOT NULL CONSTRAINT fk_book_author REFERENCES author (author_id) ON DELETE RESTRICT",
     "the name differs too: name it `CONSTRAINT fk_book_author` on the sqlite side"),
    ("sqlite", "INDEX ix_book_isbn", "INDEX ix_book_isbn_13",
     "only the name differs: name the index `ix_book_isbn` on the sqlite side, or "
     "`ix_book_isbn_13` on the postgres side"),
    ("postgres", "nickname NULLS FIRST", "nickname",
     "SQLite keeps NULLs first in an ASC key and last in a DESC one and cannot be told "
     "otherwise: write nickname ASC NULLS FIRST on the postgres side"),
])
def test_hint_says_how_to_agree(tmp_path: Path, dialect: str, old: str, new: str,
                                hint: str) -> None:
    found = _differences(tmp_path, dialect, old, new)
    assert [d.hint for d in found if d.hint] == [hint]
    hinted = next(d for d in found if d.hint)
    assert hinted.to_dict()["hint"] == hint
    assert hinted.line().endswith(f"hint: {hint}")
    assert str(hinted).endswith(f"; {hint}")
    assert all(d.to_dict()["hint"] is None for d in found if d is not hinted)


# Names PostgreSQL chooses itself, read back from its catalog: each is recognised as unnamed.
GENERATED_NAMES_DDL = [
    "CREATE TABLE p (id int PRIMARY KEY, k int UNIQUE)",
    "CREATE TABLE t (a int PRIMARY KEY, b int UNIQUE REFERENCES p (id) CHECK (b > 0), "
    "c text CHECK (c <> '' AND b < 5), d int CHECK (d > 0) CHECK (d < 9), "
    "UNIQUE (b, c), FOREIGN KEY (d) REFERENCES p (k), CHECK (a > 0), CHECK (true))",
    'CREATE TABLE "{long}" ("{col}" int PRIMARY KEY, c int UNIQUE, CHECK (c > 1), '
    'CHECK (c > 2), CHECK (c > 3))',
    'CREATE TABLE "{wide}" (x int PRIMARY KEY, "{wide_col}" int UNIQUE)',
    # The first choice is taken by a table, so PostgreSQL numbers the next.
    "CREATE TABLE u_v_key (x int)",
    "CREATE TABLE u (v int UNIQUE)",
]


def test_postgres_generated_names_are_recognised() -> None:
    names = {"long": "l" * 70, "col": "c" * 70, "wide": "é" * 40, "wide_col": "ü" * 30}
    with scratch_database() as url, psycopg.connect(url, autocommit=True) as conn:
        for ddl in GENERATED_NAMES_DDL:
            conn.execute(ddl.format(**names))
        rows = conn.execute(
            "SELECT c.relname, k.conname, k.contype, ARRAY(SELECT a.attname FROM "
            "unnest(k.conkey) WITH ORDINALITY u(n, i) JOIN pg_attribute a ON a.attrelid = "
            "k.conrelid AND a.attnum = u.n ORDER BY u.i) FROM pg_constraint k "
            "JOIN pg_class c ON c.oid = k.conrelid WHERE k.connamespace = 'public'::regnamespace"
        ).fetchall()
    kinds = {"p": "primary key", "u": "unique", "f": "foreign key", "c": "check"}
    assert len(rows) == 21
    assert "u_v_key1" in {r[1] for r in rows}
    assert any(len(r[1].encode()) == 63 for r in rows)
    for table, name, kind, columns in rows:
        assert mapping.pg_generated_name(name, table, kinds[kind], tuple(columns)), name
    for name, kind, columns in [("pk_t", "primary key", ()), ("t_pkey0", "primary key", ()),
                                ("t_b_key", "unique", ("c",)), ("t_b_fkey", "check", ("b",)),
                                ("t_check", "check", ("a",)), ("t_a_check", "check", ())]:
        assert not mapping.pg_generated_name(name, "t", kind, columns), name


@pytest.mark.parametrize("dialect, remove, expected", [
    ("sqlite", ["0007_event_store_notify.sql", "0007_event_store_notify.rollback.sql"],
     {("migration 0007_event_store_notify", "exists")}),
    ("sqlite", ["0005_subscription.rollback.sql"],
     {("migration 0005_subscription", "rollback file")}),
])
def test_migration_ids_are_compared(tmp_path: Path, dialect: str, remove: list[str],
                                    expected: set[tuple[str, str]]) -> None:
    for d in ("postgres", "sqlite"):
        shutil.copytree(SQL / d, tmp_path / d)
    for name in remove:
        (tmp_path / dialect / name).unlink()
    assert _parity(tmp_path / "postgres", tmp_path / "sqlite", SQL / "parity.toml") == expected


def test_second_schema_mutation(tmp_path: Path) -> None:
    shutil.copytree(TEMPLATES, tmp_path / "t")
    target = tmp_path / "t" / "sqlite" / "0001_templates.sql"
    target.write_text(target.read_text().replace("ON DELETE SET NULL", "ON DELETE CASCADE"))
    assert _parity(tmp_path / "t" / "postgres", tmp_path / "t" / "sqlite",
                   tmp_path / "t" / "parity.toml") == {
        ("foreign key prompt_result.fk_prompt_result_version", "on_delete")}


def test_parity_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for d in ("postgres", "sqlite"):
        shutil.copytree(SQL / d, tmp_path / d)
    f = tmp_path / "sqlite" / "0006_snapshot.sql"
    f.write_text(f.read_text().replace(") ON DELETE CASCADE", ") ON DELETE SET NULL"))
    args = ["parity", "--postgres", require_pg(), "--pg-dir", str(tmp_path / "postgres"),
            "--sqlite-dir", str(tmp_path / "sqlite"), "--declared", str(SQL / "parity.toml")]
    assert main(args) == 1
    assert "on_delete" in capsys.readouterr().out
    assert main([*args, "--json"]) == 1
    [diff] = json.loads(capsys.readouterr().out)
    assert {k: diff[k] for k in ("object", "field", "postgres", "sqlite")} == {
        "object": "foreign key snapshot.fk_snapshot_stream", "field": "on_delete",
        "postgres": "CASCADE", "sqlite": "SET NULL"}
    assert main(["parity", "--postgres", "postgresql://u@127.0.0.1:1/x"]) == 2
    assert main(["parity", "--postgres", require_pg(), "--pg-dir", str(tmp_path / "no")]) == 2


def test_live_parity_of_two_migrated_databases(tmp_path: Path) -> None:
    lite = f"sqlite:///{tmp_path}/live.db"
    with scratch_database() as pg, evstore.connect(pg) as a, evstore.connect(lite) as b:
        a.migrate()
        b.migrate()
        assert main(["parity", "--live", "--postgres", pg, "--sqlite", lite]) == 0
        b.execute("CREATE INDEX ix_by_hand ON stream (updated_at)")
        assert main(["parity", "--live", "--postgres", pg, "--sqlite", lite]) == 1


# Behaviour backs the catalog: the same rows go into both dialects, accepted or refused alike.
ROWS = [
    # A hand-written INSERT into event_store is refused on both dialects by the guard
    # event_store_check_insert (0010), before any CHECK runs.
    (("INSERT INTO event_store (event_id, stream_id, version, event_type, payload) "
     "VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAV', 's', 1, 'T', '{}')"), False),
    (("INSERT INTO event_store (event_id, stream_id, version, event_type, payload) "
     "VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FA', 's', 1, 'T', '{}')"), False),
    (("INSERT INTO event_store (event_id, stream_id, version, event_type, payload) "
     "VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAV', 's', 0, 'T', '{}')"), False),
    (("INSERT INTO event_store (event_id, stream_id, version, event_type, payload) "
     "VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAV', '', 1, 'T', '{}')"), False),
    (("INSERT INTO event_store (event_id, stream_id, version, event_type, payload) "
     "VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAV', 's', 1, '', '{}')"), False),
    (("INSERT INTO event_store (event_id, stream_id, version, event_type, payload) "
     "VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAV', 's', 1, 'T', 'not json')"), False),
    ("INSERT INTO stream (stream_id, version) VALUES ('s', -1)", False),
    ("INSERT INTO stream (stream_id, version) VALUES ('s', 1)", True),
    ("INSERT INTO stream (stream_id, version, metadata) VALUES ('s', 1, '{oops')", False),
    ("INSERT INTO subscription (name, position) VALUES ('', 0)", False),
    ("INSERT INTO subscription (name, position) VALUES ('n', -1)", False),
    ("INSERT INTO subscription (name, position) VALUES ('n', 0)", True),
    ("INSERT INTO evstore_migration_checksum (migration_id, sha256) VALUES ('x', 'short')", False),
    ("INSERT INTO prompt_template (workspace, name, status) VALUES ('w', 'n', 'live')", True),
    ("INSERT INTO prompt_template (workspace, name, status) VALUES ('w', 'n', 'gone')", False),
    ("INSERT INTO prompt_result (score) VALUES (1.5)", False),
    ("INSERT INTO prompt_result (score) VALUES (0.5)", True),
]
TRIGGER_STATEMENTS = [
    "UPDATE event_store SET event_type = 'X'",
    "DELETE FROM event_store",
]


def _outcome(store: evstore.Store, sql: str) -> bool:
    try:
        with store.transaction() as tx:
            tx.execute(sql)
            raise KeyError("undo")
    except KeyError:
        return True
    except evstore.DatabaseError:
        return False


def test_checks_and_triggers_behave_alike(tmp_path: Path) -> None:
    lite_url = f"sqlite:///{tmp_path}/b.db"
    with scratch_database() as pg_url:
        stores = [evstore.connect(pg_url), evstore.connect(lite_url)]
        for s, d in zip(stores, ("postgres", "sqlite"), strict=True):
            s.migrate()
            s.migrations_dir = TEMPLATES / d
            s.migrate()
        for sql, accepted in ROWS:
            assert [_outcome(s, sql) for s in stores] == [accepted, accepted], sql
        for s in stores:
            s.append("s", [evstore.NewEvent("T", {})])
        for sql in TRIGGER_STATEMENTS:
            assert [_outcome(s, sql) for s in stores] == [False, False], sql
        for s in stores:
            s.close()
