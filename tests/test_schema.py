"""The schema as the catalogs show it, and as it behaves, on every backend."""

from __future__ import annotations

import datetime as dt

import pytest

import evstore
from evstore.schema.catalog import postgres as pg_catalog
from evstore.schema.catalog import sqlite as sqlite_catalog
from evstore.schema.catalog.model import Schema

ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def schema_of(store: evstore.Store) -> Schema:
    conn = store._live().conn  # type: ignore[attr-defined]
    if store.dialect == "postgres":
        (schema,) = conn.execute("SELECT current_schema()").fetchone()
        return pg_catalog.introspect(conn, schema)
    return sqlite_catalog.introspect(conn)


def insert_event(store: evstore.Store, event_id: str = ULID, version: int = 1,
                 stream: str = "s", payload: str = '{"a": 1}') -> None:
    store.execute(
        "INSERT INTO event_store (event_id, stream_id, version, event_type, payload) "
        "VALUES (?, ?, ?, 'T', ?)",
        (event_id, stream, version, payload),
    )


def test_event_store_shape(store: evstore.Store) -> None:
    table = schema_of(store).tables["event_store"]
    columns = {c.name: c for c in table.columns}
    assert list(columns) == ["position", "event_id", "stream_id", "version", "event_type",
                             "payload", "metadata", "recorded_at", "content_digest",
                             "chain_digest"]
    # The digests are NULL only for events stored before migration 0009.
    assert [c.name for c in table.columns if not c.not_null] == ["content_digest",
                                                                  "chain_digest"]
    assert columns["position"].identity == "generated"
    assert table.primary_key is not None
    assert (table.primary_key.name, table.primary_key.columns) == ("pk_event_store",
                                                                   ("position",))
    uniques = {u.name: u.columns for u in table.uniques}
    assert uniques == {"uq_event_store_event_id": ("event_id",),
                       "uq_event_store_stream_id_version": ("stream_id", "version")}
    checks = {c.name for c in table.checks}
    assert {"ck_event_store_event_id_length", "ck_event_store_version_not_negative",
            "ck_event_store_stream_id_length"} <= checks
    expected_types = {"postgres": ("bigint", "jsonb", "timestamp with time zone"),
                      "sqlite": ("INTEGER", "TEXT", "TEXT")}[store.dialect]
    assert (columns["version"].type, columns["payload"].type,
            columns["recorded_at"].type) == expected_types


@pytest.mark.parametrize("event_id, version", [(ULID, -1), (ULID[:25], 1)])
def test_checks_refuse_bad_rows(store: evstore.Store, event_id: str, version: int) -> None:
    with pytest.raises(evstore.DatabaseError):
        insert_event(store, event_id=event_id, version=version)
    assert store.execute("SELECT count(*) FROM event_store") == [(0,)]


def test_recorded_at_defaults_to_utc_now(store: evstore.Store) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    [event] = store.append("s", [evstore.NewEvent("T", {})])
    assert event.recorded_at.tzinfo is not None
    assert event.recorded_at.utcoffset() == dt.timedelta(0)
    assert before <= event.recorded_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    [read] = store.read_stream("s")
    assert read.recorded_at == event.recorded_at
    if store.dialect == "sqlite":
        [(text,)] = store.execute("SELECT recorded_at FROM event_store")
        assert len(text) == 24 and text.endswith("Z") and text[19] == "."


@pytest.mark.parametrize("data", [
    {"nested": {"list": [1, 2, {"deep": None}]}, "ok": True},
    {"unicode": "żółw 🐢 漢字", "quote": "\"'\\"},
    {"big": 2**70, "neg": -(2**65), "float": 0.1},
    None,
    [],
    "just a string",
])
def test_json_round_trip(store: evstore.Store, data: object) -> None:
    [written] = store.append("s", [evstore.NewEvent("T", data, {"k": [1, "2"]})])
    [read] = store.read_stream("s")
    assert read.data == data == written.data
    assert read.metadata == {"k": [1, "2"]}


def test_snapshot_foreign_key_and_stream_heads_are_kept(store: evstore.Store) -> None:
    store.append("s", [evstore.NewEvent("T", {})])
    store.save_snapshot("s", 1, {"state": 1})
    # Stream heads are never removed (0011), so the cascade never has anything to do.
    with pytest.raises(evstore.AppendOnlyViolation, match="never removed"):
        store.execute("DELETE FROM stream WHERE stream_id = ?", ("s",))
    assert store.load_snapshot("s") is not None and store.stream_version("s") == 1
    fk = schema_of(store).tables["snapshot"].foreign_keys[0]
    assert (fk.name, fk.ref_table, fk.on_delete) == ("fk_snapshot_stream", "stream", "CASCADE")
    with pytest.raises(evstore.DatabaseError):
        store.execute("INSERT INTO snapshot (stream_id, version, state) VALUES ('x', 1, '{}')")


def test_partial_unique_index_on_active_subscriptions(store: evstore.Store) -> None:
    index = schema_of(store).indexes["ux_subscription_name_active"]
    assert index.unique and "deleted_at IS NULL" in (index.predicate or "")
    store.save_checkpoint("p", 5)
    with pytest.raises(evstore.DatabaseError):
        store.execute("INSERT INTO subscription (name) VALUES ('p')")
    assert store.delete_subscription("p")
    store.execute("INSERT INTO subscription (name) VALUES ('p')")
    store.delete_subscription("p")
    store.execute("INSERT INTO subscription (name) VALUES ('p')")
    assert store.execute("SELECT count(*) FROM subscription WHERE name = 'p'") == [(3,)]
    assert store.checkpoint("p") == 0


def test_updated_at_triggers_move_forward(store: evstore.Store) -> None:
    store.append("s", [evstore.NewEvent("T", {})])
    store.execute("UPDATE stream SET created_at = '2000-01-01T00:00:00.000Z', "
                  "updated_at = '2000-01-01T00:00:00.000Z' WHERE stream_id = 's'")
    [(updated,)] = store.execute("SELECT updated_at FROM stream WHERE stream_id = 's'")
    assert str(updated)[:4] != "2000"


def test_append_only_update_and_delete_rejected(store: evstore.Store) -> None:
    [event] = store.append("s", [evstore.NewEvent("T", {"v": 1})])
    for statement in ("UPDATE event_store SET event_type = 'X'", "DELETE FROM event_store"):
        with pytest.raises(evstore.AppendOnlyViolation, match="append-only"):
            store.execute(statement)
    assert store.read_all() == [event]


@pytest.mark.postgres
def test_truncate_rejected_on_postgres(pg_url: str) -> None:
    with evstore.connect(pg_url) as store:
        store.migrate()
        [event] = store.append("s", [evstore.NewEvent("T", {})])
        with pytest.raises(evstore.AppendOnlyViolation):
            store.execute("TRUNCATE event_store")
        assert store.read_all() == [event]
