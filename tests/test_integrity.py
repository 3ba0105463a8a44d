"""Integrity: the log cannot be rewritten through SQL, digests are portable and checked, limits
hold, and an append that waits too long for the append lock says so."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

import evstore
from evstore import NewEvent
from evstore.cli import main
from evstore.errors import AppendLockTimeout, DatabaseError, InvalidInput
from evstore.events import digest_of
from evstore.operations.verify import Finding, verify
from evstore.urls import parse_url
from tests.conftest import SQL

E = NewEvent
A_IDS = [f"01ARZ3NDEKTSV4RRFFQ69G5A{i:02d}" for i in range(1, 4)]  # stream a, versions 1..3
B_IDS = [f"01ARZ3NDEKTSV4RRFFQ69G5B{i:02d}" for i in range(1, 3)]  # stream b, versions 1..2
NEW_ID = "01ARZ3NDEKTSV4RRFFQ69G5N01"
ZERO_DIGEST = bytes(32)

EVENT_ROWS = (
    "SELECT position, event_id, stream_id, version, event_type, payload, metadata, recorded_at, "
    "content_digest FROM event_store ORDER BY position"
)
STREAM_ROWS = (
    "SELECT stream_id, version, metadata, created_at, updated_at FROM stream ORDER BY stream_id"
)
INSERT_COLUMNS = (
    "INSERT INTO event_store (event_id, stream_id, version, event_type, payload, metadata, "
    "content_digest)"
)


def seed(store: evstore.Store) -> None:
    """Five events at positions 1..5: a@1..3, then b@1..2."""
    store.append("a", [E("T", {"i": i}, event_id=x) for i, x in enumerate(A_IDS)],
                 evstore.NO_STREAM)
    store.append("b", [E("U", {"j": i}, {"m": i}, x) for i, x in enumerate(B_IDS)],
                 evstore.NO_STREAM)


def rows(store: evstore.Store) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return store.execute(EVENT_ROWS), store.execute(STREAM_ROWS)


def assert_appends_continue(store: evstore.Store, before: list[tuple[Any, ...]]) -> None:
    """The next append gets the next version of its stream and a position after every stored
    one (PostgreSQL's sequence may skip the values a refused INSERT drew, never reuse one)."""
    top = max(r[0] for r in before)
    recorded = store.append("a", [E("T", {"after": 1}), E("T", {"after": 2})], 3)
    assert [e.version for e in recorded] == [4, 5]
    positions = [e.position for e in recorded]
    assert positions[1] == positions[0] + 1
    if store.dialect == "sqlite":
        assert positions[0] == top + 1
    else:
        assert positions[0] > top
    assert [e.version for e in store.read_stream("a")] == [1, 2, 3, 4, 5]
    assert verify(store).intact


# -- 1. append-only for the table owner ------------------------------------------------------

UPSERT = INSERT_COLUMNS + " VALUES (?, 'a', ?, 'Forged', '{}', '{}', ?) ON CONFLICT "

OWNER_ANY: dict[str, tuple[str, tuple[Any, ...]]] = {
    "update-one": ("UPDATE event_store SET payload = '{\"forged\":true}' WHERE position = 2", ()),
    "update-all": ("UPDATE event_store SET event_type = 'Forged'", ()),
    "update-id": ("UPDATE event_store SET event_id = ? WHERE position = 1", (NEW_ID,)),
    "delete-one": ("DELETE FROM event_store WHERE position = 2", ()),
    "delete-all": ("DELETE FROM event_store", ()),
    "upsert-event-id": (
        UPSERT + "(event_id) DO UPDATE SET payload = excluded.payload, "
        "event_type = excluded.event_type", (A_IDS[0], 4, ZERO_DIGEST)),
    "upsert-stream-version": (
        UPSERT + "(stream_id, version) DO UPDATE SET payload = excluded.payload, "
        "event_id = excluded.event_id", (NEW_ID, 1, ZERO_DIGEST)),
    "stream-rewind": ("UPDATE stream SET version = 1 WHERE stream_id = 'a'", ()),
    "stream-rename": ("UPDATE stream SET stream_id = 'z' WHERE stream_id = 'a'", ()),
    "stream-delete-one": ("DELETE FROM stream WHERE stream_id = 'a'", ()),
    "stream-delete-all": ("DELETE FROM stream", ()),
    "stream-upsert-rewind": (
        "INSERT INTO stream (stream_id, version) VALUES ('a', 1) ON CONFLICT (stream_id) "
        "DO UPDATE SET version = excluded.version", ()),
}

OWNER_PG: dict[str, tuple[str, tuple[Any, ...]]] = {
    "truncate": ("TRUNCATE event_store", ()),
    "truncate-stream": ("TRUNCATE stream CASCADE", ()),
    "truncate-both-cascade": ("TRUNCATE event_store, stream CASCADE", ()),
    "merge-update": (
        "MERGE INTO event_store AS e USING (SELECT 2::bigint AS p) AS s ON e.position = s.p "
        "WHEN MATCHED THEN UPDATE SET event_type = 'Forged'", ()),
    "merge-delete": (
        "MERGE INTO event_store AS e USING (SELECT 2::bigint AS p) AS s ON e.position = s.p "
        "WHEN MATCHED THEN DELETE", ()),
    "merge-stream-delete": (
        "MERGE INTO stream AS t USING (SELECT 'a' AS id) AS s ON t.stream_id = s.id "
        "WHEN MATCHED THEN DELETE", ()),
    "merge-stream-rewind": (
        "MERGE INTO stream AS t USING (SELECT 'a' AS id) AS s ON t.stream_id = s.id "
        "WHEN MATCHED THEN UPDATE SET version = 1", ()),
    "cte-delete": (
        "WITH gone AS (DELETE FROM event_store WHERE position = 1 RETURNING position) "
        "SELECT count(*) FROM gone", ()),
    "insert": (INSERT_COLUMNS + " VALUES (?, 'a', 4, 'T', '{}', '{}', ?)",
               (NEW_ID, digest_of("T", {}, {}))),
    "insert-overriding-far-position": (
        "INSERT INTO event_store (position, event_id, stream_id, version, event_type, payload, "
        "metadata, content_digest) OVERRIDING SYSTEM VALUE "
        "VALUES (1000000, ?, 'a', 4, 'T', '{}', '{}', ?)", (NEW_ID, digest_of("T", {}, {}))),
    "insert-select-copy": (
        "INSERT INTO event_store (event_id, stream_id, version, event_type, payload, metadata, "
        "content_digest) SELECT ?, stream_id, 4, event_type, payload, metadata, content_digest "
        "FROM event_store WHERE position = 1", (NEW_ID,)),
    "merge-insert": (
        "MERGE INTO event_store AS e USING (SELECT 1 AS x) AS s ON false WHEN NOT MATCHED "
        "THEN INSERT (event_id, stream_id, version, event_type, payload, content_digest) "
        "VALUES (?, 'z', 1, 'T', '{}', ?)", (NEW_ID, digest_of("T", {}, {}))),
    "upsert-on-constraint": (
        UPSERT + "ON CONSTRAINT uq_event_store_event_id DO UPDATE SET payload = "
        "excluded.payload", (A_IDS[1], 4, ZERO_DIGEST)),
}

SQLITE_INSERT = INSERT_COLUMNS.replace("INSERT", "{verb}", 1)
POSITIONED = (
    "{verb} INTO event_store (position, event_id, stream_id, version, event_type, payload, "
    "metadata, content_digest) VALUES (?, ?, 'a', ?, 'Forged', '{{}}', '{{}}', ?)"
)

OWNER_SQLITE: dict[str, tuple[str, tuple[Any, ...]]] = {
    "insert-or-replace-event-id": (
        SQLITE_INSERT.format(verb="INSERT OR REPLACE") + " VALUES (?, 'a', 4, 'F', '{}', '{}', ?)",
        (A_IDS[0], ZERO_DIGEST)),
    "replace-into-event-id": (
        SQLITE_INSERT.format(verb="REPLACE") + " VALUES (?, 'b', 3, 'F', '{}', '{}', ?)",
        (A_IDS[1], ZERO_DIGEST)),
    "insert-or-replace-position": (
        POSITIONED.format(verb="INSERT OR REPLACE"), (2, NEW_ID, 4, ZERO_DIGEST)),
    "replace-into-position": (POSITIONED.format(verb="REPLACE"), (5, NEW_ID, 4, ZERO_DIGEST)),
    "insert-or-replace-stream-version": (
        SQLITE_INSERT.format(verb="INSERT OR REPLACE") + " VALUES (?, 'a', 2, 'F', '{}', '{}', ?)",
        (NEW_ID, ZERO_DIGEST)),
    "replace-into-stream-version": (
        SQLITE_INSERT.format(verb="REPLACE") + " VALUES (?, 'a', 1, 'F', '{}', '{}', ?)",
        (NEW_ID, ZERO_DIGEST)),
    "explicit-position-above": (POSITIONED.format(verb="INSERT"), (1000, NEW_ID, 4, ZERO_DIGEST)),
    "explicit-position-below": (POSITIONED.format(verb="INSERT"), (0, NEW_ID, 4, ZERO_DIGEST)),
    "update-or-replace": ("UPDATE OR REPLACE event_store SET position = 1 WHERE position = 2", ()),
    "update-or-replace-id": (
        "UPDATE OR REPLACE event_store SET event_id = ? WHERE position = 2", (A_IDS[0],)),
    "insert-or-replace-stream": (
        "INSERT OR REPLACE INTO stream (stream_id, version) VALUES ('a', 1)", ()),
    "replace-into-stream": ("REPLACE INTO stream (stream_id, version) VALUES ('b', 1)", ()),
    "insert-or-ignore-then-nothing": (
        SQLITE_INSERT.format(verb="INSERT OR IGNORE") + " VALUES (?, 'a', 3, 'F', '{}', '{}', ?)",
        (NEW_ID, ZERO_DIGEST)),
}


def _refused(store: evstore.Store, sql: str, params: tuple[Any, ...]) -> None:
    with pytest.raises(DatabaseError) as caught:
        store.execute(sql, params)
    assert "evstore:" in str(caught.value), sql


@pytest.mark.parametrize("name", sorted(OWNER_ANY))
def test_owner_cannot_rewrite_the_log(store: evstore.Store, name: str) -> None:
    seed(store)
    before = rows(store)
    _refused(store, *OWNER_ANY[name])
    assert rows(store) == before
    assert_appends_continue(store, before[0])


@pytest.mark.postgres
@pytest.mark.parametrize("name", sorted(OWNER_PG))
def test_owner_cannot_rewrite_the_log_postgres(pg_url: str, name: str) -> None:
    with evstore.connect(pg_url) as store:
        store.migrate()
        seed(store)
        before = rows(store)
        _refused(store, *OWNER_PG[name])
        assert rows(store) == before
        assert_appends_continue(store, before[0])


@pytest.fixture(params=["sqlite-file", "sqlite-memory"])
def lite(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[evstore.Store]:
    url = f"sqlite:///{tmp_path}/x.db" if request.param == "sqlite-file" else "sqlite:///:memory:"
    with evstore.connect(url) as store:
        store.migrate()
        yield store


@pytest.mark.parametrize("name", sorted(OWNER_SQLITE))
def test_owner_cannot_rewrite_the_log_sqlite(lite: evstore.Store, name: str) -> None:
    seed(lite)
    before = rows(lite)
    sql, params = OWNER_SQLITE[name]
    _refused(lite, sql, params)  # OR IGNORE too: the guard's RAISE(ABORT) ignores the clause
    assert rows(lite) == before
    assert_appends_continue(lite, before[0])


@pytest.mark.parametrize("position", [1000, 3, 0, -1])
def test_sqlite_explicit_position_is_refused_even_after_moving_the_head(
    lite: evstore.Store, position: int
) -> None:
    """The owner's two-statement forgery: move the head forward as an append does, then insert
    a row that names its own position. Only the position rule stands in the way."""
    seed(lite)
    before = rows(lite)
    with pytest.raises(DatabaseError) as caught, lite.transaction() as tx:
        tx.execute("UPDATE stream SET version = version + 1 WHERE stream_id = 'a'")
        tx.execute(POSITIONED.format(verb="INSERT"), (position, NEW_ID, 4, digest_of(
            "Forged", {}, {})))
    assert "positions are drawn by the database" in str(caught.value)
    assert rows(lite) == before
    assert_appends_continue(lite, before[0])


FORGED_PG = (
    "INSERT INTO event_store (position, event_id, stream_id, version, event_type, payload, "
    "metadata, content_digest) OVERRIDING SYSTEM VALUE "
    "VALUES (?, ?, 'a', 4, 'Forged', '{}', '{}', ?)"
)


def test_owner_forged_insert_is_refused_or_reported_by_verify(
    store: evstore.Store, url: str
) -> None:
    """PostgreSQL refuses the owner's hand-written INSERT unless the owner deliberately sets
    evstore.appending first; SQLite lets an owner who moves the head first insert a row with a
    made-up digest. Either way verify names what the forged row breaks."""
    seed(store)
    if store.dialect == "postgres":
        forged_at = 10**9
        before = rows(store)
        for sql, params in ((FORGED_PG, (forged_at, NEW_ID, ZERO_DIGEST)),
                            (INSERT_COLUMNS + " VALUES (?, 'a', 4, 'T', '{}', '{}', ?)",
                             (NEW_ID, digest_of("T", {}, {})))):
            with pytest.raises(DatabaseError) as caught:
                store.execute(sql, params)
            assert "inserted only by evstore_append()" in str(caught.value)
            assert rows(store) == before
        with psycopg.connect(parse_url(url).conninfo or "", autocommit=True) as conn:
            with conn.transaction():
                conn.execute("SELECT set_config('evstore.appending', 'on', true)")
                conn.execute(FORGED_PG.replace("?", "%s"), (forged_at, NEW_ID, ZERO_DIGEST))
        expected = {("digest", "a", forged_at), ("head", "a", None), ("chain", "a", forged_at)}
    else:
        forged_at = 6
        with store.transaction() as tx:
            tx.execute("UPDATE stream SET version = 4 WHERE stream_id = 'a'")
            tx.execute(INSERT_COLUMNS + " VALUES (?, 'a', 4, 'Forged', '{}', '{}', ?)",
                       (NEW_ID, ZERO_DIGEST))
        expected = {("digest", "a", forged_at), ("chain", "a", forged_at)}
    report = verify(store)
    assert {(f.kind, f.stream_id, f.position) for f in report.findings} == expected
    assert report.events == 6


# -- 2. the application role on PostgreSQL ---------------------------------------------------


def role_url(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@contextmanager
def login_role(url: str, *, grant: bool) -> Iterator[str]:
    """A LOGIN role with a password (given the store's grants or not); its URL. Dropped after."""
    role = f"evstore_it_{uuid.uuid4().hex[:10]}"
    password = "p@ss:w/rd " + uuid.uuid4().hex[:6]
    admin = parse_url(url).conninfo or ""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(password)))
    try:
        if grant:
            assert main(["grant", "--role", role, "--database", url, "--apply"]) == 0
        yield role_url(url, role, password)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for stmt in ("DROP OWNED BY {}", "DROP ROLE {}"):
                conn.execute(psycopg.sql.SQL(stmt).format(psycopg.sql.Identifier(role)))


APPEND_ARGS = "(text, text, bigint, text[], text[], text[], text[], bytea[], integer)"
CALL = "SELECT * FROM evstore_append(?, ?, ?, ?::text[], ?::text[], ?::text[], ?::text[], " \
       "?::bytea[], 1000)"
GOOD_DIGEST = digest_of("T", {}, {})

APP_REFUSED: list[tuple[str, tuple[Any, ...]]] = [
    *((sql, params) for sql, params in OWNER_ANY.values()),
    *((sql, params) for sql, params in OWNER_PG.values()),
    (INSERT_COLUMNS + " VALUES (?, 'a', 4, 'T', '{}', '{}', ?)", (NEW_ID, GOOD_DIGEST)),
    ("INSERT INTO event_store (position, event_id, stream_id, version, event_type, payload, "
     "metadata, content_digest) OVERRIDING SYSTEM VALUE VALUES "
     "(1000000, ?, 'a', 4, 'T', '{}', '{}', ?)", (NEW_ID, GOOD_DIGEST)),
    ("MERGE INTO event_store AS e USING (SELECT 1 AS x) AS s ON false WHEN NOT MATCHED THEN "
     "INSERT (event_id, stream_id, version, event_type, payload, content_digest) "
     "VALUES (?, 'z', 1, 'T', '{}', ?)", (NEW_ID, GOOD_DIGEST)),
    ("INSERT INTO stream (stream_id, version) VALUES ('new', 1)", ()),
    ("UPDATE stream SET version = version + 1", ()),
    ("SELECT setval('event_store_position_seq', 1000000)", ()),
    ("SELECT nextval('event_store_position_seq')", ()),
    ("SELECT position FROM event_store FOR UPDATE", ()),
    ("ALTER TABLE event_store DISABLE TRIGGER USER", ()),
    ("ALTER TABLE stream DISABLE TRIGGER ALL", ()),
    ("ALTER TABLE event_store ALTER COLUMN content_digest DROP NOT NULL", ()),
    ("ALTER SEQUENCE event_store_position_seq RESTART WITH 1", ()),
    ("DROP TRIGGER event_store_reject_update ON event_store", ()),
    ("DROP TABLE event_store", ()),
    ("DROP TABLE stream", ()),
    ("DROP FUNCTION evstore_append" + APPEND_ARGS, ()),
    ("ALTER FUNCTION evstore_append" + APPEND_ARGS + " SECURITY INVOKER", ()),
    ("CREATE OR REPLACE FUNCTION event_store_reject_change() RETURNS trigger "
     "LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'", ()),
    ("CREATE TRIGGER evil BEFORE INSERT ON event_store FOR EACH ROW "
     "EXECUTE FUNCTION event_store_notify()", ()),
    ("COPY event_store (event_id) FROM '/etc/hostname'", ()),
    # evstore_append itself refuses what is not one whole, digested event per element.
    (CALL, ("a", "any", None, [NEW_ID], ["T", "U"], ["{}"], ["{}"], [GOOD_DIGEST])),
    (CALL, ("a", "any", None, [NEW_ID], ["T"], ["{}"], ["{}"], [None])),
    (CALL, ("a", "any", None, [NEW_ID, A_IDS[0][:-1] + "9"], ["T", "T"], ["{}", "{}"],
            ["{}", "{}"], [GOOD_DIGEST, None])),
    (CALL, ("a", "any", None, [], [], [], [], [])),
    (CALL, ("a", "any", None, [NEW_ID], ["T"], ["{}"], ["{}"], [GOOD_DIGEST[:31]])),
    (CALL, ("a", "rewrite", None, [NEW_ID], ["T"], ["{}"], ["{}"], [GOOD_DIGEST])),
    (CALL, ("a", "any", None, [A_IDS[0]], ["T"], ["{}"], ["{}"], [GOOD_DIGEST])),
]


def _collect(tail: evstore.store.Tail, into: list[Any]) -> None:
    try:
        for event in tail:
            into.append(event)
    except Exception as e:  # reported by the test's assertion on what arrived
        into.append(e)


@pytest.mark.postgres
def test_application_role_can_only_append_through_evstore(pg_url: str) -> None:
    with evstore.connect(pg_url) as owner:
        owner.migrate()
        seed(owner)
        start = owner.head_position()
        got: list[evstore.RecordedEvent] = []
        tail = owner.tail(after=start, poll_interval=0.05)
        reader = threading.Thread(target=_collect, args=(tail, got))
        reader.start()
        try:
            with login_role(pg_url, grant=True) as app_url, evstore.connect(app_url) as app:
                before = rows(owner)
                for sql, params in APP_REFUSED:
                    with pytest.raises(DatabaseError) as caught:
                        app.execute(sql, params)
                    message = str(caught.value)
                    assert any(m in message for m in (
                        "permission denied", "must be owner", "evstore:", "violates check",
                        "violates unique", "must be superuser")), (
                        sql, message)
                    assert rows(owner) == before, sql
                app.execute("NOTIFY evstore_event_store")  # a spurious wake-up: no event
                # Temporary tables, and a temporary function, that shadow the log in this
                # session: evstore_append's pinned search_path writes the real tables anyway.
                for name in ("event_store", "stream"):
                    app.execute(f"CREATE TEMP TABLE {name} (LIKE public.{name})")
                assert app.execute("SELECT count(*) FROM event_store") == [(0,)]  # shadowed
                app.execute(
                    "CREATE FUNCTION pg_temp.evstore_append(a text, b text, c bigint, d text[], "
                    "e text[], f text[], g text[], h bytea[], i integer) RETURNS TABLE "
                    "(\"position\" bigint, version bigint, recorded_at timestamptz) "
                    "LANGUAGE sql AS 'SELECT 1::bigint, 1::bigint, now()'")
                real = app.append("a", [E("T", {"by": "app"})], 3)
                real += app.append("c", [E("T", {"by": "app"})], evstore.NO_STREAM)
                assert [(e.stream_id, e.version) for e in real] == [("a", 4), ("c", 1)]
                assert real[0].position > start and real[1].position == real[0].position + 1
            with login_role(pg_url, grant=False) as stranger_url, \
                    evstore.connect(stranger_url) as stranger:
                with pytest.raises(DatabaseError) as caught:
                    stranger.append("a", [E("T", {})])
                assert "permission denied for function evstore_append" in str(caught.value)
            last = owner.append("b", [E("U", {"by": "owner"})], 2)
            stored = owner.read_all(after=start)
            assert [(e.stream_id, e.version) for e in stored] == [("a", 4), ("c", 1), ("b", 3)]
            assert [e.event_id for e in stored] == [e.event_id for e in real + last]
            for _ in range(600):  # until the tail has caught up (or stopped, or 30 s)
                if len(got) >= len(stored) or not reader.is_alive():
                    break
                reader.join(0.05)
        finally:
            tail.stop()
            reader.join(30)
        assert [(e.position, e.event_id, e.content_digest) for e in got] == [
            (e.position, e.event_id, e.content_digest) for e in stored]
        assert rows(owner)[0][:5] == before[0]
        report = verify(owner)
        assert report.intact, report.findings
        assert report.events == 8 and report.streams == 3


@pytest.mark.postgres
def test_application_role_forged_digest_is_stored_but_verify_names_it(pg_url: str) -> None:
    """evstore_append cannot recompute a digest (it is defined over Python's canonical JSON),
    so a role calling it directly can store a wrong one; verify then names that event."""
    with evstore.connect(pg_url) as owner:
        owner.migrate()
        seed(owner)
        with login_role(pg_url, grant=True) as app_url, evstore.connect(app_url) as app:
            (position, version, _), = app.execute(
                CALL, ("a", "exact", 3, [NEW_ID], ["T"], ['{"x": 1}'], ["{}"], [ZERO_DIGEST]))
        assert version == 4
        report = verify(owner)
        assert [(f.kind, f.stream_id, f.position) for f in report.findings] == [
            ("digest", "a", position)]


# -- 3. content digests ----------------------------------------------------------------------

TRICKY: list[Any] = [
    {"text": "żółw 🐢 \u2028 \"quoted\" \\ back", "e+": "1e+16", "neg": "-0.0"},
    {1: "one", 2: "two", 10: "ten", -1: "minus"},
    {"floats": [1e16, 1.5e300, -0.0, 0.1, 1e-7, 5e-324, 123456789.125, -1.5e16]},
    {"big": 2**70, "neg": -(2**70), "edge": 2**63, "small": -(2**63)},
    {"empty": [{}, [], "", {"": []}]},
    {"nested": {"z": {"b": 1, "a": [True, False, None]}, "a": 0.0}},
    [],
    "plain string with e+5 and -0.0",
    1e16,
    -0.0,
    None,
]
META: list[dict[str, Any]] = [
    {}, {"trace": "t", "n": 1e16}, {"user": {"id": 2**70}}, {"\u00e9": -0.0}, {}, {"k": []},
    {}, {}, {"z": 1, "a": 2}, {}, {},
]
TRICKY_IDS = [f"01ARZ3NDEKTSV4RRFFQ69G5T{i:02d}" for i in range(len(TRICKY))]


def _tricky_events() -> list[NewEvent]:
    return [E(f"Type{i}", d, m, x) for i, (d, m, x) in enumerate(zip(TRICKY, META, TRICKY_IDS,
                                                                     strict=True))]


@pytest.mark.postgres
def test_content_digests_are_identical_on_sqlite_and_postgres(pg_url: str) -> None:
    digests: dict[str, list[bytes | None]] = {}
    for url in ("sqlite:///:memory:", pg_url):
        with evstore.connect(url) as store:
            store.migrate()
            recorded = store.append("s", _tricky_events())
            read = store.read_all()
            assert [e.event_id for e in read] == TRICKY_IDS
            assert [e.content_digest for e in read] == [e.content_digest for e in recorded]
            for event in read + [store.get_event(x) for x in TRICKY_IDS]:  # type: ignore[misc]
                assert event.content_digest is not None and len(event.content_digest) == 32
                assert digest_of(event.type, event.data, event.metadata) == event.content_digest
            assert [e.data for e in read][3] == TRICKY[3]  # 2**70 and friends read back equal
            digests[store.dialect] = [e.content_digest for e in read]
            assert verify(store).intact
    assert digests["sqlite"] == digests["postgres"]
    assert len(set(digests["sqlite"])) == len(TRICKY)


def test_idempotent_retry_and_changed_content(store: evstore.Store) -> None:
    first = store.append("s", _tricky_events(), evstore.NO_STREAM)
    before = rows(store)
    again = store.append("s", _tricky_events(), evstore.NO_STREAM)
    assert [(e.position, e.version, e.content_digest) for e in again] == [
        (e.position, e.version, e.content_digest) for e in first]
    # Key order and a float spelled as PostgreSQL keeps it are the same content.
    reordered = [E("Type5", {"nested": {"a": 0.0, "z": {"a": [True, False, None], "b": 1}}},
                   META[5], TRICKY_IDS[5])]
    assert store.append("s", reordered)[0].position == first[5].position
    changes = [
        E("Type2", {"floats": [1e16, 1.5e300, -0.0, 0.1, 1e-7, 5e-324, 123456789.125, 1.5e16]},
          META[2], TRICKY_IDS[2]),
        E("Other", TRICKY[2], META[2], TRICKY_IDS[2]),
        E("Type2", TRICKY[2], {"trace": "other"}, TRICKY_IDS[2]),
    ]
    for changed in changes:
        with pytest.raises(evstore.DuplicateEventId) as caught:
            store.append("s", [changed])
        assert TRICKY_IDS[2] in str(caught.value) and "other content" in str(caught.value)
        assert caught.value.event_ids == [TRICKY_IDS[2]]
        with pytest.raises(evstore.DuplicateEventId) as caught:
            store.append("s", [*_tricky_events()[:2], changed], evstore.NO_STREAM)
        assert caught.value.event_ids == [TRICKY_IDS[2]]
    assert rows(store) == before


# -- 4. get_event and read --event-id --------------------------------------------------------


def test_get_event(store: evstore.Store) -> None:
    seed(store)
    found = store.get_event(B_IDS[1])
    assert found is not None
    assert (found.position, found.stream_id, found.version, found.type, found.data,
            found.metadata) == (5, "b", 2, "U", {"j": 1}, {"m": 1})
    assert found.content_digest == digest_of("U", {"j": 1}, {"m": 1})
    lower = store.get_event(A_IDS[0].lower())
    assert lower is not None and lower.event_id == A_IDS[0]
    assert store.get_event(NEW_ID) is None
    for bad in ("nope", "", A_IDS[0] + "0", "8" + A_IDS[0][1:], "I" * 26, 42, None):
        with pytest.raises(InvalidInput):
            store.get_event(bad)  # type: ignore[arg-type]


def test_cli_read_event_id(file_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with evstore.connect(file_url) as store:
        store.migrate()
        seed(store)
    capsys.readouterr()
    assert main(["read", "--database", file_url, "--event-id", A_IDS[1], "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(p["event_id"], p["stream_id"], p["version"], p["data"]) for p in printed] == [
        (A_IDS[1], "a", 2, {"i": 1})]
    assert main(["read", "--database", file_url, "--event-id", A_IDS[2]]) == 0
    assert capsys.readouterr().out.split()[:3] == ["3", "a@3", "T"]
    assert main(["read", "--database", file_url, "--event-id", NEW_ID]) == 1
    out = capsys.readouterr()
    assert out.out == "" and f"no event with id {NEW_ID}" in out.err
    assert main(["read", "--database", file_url, "--event-id", "not-a-ulid"]) == 2
    assert "not a ULID" in capsys.readouterr().err


# -- 5. verify -------------------------------------------------------------------------------

_TRIGGER = re.compile(r"CREATE TRIGGER (\w+)\b.*?\nEND;", re.DOTALL)


def _migration_triggers() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((SQL / "sqlite").glob("0*.sql")):
        if not path.name.endswith(".rollback.sql"):
            for match in _TRIGGER.finditer(path.read_text()):
                found[match.group(1)] = match.group(0)
    return found


def tamper(store: evstore.Store, url: str, *statements: str) -> None:
    """Change the log behind evstore's back, as a superuser with the guards switched off."""
    if store.dialect == "postgres":
        with psycopg.connect(parse_url(url).conninfo or "", autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            for stmt in statements:
                conn.execute(stmt)
        return
    triggers = _migration_triggers()
    installed = {name for (name,) in store.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    guards = sorted(installed & set(triggers))
    assert {"event_store_reject_update", "event_store_reject_delete",
            "stream_reject_rewind"} <= set(guards)
    for name in guards:
        store.execute(f"DROP TRIGGER {name}")
    try:
        for stmt in statements:
            store.execute(stmt)
    finally:
        for name in guards:
            store.execute(triggers[name])
    assert {name for (name,) in store.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'")} == installed


def _cli_verify(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Any]:
    capsys.readouterr()
    code = main(["verify", "--database", url])
    text = capsys.readouterr().out
    assert main(["verify", "--database", url, "--json"]) == code
    return code, text, json.loads(capsys.readouterr().out)


def test_verify_names_exactly_the_changed_event(
    store: evstore.Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(store)
    report = verify(store)
    assert report.intact and (report.events, report.streams, report.legacy) == (5, 2, 0)
    if not store.url.is_memory:
        code, text, data = _cli_verify(url, capsys)
        assert code == 0 and "intact" in text and data["intact"] is True
    literal = "'{\"i\": 99}'" if store.dialect == "postgres" else "'{\"i\":99}'"
    tamper(store, url, f"UPDATE event_store SET payload = {literal} WHERE position = 2")
    assert store.read_stream("a")[1].data == {"i": 99}
    report = verify(store)
    assert [(f.kind, f.stream_id, f.position) for f in report.findings] == [("digest", "a", 2)]
    assert "position 2" in report.findings[0].message
    if not store.url.is_memory:
        code, text, data = _cli_verify(url, capsys)
        assert code == 1 and "event at position 2 " in text and "1 finding(s)" in text
        assert data["intact"] is False and data["events"] == 5
        assert [(f["kind"], f["position"]) for f in data["findings"]] == [("digest", 2)]


def test_verify_reports_a_deleted_event_and_moved_heads(
    store: evstore.Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(store)
    tamper(store, url, "DELETE FROM event_store WHERE position = 2")
    report = verify(store)
    # The chain breaks at the event after the deleted one (position 3, stream a).
    assert [(f.kind, f.position) for f in report.findings] == [("chain", 3), ("versions", None)]
    assert report.findings[1] == Finding(
        "versions", "a", None,
        "stream 'a': versions are not 1..n (or 0..n) without gaps (2 events, versions 1 to 3)")
    assert "does not follow from the event before it" in report.findings[0].message
    # The owner may move a head forward without any guard; verify sees it.
    store.execute("UPDATE stream SET version = 9 WHERE stream_id = 'b'")
    tamper(store, url, "UPDATE stream SET version = 1 WHERE stream_id = 'a'")
    report = verify(store)
    assert [(f.kind, f.stream_id) for f in report.findings] == [
        ("chain", "a"), ("head", "a"), ("head", "b"), ("versions", "a")]
    assert "head says version 9, but the log has last event at version 2" in str(
        report.findings[2])
    if not store.url.is_memory:
        code, text, data = _cli_verify(url, capsys)
        assert code == 1 and "4 finding(s)" in text
        assert sorted(f["kind"] for f in data["findings"]) == [
            "chain", "head", "head", "versions"]


def test_verify_reports_a_missing_digest_and_a_swapped_order(
    store: evstore.Store, url: str
) -> None:
    seed(store)
    store.append("a", [E("T", {"i": 3})])  # a@4 at position 6
    tamper(store, url, "UPDATE event_store SET content_digest = NULL WHERE position = 4",
           "UPDATE event_store SET version = 10 WHERE position = 2",
           "UPDATE event_store SET version = 2 WHERE position = 6",
           "UPDATE event_store SET version = 4 WHERE position = 2")
    report = verify(store)
    # Versions are part of each chain link, so the changed versions break it too.
    assert [(f.kind, f.stream_id, f.position) for f in report.findings] == [
        ("chain", "a", 2), ("chain", "a", 6), ("chain", "b", 4),
        ("digest-missing", "b", 4), ("position-order", "a", 2), ("position-order", "a", 3)]


# -- 6. limits -------------------------------------------------------------------------------


def nested(levels: int) -> Any:
    value: Any = []
    for i in range(levels - 1):
        value = [value] if i % 2 else {"k": value}
    return value


def test_depth_limit(store: evstore.Store) -> None:
    store.append("s", [E("T", {})])
    for bad in (lambda: store.append("s", [E("T", nested(201))]),
                lambda: store.append("s", [E("T", {}, {"m": nested(200)})]),
                lambda: store.save_snapshot("s", 1, nested(201))):
        with pytest.raises(InvalidInput) as caught:
            bad()
        assert "nested more than 200 levels" in str(caught.value)
    assert store.stream_version("s") == 1 and store.load_snapshot("s") is None
    deep = nested(200)
    recorded = store.append("s", [E("T", deep, {"m": nested(199)})])
    assert store.read_stream("s", 2)[0].data == deep
    assert store.get_event(recorded[0].event_id).metadata == {"m": nested(199)}  # type: ignore
    store.save_snapshot("s", 2, deep)
    assert store.load_snapshot("s").state == deep  # type: ignore[union-attr]
    assert verify(store).intact


def test_document_size_limit(store: evstore.Store) -> None:
    huge = "x" * (16 * 1024 * 1024)
    for bad in (lambda: store.append("s", [E("T", huge)]),
                lambda: store.append("s", [E("T", {}, {"m": huge})])):
        with pytest.raises(InvalidInput) as caught:
            bad()
        assert "16,777,216 bytes" in str(caught.value)
    store.append("s", [E("T", {})])
    with pytest.raises(InvalidInput):
        store.save_snapshot("s", 1, [huge])
    assert len(store.read_all()) == 1 and store.load_snapshot("s") is None
    fits = "y" * (16 * 1024 * 1024 - 2)  # with its two quotes, exactly the limit
    store.append("s", [E("T", fits)])
    assert store.read_stream("s", 2)[0].data == fits


@pytest.mark.parametrize("where, args", [
    ("events[0].data", ("s", [E("T", {"k": ["ok", "\ud800"]})])),
    ("events[1].metadata", ("s", [E("T", {}), E("T", {}, {"\udc00": 1})])),
    ("events[0].metadata", ("s", [E("T", {}, {"k": "a\udfffb"})])),
    ("events[0].type", ("s", [E("T\ud800", {})])),
    ("stream_id", ("s\udbff", [E("T", {})])),
])
def test_lone_surrogates_are_refused(store: evstore.Store, where: str, args: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        store.append(*args)
    assert str(caught.value).startswith(f"{where} contains a lone surrogate")
    assert store.read_all() == [] and store.stream_version("s") is None
    with pytest.raises(InvalidInput, match="lone surrogate"):
        store.save_snapshot("s", 1, {"\ud800": 1})


def test_integers_beyond_64_bits(store: evstore.Store) -> None:
    big = 2**63
    store.append("s", [E("T", {})])
    calls = {
        "after": lambda: store.read_all(after=big),
        "limit": lambda: store.read_all(limit=big),
        "from_version": lambda: store.read_stream("s", from_version=big),
        "limit ": lambda: store.read_stream("s", limit=big),
        "expected_version": lambda: store.append("s", [E("T", {})], big),
        "after  ": lambda: store.tail(after=big),
        "page_size": lambda: store.tail(page_size=big),
        "position": lambda: store.save_checkpoint("c", big),
        "version": lambda: store.save_snapshot("s", big, {}),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidInput) as caught:
            call()
        assert str(caught.value).startswith(name.strip()), str(caught.value)
        assert "2**63 - 1" in str(caught.value)
    assert store.read_all(after=big - 1) == []
    assert [e.version for e in store.read_stream("s", limit=big - 1)] == [1]
    assert len(store.read_all()) == 1 and store.checkpoint("c") == 0
    data = {"n": 2**70, "m": -(2**70), "list": [2**63, 2**64 + 1], "f": 1.5}
    recorded = store.append("s", [E("T", data, {"id": 2**70})])
    back = store.get_event(recorded[0].event_id)
    assert back is not None and back.data == data and back.metadata == {"id": 2**70}
    assert type(back.data["n"]) is int
    assert verify(store).intact


# -- 7. lock timeout -------------------------------------------------------------------------


@pytest.mark.postgres
def test_append_lock_timeout_postgres(pg_url: str) -> None:
    with evstore.connect(pg_url) as a, evstore.connect(pg_url, lock_timeout=0.5) as b:
        a.migrate()
        with a.transaction() as tx:
            held = tx.append("x", [E("T", {"by": "a"})])
            for stream in ("y", "x"):  # the append lock, then the stream row as well
                with pytest.raises(AppendLockTimeout) as caught:
                    b.append(stream, [E("T", {"by": "b"})])
                message = str(caught.value)
                assert "append lock" in message and "pg_advisory_xact_lock(1702261620)" in message
                assert "within 0.5s" in message and isinstance(caught.value, DatabaseError)
        assert b.stream_version("y") is None
        assert [e.event_id for e in b.read_all()] == [held[0].event_id]
        later = b.append("y", [E("T", {"by": "b"})])
        assert later[0].version == 1 and later[0].position > held[0].position
        assert verify(b).intact


def test_append_lock_timeout_sqlite(sqlite_url: str) -> None:
    with evstore.connect(sqlite_url) as store:
        store.migrate()
        store.append("x", [E("T", {})])
    holder = sqlite3.connect(parse_url(sqlite_url).sqlite_path or "", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with evstore.connect(sqlite_url, lock_timeout=0.3) as b:
            with pytest.raises(AppendLockTimeout) as caught:
                b.append("y", [E("T", {})])
            assert "write lock" in str(caught.value) and "0.3s" in str(caught.value)
            holder.execute("ROLLBACK")
            assert [e.stream_id for e in b.read_all()] == ["x"]
            assert b.stream_version("y") is None
            assert b.append("y", [E("T", {})])[0].position == 2
    finally:
        holder.close()


@pytest.mark.parametrize("data", [{1: "a", "1": "b"}, {None: 1, "null": 2}, {True: 1, "true": 2}])
def test_keys_that_collide_as_json_are_refused_not_dropped(
    store: evstore.Store, data: dict[Any, Any]
) -> None:
    """JSON object keys are strings: 1 and "1" become the same key. Keeping one value and
    silently dropping the other is data loss; the append should be refused instead."""
    with pytest.raises(InvalidInput):
        store.append("s", [E("T", data)])
    assert store.read_all() == []
    store.append("s", [E("T", {1: "a", "b": 2})])  # mixed key types that do not collide
    assert store.read_all()[0].data == {"1": "a", "b": 2}


def test_verify_finds_an_event_hidden_below_position_1(store: evstore.Store, url: str) -> None:
    """A row at position -1 is invisible to read_all, iter_all and every tail (they read
    position > after >= 0). SQLite refuses it (event_store_check_position), so putting one
    there takes dropping that trigger; on PostgreSQL it takes a deliberate evstore.appending.
    verify must still find it: it is the one tool meant to."""
    seed(store)
    hidden = (INSERT_COLUMNS.replace("(event_id", "(position, event_id", 1)
              + " VALUES (-1, ?, 'hidden', 1, 'Forged', '{\"x\": 1}', '{}', ?)")
    if store.dialect == "postgres":
        hidden = hidden.replace(") VALUES", ") OVERRIDING SYSTEM VALUE VALUES", 1)
        with psycopg.connect(parse_url(url).conninfo or "", autocommit=True) as conn:
            with conn.transaction():
                conn.execute("SELECT set_config('evstore.appending', 'on', true)")
                conn.execute("INSERT INTO stream (stream_id, version) VALUES ('hidden', 1)")
                conn.execute(hidden.replace("?", "%s"), (NEW_ID, ZERO_DIGEST))
    else:
        with pytest.raises(evstore.AppendOnlyViolation, match="positions are drawn"):
            with store.transaction() as tx:
                tx.execute("INSERT INTO stream (stream_id, version) VALUES ('hidden', 1)")
                tx.execute(hidden, (NEW_ID, ZERO_DIGEST))
        assert store.stream_version("hidden") is None
        store.execute("DROP TRIGGER event_store_check_position")  # as a superuser would
        with store.transaction() as tx:
            tx.execute("INSERT INTO stream (stream_id, version) VALUES ('hidden', 1)")
            tx.execute(hidden, (NEW_ID, ZERO_DIGEST))
    assert [e.position for e in store.read_stream("hidden")] == [-1]
    assert len(store.read_all()) == 5  # no reader sees it
    report = verify(store)
    kinds = {(f.kind, f.stream_id, f.position) for f in report.findings}
    assert ("position", "hidden", -1) in kinds and ("digest", "hidden", -1) in kinds
    assert report.events == 6


# -- 7. the hash chain -----------------------------------------------------------------------


def _chain(store: evstore.Store) -> list[tuple[int, bytes]]:
    return [(int(p), bytes(c)) for p, c in store.execute(
        "SELECT position, chain_digest FROM event_store ORDER BY position")]


@pytest.mark.postgres
def test_the_chain_is_identical_on_both_dialects_and_links_every_event(sqlite_url: str,
                                                                       pg_url: str) -> None:
    chains = []
    for url in (sqlite_url, pg_url):
        with evstore.connect(url) as store:
            store.migrate()
            seed(store)
            with store.transaction() as tx:
                tx.append("c", [E("V", {"k": 1.5e300, "n": [1, {"x": None}]}, event_id=NEW_ID)])
                tx.append("a", [E("T", {"i": "é"}, event_id="01ARZ3NDEKTSV4RRFFQ69G5FBC")], 3)
            chain = _chain(store)
            previous = b""
            for event, (position, link) in zip(store.read_all(), chain, strict=True):
                assert event.position == position
                previous = evstore.events.chain_link(
                    previous, event.content_digest or b"", event.event_id, event.version,
                    event.stream_id)
                assert link == previous
            report = verify(store)
            assert report.intact and report.chain_head == chain[-1][1]
            chains.append(chain)
    assert chains[0] == chains[1] and len(chains[0]) == 7


@pytest.mark.postgres
def test_evstore_append_refuses_isolation_levels_that_would_fork_the_chain(pg_url: str) -> None:
    with evstore.connect(pg_url) as store:
        store.migrate()
        seed(store)
        with psycopg.connect(parse_url(pg_url).conninfo or "") as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            with pytest.raises(psycopg.errors.InvalidTransactionState, match="READ COMMITTED"):
                conn.execute(
                    "SELECT * FROM evstore_append('x', 'any', NULL, ARRAY[%s], ARRAY['T'], "
                    "ARRAY['{}'], ARRAY['{}'], ARRAY[%s::bytea], 1000)", (NEW_ID, GOOD_DIGEST))
        assert verify(store).intact and store.head_position() == 5
