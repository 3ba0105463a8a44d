"""The named runtime queries (sql/queries): the loader, the lint rules that hold the two files at
parity, parity's report of a one-sided query, and the index each read query is meant to use."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import evstore
from evstore import NewEvent
from evstore.cli import main
from evstore.dialects import queries
from evstore.groups import Leases
from evstore.schema.catalog.parity import run_parity
from evstore.schema.lint import lint_queries
from tests.conftest import SQL, require_pg, scratch_database

# -- the loader ------------------------------------------------------------------------------


def test_both_files_load_with_a_description_for_every_query() -> None:
    for dialect in ("postgres", "sqlite"):
        loaded = queries.load(dialect)  # type: ignore[arg-type]
        assert loaded and all(q.description and q.text for q in loaded.values())
        shared = {n for n in loaded if not n.startswith(queries.DIALECT_ONLY)}
        assert {"read_all", "find_events", "verify_heads", "event_store_exists"} <= shared
    assert lint_queries(queries.queries_file("postgres"), queries.queries_file("sqlite")) == []


def test_parameters_become_the_drivers_placeholders() -> None:
    text = ("-- Queries.\n\n-- name: q\n-- Does q.\n"
            "SELECT :a::text, :ids::text[], 'x:y %', x::int FROM t WHERE b = :a AND c % 2 = 0\n")
    pg = queries.parse(text, "postgres")["q"]
    assert pg.params == ("a", "ids")
    assert pg.description == "Does q."
    assert pg.sql == ("SELECT %(a)s::text, %(ids)b::text[], 'x:y %%', x::int FROM t "
                      "WHERE b = %(a)s AND c %% 2 = 0")
    assert queries.numbered(pg).startswith("SELECT $1::text, $2::text[], 'x:y %'")
    lite = queries.parse(text, "sqlite")["q"]
    assert lite.sql == lite.text


def test_the_insert_template_repeats_its_values_row() -> None:
    insert = queries.load("sqlite")["sqlite_insert_event"]
    three = insert.repeated_rows(3)
    row = "(" + ",".join("?" * len(insert.params)) + ")"
    assert len(insert.params) == 8 and three.count(row) == 3 and ":event_id" not in three
    assert three.rstrip().endswith(",".join([row] * 3))  # no RETURNING: see sqlite.py


# -- lint: queries-match and queries-parse ----------------------------------------------------


def _copy(tmp_path: Path) -> tuple[Path, Path, Path]:
    for folder in ("postgres", "sqlite", "queries"):
        shutil.copytree(SQL / folder, tmp_path / folder)
    return tmp_path / "postgres", tmp_path / "sqlite", tmp_path / "queries"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


CHECKPOINT = "-- name: checkpoint\n"


@pytest.mark.parametrize("file, old, new, rule, says", [
    ("sqlite.sql", "-- name: head_position\n", "-- name: head_position_2\n",
     "queries-match", "exists for sqlite but not for postgres"),
    ("postgres.sql", "WHERE stream_id = :stream_id\nORDER BY version DESC\nLIMIT 1",
     "WHERE stream_id = :stream\nORDER BY version DESC\nLIMIT 1", "queries-match", "takes"),
    ("sqlite.sql", "-- name: stream_version\n-- The version of a stream's head, no row when the "
     "stream does not exist.\n", "-- name: stream_version\n", "queries-match",
     "no description"),
    ("sqlite.sql", CHECKPOINT, "-- name: postgres_x\n-- A PostgreSQL query.\nSELECT 1\n\n"
     + CHECKPOINT, "queries-match", "named for postgres"),
    ("postgres.sql", CHECKPOINT, "-- name: head_position\n-- Twice.\nSELECT 1\n\n" + CHECKPOINT,
     "queries-match", "defined twice"),
    ("postgres.sql", "-- The statements evstore runs", "-- name: x\n-- The statements",
     "queries-match", "one-line comment"),
    ("postgres.sql", "SELECT version FROM stream WHERE stream_id = :stream_id",
     "SELEC version FROM stream WHERE stream_id = :stream_id", "queries-parse",
     "cannot parse query stream_version"),
])
def test_lint_rules_of_the_queries(tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str,
                                   old: str, new: str, rule: str, says: str) -> None:
    pg, lite, named = _copy(tmp_path)
    dirs = ["--pg-dir", str(pg), "--sqlite-dir", str(lite)]
    assert main(["lint", "--no-squawk", *dirs]) == 0
    _edit(named / file, old, new)
    capsys.readouterr()
    assert main(["lint", "--no-squawk", "--json", *dirs]) == 1
    findings = [f for f in json.loads(capsys.readouterr().out) if f["rule"] == rule]
    assert any(says in f["message"] for f in findings), findings
    assert all(f["fix"] and f["file"].startswith(str(named)) for f in findings)


def test_migration_readers_ignore_the_queries_folder(tmp_path: Path) -> None:
    """sql/queries sits beside the migration folders: not a migration, not in evstore.sum."""
    from evstore.schema.migrations import read_folder

    ids = {m.id for m in read_folder(SQL / "postgres")}
    assert ids and not any("quer" in i for i in ids)
    assert "queries" not in (SQL / "postgres" / "evstore.sum").read_text()


# -- parity ----------------------------------------------------------------------------------


@pytest.mark.postgres
def test_parity_reports_a_query_on_one_side_only(tmp_path: Path) -> None:
    pg, lite, named = _copy(tmp_path)
    _edit(named / "postgres.sql", "-- name: head_position\n", "-- name: head_position_pg\n")
    report = run_parity(require_pg(), pg, lite, SQL / "parity.toml")
    found = {(d.object, d.field, d.postgres, d.sqlite) for d in report.differences}
    assert found == {("query head_position", "exists", False, True),
                     ("query head_position_pg", "exists", True, False)}


# -- the index each read query uses -----------------------------------------------------------

STREAMS, PER_STREAM = 600, 10  # 6000 events; one in a hundred of type Rare

# query -> (its parameters, the index it is meant to use, by its PostgreSQL name)
READS: dict[str, tuple[dict[str, Any], str]] = {
    "read_all": ({"after": 3000, "limit": 100}, "pk_event_store"),
    "read_all_of_type": ({"after": 100, "event_type": "Rare", "limit": 100},
                         "ix_event_store_event_type_position"),
    "read_all_of_types": ({"after": 100, "types": ["Rare", "Other"], "limit": 100},
                          "ix_event_store_event_type_position"),
    "read_stream_forward": ({"stream_id": "s-42", "from_version": 1, "limit": 50},
                            "uq_event_store_stream_id_version"),
    "read_stream_backward": ({"stream_id": "s-42", "from_version": 10, "limit": 50},
                             "uq_event_store_stream_id_version"),
    "find_events": ({"event_ids": ["01ARZ3NDEKTSV4RRFFQ69G5FAV"]}, "uq_event_store_event_id"),
    "stream_version": ({"stream_id": "s-42"}, "pk_stream"),
    "head_position": ({}, "pk_event_store"),
    "load_snapshot": ({"stream_id": "s-42"}, "pk_snapshot"),
    "load_snapshot_at": ({"stream_id": "s-42", "version": 40}, "pk_snapshot"),
    "checkpoint": ({"name": "sub-42"}, "ux_subscription_name_active"),
    "checkpoint_for_update": ({"name": "sub-42"}, "ux_subscription_name_active"),
    "copy_read_events": ({"after": 3000, "through": 5000, "limit": 100}, "pk_event_store"),
    "copy_read_event_keys": ({"after": 3000, "through": 5000, "limit": 100}, "pk_event_store"),
    "copy_event_at": ({"position": 3000}, "pk_event_store"),
    "copy_head": ({}, "pk_event_store"),
    "group_leases": ({"group_name": "sub"}, "pk_consumer_group_lease"),
}

# Read queries that scan a small table on purpose, with the reason.
SCANS = {
    # One row per consumer; a group's member checkpoints are found by a name prefix (substr),
    # which no index of subscription serves in every collation.
    "group_checkpoints": "subscription",
}

# evstore copy reads these whole, once per copy (and evstore_copy holds one row at most).
WHOLE_TABLE_READS = {"copy_contents", "copy_marker", "copy_table_exists", "copy_read_streams",
                     "copy_read_subscriptions", "copy_read_snapshots"}


# Where SQLite's planner chooses otherwise. It plans a statement without its parameters
# values, and json_each gives it no row count, so for several event types it walks the log by
# position (a SEARCH of the rowid from :after, filtered), which stops at :limit matches; never
# a full SCAN. One type (read_all_of_type, what most filtered reads and tails ask for) takes
# the index on both dialects. PostgreSQL plans with the values and takes the index for both.
SQLITE_CHOOSES = {"read_all_of_types": "pk_event_store"}


def _fill(store: evstore.Store) -> None:
    store.migrate()
    for s in range(STREAMS):
        store.append(f"s-{s}", [
            NewEvent("Rare" if (s * PER_STREAM + i) % 100 == 0 else "Common", {"i": i})
            for i in range(PER_STREAM)
        ])
    leases = Leases()
    for s in range(STREAMS):
        store.save_snapshot(f"s-{s}", PER_STREAM, {"n": s})
        store.save_checkpoint(f"sub-{s}", s)
        leases.claim(store._live(), f"sub-{s}", 0, 1)


def test_every_read_query_is_checked() -> None:
    reads = {n for n, q in queries.load("postgres").items()
             if q.text.lstrip().upper().startswith("SELECT") and not n.startswith(
                 ("postgres_", "verify_", "event_store_exists"))}
    assert reads == set(READS) | set(SCANS) | WHOLE_TABLE_READS


@pytest.fixture(scope="module")
def sqlite_plans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    path = tmp_path_factory.mktemp("plans") / "plans.db"
    with evstore.connect(f"sqlite:///{path}") as store:
        _fill(store)
        store.execute("ANALYZE")
    conn = sqlite3.connect(path)
    yield conn
    conn.close()


def _sqlite_index(conn: sqlite3.Connection, pg_name: str) -> str:
    """SQLite's name for the index behind a named constraint: its UNIQUE and PRIMARY KEY
    constraints become sqlite_autoindex_TABLE_N, found here by their columns."""
    wanted = {"uq_event_store_stream_id_version": ("event_store", ["stream_id", "version"]),
              "uq_event_store_event_id": ("event_store", ["event_id"]),
              "pk_stream": ("stream", ["stream_id"]),
              "pk_snapshot": ("snapshot", ["stream_id", "version"]),
              "pk_consumer_group_lease": ("consumer_group_lease", ["group_name", "member"])}
    if pg_name == "pk_event_store":
        return "INTEGER PRIMARY KEY"  # the rowid
    if pg_name not in wanted:
        return pg_name  # CREATE INDEX keeps its name
    table, columns = wanted[pg_name]
    for row in conn.execute(f"PRAGMA index_list({table})"):
        if [r[2] for r in conn.execute(f"PRAGMA index_info({row[1]})")] == columns:
            return str(row[1])
    raise AssertionError(f"no index on {table} {columns}")


@pytest.mark.parametrize("name", sorted(READS))
def test_sqlite_read_uses_its_index(sqlite_plans: sqlite3.Connection, name: str) -> None:
    params, index = READS[name]
    index = SQLITE_CHOOSES.get(name, index)
    params = {k: json.dumps(v) if isinstance(v, list) else v for k, v in params.items()}
    sql = queries.load("sqlite")[name].sql
    plan = [row[3] for row in sqlite_plans.execute("EXPLAIN QUERY PLAN " + sql, params)]
    expected = _sqlite_index(sqlite_plans, index)
    if name == "head_position":
        # max(position) of a rowid table is a single seek: SQLite reports it as a SEARCH.
        assert plan == ["SEARCH event_store"] or any(expected in d for d in plan), plan
    else:
        assert any(f"USING {expected}" in d or f"INDEX {expected}" in d for d in plan), plan
    assert not any(re.match(r"SCAN event_store\b", d) for d in plan), plan


@pytest.fixture(scope="module")
def pg_plans() -> Iterator[psycopg.Connection[Any]]:
    with scratch_database("evstore_plans") as url:
        with evstore.connect(url) as store:
            _fill(store)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
            yield conn


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.postgres
@pytest.mark.parametrize("name", sorted(READS))
def test_postgres_read_uses_its_index(pg_plans: psycopg.Connection[Any], name: str) -> None:
    params, index = READS[name]
    sql = queries.load("postgres")[name].sql
    with pg_plans.transaction():  # FOR UPDATE needs one
        row = pg_plans.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
    assert row is not None
    nodes = list(_nodes(row[0][0]["Plan"]))
    assert index in {n.get("Index Name") for n in nodes}, json.dumps(row[0], indent=1)
    seq = [n for n in nodes if n["Node Type"] == "Seq Scan"]
    assert not [n for n in seq if n.get("Relation Name") == "event_store"], seq
