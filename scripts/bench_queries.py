"""Time the append path's statements run from sql/queries: through evstore's own loader, and
through aiosql's query functions when aiosql is installed (it is not a dependency).

SQLite :memory:, one event per append: BEGIN IMMEDIATE, the head UPDATE, the one-row INSERT,
COMMIT. PostgreSQL, 100 events per append: the evstore_append() call. Each figure is the
minimum over --repeat runs of --number appends, per append.
"""

from __future__ import annotations

import argparse
import logging
import re
import sqlite3
import timeit
import uuid
from collections.abc import Callable
from typing import Any

from ulid import ULID

import evstore
from evstore import NewEvent
from evstore.dialects import queries
from evstore.events import encode_events
from evstore.urls import parse_url

PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _blocks(dialect: str) -> str:
    """The file from its first block on: aiosql reads `-- name:` in the header as a block."""
    text = queries.queries_file(dialect).read_text(encoding="utf-8")  # type: ignore[arg-type]
    return text[re.search(r"^-- name:", text, re.MULTILINE).start():]  # type: ignore[union-attr]


def _best(run: Callable[[], Any], number: int, repeat: int) -> float:
    return min(timeit.repeat(run, number=number, repeat=repeat)) / number


def sqlite_loops(number: int, repeat: int) -> dict[str, float]:
    store = evstore.connect("sqlite:///:memory:")
    store.migrate()
    conn: sqlite3.Connection = store._live().conn  # type: ignore[attr-defined]
    store.append("s", [NewEvent("T", {"n": 0})])
    sql = queries.sql("sqlite")
    insert = queries.load("sqlite")["sqlite_insert_event"].repeated_rows(1)
    event = encode_events("s", [NewEvent("T", {"n": 1, "text": 'a "quoted" word'})])[0]

    def ours() -> None:
        conn.execute(sql["sqlite_begin"])
        head = conn.execute(sql["sqlite_head_any"], {"count": 1, "stream_id": "s"}).fetchone()
        conn.execute(insert, (str(ULID()), "s", head[0], event.type,
                              event.payload, event.metadata, event.digest)).fetchall()
        conn.execute(sql["sqlite_commit"])

    out = {"loader": _best(ours, number, repeat)}
    try:
        import aiosql
    except ImportError:
        return out
    aq = aiosql.from_str(_blocks("sqlite"), "sqlite3", mandatory_parameters=False)

    def theirs() -> None:
        conn.execute(sql["sqlite_begin"])  # aiosql runs no transaction control itself
        head = next(iter(aq.sqlite_head_any(conn, count=1, stream_id="s")))
        list(aq.sqlite_insert_event(
            conn, event_id=str(ULID()), stream_id="s", version=head[0],
            event_type=event.type, payload=event.payload, metadata=event.metadata,
            content_digest=event.digest))
        conn.execute(sql["sqlite_commit"])

    out["aiosql"] = _best(theirs, number, repeat)
    return out


def postgres_loops(dsn: str, number: int, repeat: int) -> dict[str, float]:
    import psycopg

    name = "evstore_bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    out = {}
    try:
        url = parse_url(dsn).with_database(name).url
        with evstore.connect(url) as store:
            store.migrate()
            conn = store._live().conn  # type: ignore[attr-defined]
            events = encode_events("s", [NewEvent("T", {"n": i, "text": 'a "quoted" word'})
                                         for i in range(100)])
            sql = queries.sql("postgres")["postgres_append"]

            def params() -> dict[str, Any]:
                return {"stream_id": uuid.uuid4().hex, "kind": "any", "expected": None,
                        "event_ids": [str(ULID()) for _ in events],
                        "event_types": [e.type for e in events],
                        "payloads": [e.payload for e in events],
                        "metadata": [e.metadata for e in events],
                        "digests": [e.digest for e in events], "lock_timeout_ms": 5000}

            out["loader"] = _best(
                lambda: conn.execute(sql, params(), binary=True).fetchall(), number, repeat)
            try:
                import aiosql
            except ImportError:
                return out
            aq = aiosql.from_str(_blocks("postgres"), "psycopg",
                                 mandatory_parameters=False)
            out["aiosql"] = _best(lambda: list(aq.postgres_append(conn, **params())),
                                  number, repeat)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=PG, help="server DSN (a scratch database is made)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--repeat", type=int, default=7, help="runs; the minimum counts")
    args = parser.parse_args()
    logging.getLogger("aiosql").setLevel(logging.ERROR)  # "may not be a select" notes
    for what, value in sqlite_loops(2000, args.repeat).items():
        print(f"sqlite :memory: 1-event append, {what:6}: {value * 1e6:8.2f} us")
    if not args.no_postgres:
        for what, value in postgres_loops(args.postgres, 30, args.repeat).items():
            print(f"postgres 100-event append,     {what:6}: {value * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
