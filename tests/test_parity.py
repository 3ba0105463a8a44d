"""Parity: the shipped schema matches, and every kind of drift is reported exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import evstore
from evstore.catalog.parity import run_parity
from evstore.cli import main
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
]


@pytest.mark.parametrize(
    "kind, dialect, file, old, new, expected", MUTATIONS,
    ids=[f"{m[0]}-{m[1]}" for m in MUTATIONS],
)
def test_mutation_is_reported_exactly(
    tmp_path: Path, kind: str, dialect: str, file: str, old: str, new: str,
    expected: set[tuple[str, str]],
) -> None:
    folders = {d: tmp_path / d for d in ("postgres", "sqlite")}
    for d, folder in folders.items():
        shutil.copytree(SQL / d, folder)
    target = folders[dialect] / file
    text = target.read_text()
    assert text.count(old) == 1, f"mutation {kind!r} does not apply cleanly"
    target.write_text(text.replace(old, new))
    assert _parity(folders["postgres"], folders["sqlite"], SQL / "parity.toml") == expected


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
    assert diff == {"object": "foreign key snapshot.fk_snapshot_stream", "field": "on_delete",
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
    ("INSERT INTO stream (stream_id, version) VALUES ('s', 0)", False),
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
