"""Price one part of the append path: run N batch appends (W1's events, 100 per append) on a
variant of the schema and print what they cost, for the decision tables of the performance
section (docs-draft/performance.md says which command gave which figure).

  sqlite VARIANT    evstore's SQLite append (backend.append on pre-encoded events, or the
                    whole store.append with --whole) on the schema with one part removed or
                    changed; prints CPU µs per event and WAL frames per commit, and, with
                    --pages, which b-tree each WAL frame of the last appends belongs to.
  encode            encode_events alone (validation, canonical JSON, content digest).
  postgres VARIANT  evstore.append on a scratch database of --pg-dsn with an index changed;
                    prints wall ms per append and the server's own time for evstore_append()
                    when pg_stat_statements is loaded (tests/pg_server.py can start such a
                    server).

CPU time on a shared machine is noisy. For instruction counts that do not depend on the load,
run the same command under callgrind twice, with --appends 0 and --appends N, and divide the
difference by N * 100 (the events of N appends):

  valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
      python scripts/bench_append.py sqlite base --appends 20 --synchronous OFF
"""

from __future__ import annotations

import argparse
import collections
import random
import shutil
import struct
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ulid import ULID

import evstore
from evstore import NewEvent
from evstore.events import encode_events
from evstore.schema.migrations import shipped_sql_dir
from evstore.urls import parse_url

JSON_CHECKS = (
    "    CONSTRAINT ck_event_store_payload_json CHECK (json_valid(payload)),\n"
    "    CONSTRAINT ck_event_store_metadata_json CHECK (json_valid(metadata))"
)
# name: (edits of the migration files (file, old text, new text), statements run after migrate)
SQLITE_VARIANTS: dict[str, tuple[list[tuple[str, str, str]], list[str]]] = {
    "base": ([], []),
    "no_type_index": ([], ["DROP INDEX ix_event_store_event_type_position"]),
    "no_check_insert": ([], ["DROP TRIGGER event_store_check_insert"]),
    "no_check_position": ([], ["DROP TRIGGER event_store_check_position"]),
    "no_stream_check_insert": ([], ["DROP TRIGGER stream_check_insert"]),
    "no_json_check": ([("0001_event_store.sql", JSON_CHECKS, JSON_CHECKS.replace(
        "json_valid(payload)", "1").replace("json_valid(metadata)", "1"))], []),
    "no_autoincrement": (
        [("0001_event_store.sql", "PRIMARY KEY AUTOINCREMENT", "PRIMARY KEY")], []),
}
PG_VARIANTS: dict[str, list[str]] = {
    "base": [],
    "no_gin": ["DROP INDEX ix_event_store_payload_gin", "DROP INDEX ix_event_store_metadata_gin"],
    "gin_fastupdate_off": [
        "ALTER INDEX ix_event_store_payload_gin SET (fastupdate = off)",
        "ALTER INDEX ix_event_store_metadata_gin SET (fastupdate = off)",
    ],
    "no_type_index": ["DROP INDEX ix_event_store_event_type_position"],
}


EVENT_TYPES = ("OrderPlaced", "ItemAdded", "ItemRemoved", "PaymentCaptured", "OrderShipped")


@dataclass
class Batch:
    stream: str


def new_event(rng: random.Random, seq: int) -> NewEvent:
    """An event shaped as scripts/bench.py's W1 events: a 209-byte payload with a nested
    object and a 122-byte metadata object."""
    data = {
        "order_id": f"ord-{rng.randrange(10**9):09d}",
        "customer": {
            "id": f"cus-{rng.randrange(10**6):06d}",
            "name": rng.choice(["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra"]),
            "tier": rng.choice(["gold", "silver", "bronze"]),
        },
        "sku": f"SKU-{rng.randrange(10**5):05d}",
        "quantity": rng.randrange(1, 20),
        "amount": round(rng.uniform(1, 5000), 2),
        "currency": "EUR",
        "note": "deliver to the side door, ring twice",
    }
    metadata = {
        "correlation_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "user": f"user-{rng.randrange(10**4):04d}",
        "source": "bench",
        "schema": 3,
        "ip": "192.0.2.17",
    }
    return NewEvent(EVENT_TYPES[seq % len(EVENT_TYPES)], data, metadata, str(ULID()))


def events(appends: int) -> tuple[list[Batch], list[list[NewEvent]]]:
    """appends + 1 batches of 100 events, each to a new stream (the first one warms up)."""
    rng = random.Random(1)
    batches = [Batch(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
               for _ in range(appends + 1)]
    return batches, [[new_event(rng, i * 100 + k) for k in range(100)]
                     for i in range(appends + 1)]


def sqlite_folder(variant: str, into: Path) -> Path:
    folder = into / "sqlite"
    shutil.copytree(shipped_sql_dir() / "sqlite", folder)
    for name, old, new in SQLITE_VARIANTS[variant][0]:
        path = folder / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new))
    (folder / "evstore.sum").unlink(missing_ok=True)  # a changed folder has other sums
    return folder


def wal_frames(path: Path, page_size: int) -> list[int]:
    """The page number of every frame in a WAL file."""
    data = path.read_bytes()
    return [struct.unpack(">I", data[at:at + 4])[0]
            for at in range(32, len(data) - 24, 24 + page_size)]


def run_sqlite(args: argparse.Namespace) -> None:
    batches, news = events(args.appends)
    encoded = [encode_events(b.stream, n) for b, n in zip(batches, news, strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        store = evstore.connect(f"sqlite:///{db}", migrations_dir=sqlite_folder(args.variant,
                                                                               Path(tmp)))
        store.migrate()
        backend: Any = store._live()  # the dialect's own append, timed alone
        conn = backend.conn
        for statement in SQLITE_VARIANTS[args.variant][1]:
            conn.execute(statement)
        conn.execute(f"PRAGMA synchronous = {args.synchronous}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # every frame stays in the WAL to count
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        backend.append(batches[0].stream, encoded[0], evstore.NO_STREAM)  # warm up
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        start = time.process_time()
        for i in range(1, args.appends + 1):
            if args.whole:
                store.append(batches[i].stream, news[i], evstore.NO_STREAM)
            else:
                backend.append(batches[i].stream, encoded[i], evstore.NO_STREAM)
        cpu = time.process_time() - start
        frames = wal_frames(Path(f"{db}-wal"), page_size)
        owner = dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
        store.close()
    n = max(args.appends, 1)
    print(f"sqlite {args.variant}: {cpu / n / 100 * 1e6:.2f} µs CPU per event, "
          f"{len(frames) / n:.1f} WAL frames per commit ({page_size}-byte pages)")
    if args.pages:
        for name, count in collections.Counter(owner.get(p, "(new page)")
                                               for p in frames).most_common():
            print(f"  {name:40s} {count / n:6.2f} frames per commit")


def run_encode(args: argparse.Namespace) -> None:
    batches, news = events(args.appends)
    start = time.process_time()
    for i in range(1, args.appends + 1):
        encode_events(batches[i].stream, news[i])
    cpu = time.process_time() - start
    print(f"encode: {cpu / max(args.appends, 1) / 100 * 1e6:.2f} µs CPU per event")


def run_postgres(args: argparse.Namespace) -> None:
    import psycopg

    batches, news = events(args.appends)
    server = parse_url(args.pg_dsn)
    assert server.conninfo is not None
    name = "evstore_bench_append_" + uuid.uuid4().hex[:8]
    with psycopg.connect(server.conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            dsn = _with_database(args.pg_dsn, name)
            with evstore.connect(dsn) as store, psycopg.connect(
                parse_url(dsn).conninfo or "", autocommit=True
            ) as conn:
                store.migrate()
                for statement in PG_VARIANTS[args.variant]:
                    conn.execute(statement)
                stats = conn.execute(
                    "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
                ).fetchone() is not None
                if stats:
                    conn.execute("SELECT pg_stat_statements_reset()")
                store.append(batches[0].stream, news[0], evstore.NO_STREAM)
                start = time.perf_counter()
                for i in range(1, args.appends + 1):
                    store.append(batches[i].stream, news[i], evstore.NO_STREAM)
                wall = time.perf_counter() - start
                server_ms = None
                if stats:
                    row = conn.execute(
                        "SELECT sum(total_exec_time) FROM pg_stat_statements "
                        "WHERE query LIKE '%FROM evstore_append(%'").fetchone()
                    server_ms = row[0] / (args.appends + 1) if row and row[0] else None
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    n = max(args.appends, 1)
    line = f"postgres {args.variant}: {wall / n * 1e3:.2f} ms per append (wall)"
    if server_ms is not None:
        line += f", evstore_append() {server_ms:.2f} ms on the server"
    print(line)


def _with_database(dsn: str, name: str) -> str:
    """The DSN with another database, the rest kept (parsed, never pasted)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    lite = sub.add_parser("sqlite", help="the SQLite append on a schema variant")
    lite.add_argument("variant", choices=sorted(SQLITE_VARIANTS))
    lite.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "OFF"])
    lite.add_argument("--whole", action="store_true", help="time store.append, encoding too")
    lite.add_argument("--pages", action="store_true", help="WAL frames per b-tree")
    enc = sub.add_parser("encode", help="encode_events alone")
    pg = sub.add_parser("postgres", help="the PostgreSQL append with an index changed")
    pg.add_argument("variant", choices=sorted(PG_VARIANTS))
    pg.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    for p in (lite, enc, pg):
        p.add_argument("--appends", type=int, default=200, help="appends of 100 events")
    args = parser.parse_args(argv)
    {"sqlite": run_sqlite, "encode": run_encode, "postgres": run_postgres}[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
