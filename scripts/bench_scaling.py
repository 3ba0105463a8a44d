"""Measure what "Scaling out" in the README quotes, in one run.

copy      A SQLite file of N events (default 1,000,000 over 1,000 streams, bench.py's event
          shape) goes into PostgreSQL three ways, one after the other on the same file:
            evstore copy         into an empty database (it migrates, copies and verifies);
            pgloader (evstore)   data only, into a database migrated by evstore, the append
                                 guard switched off for that database (as an operator would);
            pgloader (own)       pgloader creating its own tables, then indexes (with `reset
                                 no sequences`: its `reset sequences` fails on event_store,
                                 quoting the column "position" twice).
          --reps N repeats the three in turn and reports each run and the median. The first
          repetition also copies evstore's PostgreSQL copy back into a new SQLite file. For each:
          wall time, events/s, the child's peak memory, and whether the destination's next
          append gets the next position. --verify-destinations also runs `evstore verify` on
          the evstore and pgloader (evstore) destinations.
replicas  A throwaway primary and a hot standby (tests/pg_replicas.py, fsync off), W writer
          processes appending batches of 10 to their own streams for S seconds, and one tailing
          process on the primary (LISTEN) and one on the standby (polling its replay position).
          --pace MS slows the writers, to see the wake-ups themselves rather than a machine
          that has no CPU to spare. Reports the standby's replay lag (pg_stat_replication,
          sampled), the tails' delivery latency from the writer's commit to the tail (p50,
          p99, max), whether each tail got every committed event once and in order, and the
          latency of a read that follows the Store's own append on
          connect(primary, read_url=standby).

partitions  What declarative partitioning by position range would cost, on generated rows of
          event_store's shape: N rows into the table as it is and into one partitioned by
          position into P ranges (bulk INSERT), then the reads evstore makes: an event by its
          id (a global unique index, against one index per partition that every lookup must
          probe), a page of the log after a position (pruned to one partition), a stream's
          events. Also shows that PostgreSQL refuses UNIQUE (event_id) on the partitioned table.

  python scripts/bench_scaling.py --pg postgresql://postgres@127.0.0.1:5432/postgres
  python scripts/bench_scaling.py --only replicas --seconds 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/pg_replicas.py: the replica harness the tests use

import evstore  # noqa: E402
from evstore import NewEvent  # noqa: E402
from evstore.urls import parse_url  # noqa: E402

EVENT_TYPES = ("OrderPlaced", "ItemAdded", "ItemRemoved", "PaymentCaptured", "OrderShipped")
CTX = mp.get_context("spawn")


def make_event(rng: random.Random, seq: int) -> NewEvent:
    """The shape of scripts/bench.py's events: about 300 bytes of data and 150 of metadata."""
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
    return NewEvent(EVENT_TYPES[seq % len(EVENT_TYPES)], data, metadata)


# -- the source file -------------------------------------------------------------------------


def source_file(path: Path, events: int, streams: int) -> None:
    """A SQLite store of `events` events, appended 100 at a time; kept when it exists with
    exactly that many (rebuilding a million events takes a minute or two)."""
    url = f"sqlite:///{path}"
    if path.exists():
        with evstore.connect(url) as store:
            if store.head_position() == events:
                print(f"source: reusing {path} ({events:,} events)", flush=True)
                return
        path.unlink()
    started = time.perf_counter()
    rng = random.Random(20240601)
    with evstore.connect(url) as store:
        store.migrate()
        for i in range(events // 100):
            store.append(f"order-{i % streams}",
                         [make_event(rng, i * 100 + k) for k in range(100)])
        store.save_checkpoint("projector", events // 2)
    print(f"source: {events:,} events in {time.perf_counter() - started:.0f}s at {path}",
          flush=True)


# -- PostgreSQL scratch databases ------------------------------------------------------------


@contextlib.contextmanager
def scratch(server: str, tag: str) -> Iterator[str]:
    parsed = parse_url(server)
    name = f"evstore_bench_{tag}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(parsed.conninfo or "", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield parsed.with_database(name).url
    finally:
        with psycopg.connect(parsed.conninfo or "", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def pgloader_url(url: str) -> str:
    """The same database as pgloader spells it (postgresql://user:password@host:port/db),
    built from the parsed URL; a socket host is not supported by this script."""
    parts = urlsplit(parse_url(url).conninfo or "")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    login = quote(unquote(user) or "postgres", safe="")
    if password:
        login += ":" + quote(unquote(password), safe="")
    return urlunsplit(("postgresql", f"{login}@{hostport or '127.0.0.1'}", parts.path, "", ""))


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run a command; its wall time, its peak resident memory (MiB) and its output."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode(errors="replace")
    if child.returncode != 0:
        raise RuntimeError(f"{command[0]} {command[1]} exited {child.returncode}:\n{text[-3000:]}")
    return seconds, usage.ru_maxrss // 1024, text


def next_append(url: str) -> str:
    """What the destination's next evstore append gets, against its highest position."""
    with evstore.connect(url) as store:
        top = store.head_position()
        try:
            got = store.append("order-0", [NewEvent("Probe", {})])[0]
        except evstore.EvstoreError as e:
            return f"refused: {str(e).splitlines()[0][:120]}"
        return ("next position" if got.position == top + 1
                else f"position {got.position} after {top}") + f", version {got.version}"


def verify(url: str) -> tuple[int, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "evstore", "verify", "--database", url],
                          capture_output=True, text=True)
    return done.returncode, time.perf_counter() - started


PGLOADER_EVSTORE = """LOAD DATABASE
     FROM sqlite://{source}
     INTO {target}
 WITH data only, reset no sequences, prefetch rows = 10000, batch rows = 10000
 INCLUDING ONLY TABLE NAMES LIKE 'event_store', 'stream', 'subscription', 'snapshot';
"""
PGLOADER_OWN = """LOAD DATABASE
     FROM sqlite://{source}
     INTO {target}
 WITH include drop, create tables, create indexes, reset no sequences,
      prefetch rows = 10000, batch rows = 10000
 INCLUDING ONLY TABLE NAMES LIKE 'event_store', 'stream', 'subscription', 'snapshot';
"""


def run_copy(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Each repetition runs the three loads into PostgreSQL one after the other, so the
    machine's other work falls on all of them alike; the first repetition also copies back
    to SQLite and, with --verify-destinations, verifies."""
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = Path(args.source) if args.source else workdir / f"source-{args.events}.db"
    source_file(source, args.events, args.streams)
    pgloader = shutil.which("pgloader")
    if pgloader is None:
        results["copy_note"] = "pgloader is not installed (apt-get install pgloader)"
    rows: list[dict[str, Any]] = []
    for rep in range(args.reps):
        first = rep == 0
        rows.append(_evstore_copy(args, source, workdir, both_ways=first))
        if pgloader is not None:
            rows += _pgloader(args, pgloader, source, workdir, verify_it=first)
    summary: dict[str, Any] = {}
    for name in dict.fromkeys(r["system"] for r in rows):
        runs = [r["seconds"] for r in rows if r["system"] == name]
        summary[name] = {"runs_s": runs, "median_s": statistics.median(runs),
                         "events_per_s": round(args.events / statistics.median(runs))}
    results["copy"] = {"runs": rows, "summary": summary}
    print(json.dumps(summary, indent=2), flush=True)


def _record(args: argparse.Namespace, name: str, seconds: float, rss: int,
            destination: str | None, verify_it: bool, note: str = "") -> dict[str, Any]:
    row = {"system": name, "seconds": round(seconds, 1),
           "events_per_s": round(args.events / seconds), "peak_rss_mib": rss,
           "next_append": next_append(destination) if destination else "-", "note": note}
    if verify_it and args.verify_destinations and destination:
        code, took = verify(destination)
        row["verify"] = f"exit {code} in {took:.0f}s"
    print(json.dumps(row), flush=True)
    return row


def _evstore_copy(args: argparse.Namespace, source: Path, workdir: Path,
                  both_ways: bool) -> dict[str, Any]:
    evstore_cmd = [sys.executable, "-m", "evstore"]
    with scratch(args.pg, "copy") as ours:
        seconds, rss, out = timed([*evstore_cmd, "copy", f"sqlite:///{source}", ours])
        summary = out.strip().splitlines()[0]
        if both_ways:  # before the probe append below changes the store
            back = workdir / f"back-{uuid.uuid4().hex[:8]}.db"
            try:
                took, peak, _ = timed([*evstore_cmd, "copy", ours, f"sqlite:///{back}"])
                _record(args, "evstore copy postgres->sqlite", took, peak, f"sqlite:///{back}",
                        True)
            finally:
                for leftover in workdir.glob(back.name + "*"):
                    leftover.unlink()
        return _record(args, "evstore copy sqlite->postgres", seconds, rss, ours, both_ways,
                       summary)


def _pgloader(args: argparse.Namespace, pgloader: str, source: Path, workdir: Path,
              verify_it: bool) -> list[dict[str, Any]]:
    rows = []
    server = parse_url(args.pg).conninfo or ""
    with scratch(args.pg, "pgloader") as theirs:
        with evstore.connect(theirs) as store:
            store.migrate()
        database = sql.Identifier(parse_url(theirs).database or "")
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} SET evstore.appending = 'on'").format(
                database))
        command = workdir / "pgloader-evstore.load"
        command.write_text(PGLOADER_EVSTORE.format(source=source, target=pgloader_url(theirs)))
        seconds, rss, _ = timed([pgloader, str(command)])
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} RESET evstore.appending").format(database))
        rows.append(_record(args, "pgloader into evstore's schema", seconds, rss, theirs,
                            verify_it, "data only; indexes and triggers in place, guard off"))
    with scratch(args.pg, "pgloader_own") as theirs:
        command = workdir / "pgloader-own.load"
        command.write_text(PGLOADER_OWN.format(source=source, target=pgloader_url(theirs)))
        seconds, rss, _ = timed([pgloader, str(command)])
        rows.append(_record(args, "pgloader, its own tables", seconds, rss, None, False,
                            "creates tables, then indexes; no evstore schema, no "
                            "verification; 'reset no sequences'"))
    return rows


# -- replicas ---------------------------------------------------------------------------------


def writer(url: str, n: int, seconds: float, pace: float, out: Any) -> None:
    """Append batches of 10 to this writer's own streams, `pace` seconds apart (0: at full
    speed); each event id with the wall time at which its append returned (its commit)."""
    rng = random.Random(n)
    committed: list[tuple[str, float]] = []
    with evstore.connect(url) as store:
        deadline = time.monotonic() + seconds
        k = 0
        while time.monotonic() < deadline:
            events = store.append(f"w{n}-{k % 50}", [make_event(rng, i) for i in range(10)])
            now = time.time()
            committed += [(e.event_id, now) for e in events]
            k += 1
            if pace:
                time.sleep(pace)
    out.put(committed)


def tailer(name: str, url: str, out: Any) -> None:
    """Follow the log until the End event; each event id with the wall time it arrived."""
    got: list[tuple[int, str, float]] = []
    with evstore.connect(url) as store, store.tail(after=0, idle_timeout=600) as tail:
        for event in tail:
            got.append((event.position, event.event_id, time.time()))
            if event.type == "End":
                break
    out.put((name, got))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_replicas(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """One cluster; each repetition in a fresh database. Per run and the median of each
    figure over the runs."""
    from tests.pg_replicas import replicas

    runs: list[dict[str, Any]] = []
    with replicas(standbys=1) as cluster:
        for _ in range(args.reps):
            with cluster.database() as (primary, standbys, _):
                runs.append(_replica_run(args, cluster, primary, standbys[0]))
    flat = [_flatten(run) for run in runs]
    results["replicas"] = {
        "writers": args.writers, "seconds": args.seconds, "pace_ms": args.pace, "runs": runs,
        "median": {k: statistics.median(f[k] for f in flat) for k in flat[0]},
    }
    print(json.dumps(results["replicas"]["median"], indent=2), flush=True)


def _flatten(run: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in run.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[prefix + key] = value
    return out


def _replica_run(args: argparse.Namespace, cluster: Any, primary: str,
                 standby: str) -> dict[str, Any]:
    with evstore.connect(primary) as store:
        store.migrate()
    cluster.wait_replayed(cluster.standbys[0])
    committed_q, tails_q = CTX.Queue(), CTX.Queue()
    tails = [CTX.Process(target=tailer, args=(name, url, tails_q))
             for name, url in (("primary_listen", primary), ("standby_polls", standby))]
    for p in tails:
        p.start()
    time.sleep(2)  # the tails are connected and waiting
    lags: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(cluster.primary.url, autocommit=True) as conn:
            while not stop.wait(0.1):
                row = conn.execute("SELECT extract(epoch FROM replay_lag) "
                                   "FROM pg_stat_replication").fetchone()
                if row and row[0] is not None:
                    lags.append(float(row[0]) * 1000)

    sampler = threading.Thread(target=sample)
    sampler.start()
    writers = [CTX.Process(target=writer,
                           args=(primary, n, args.seconds, args.pace / 1000, committed_q))
               for n in range(args.writers)]
    for p in writers:
        p.start()
    commits = dict(item for _ in writers for item in committed_q.get(timeout=600))
    with evstore.connect(primary) as store:
        end = store.append("end", [NewEvent("End", {})])[0]
    commits[end.event_id] = time.time()
    got = dict(tails_q.get(timeout=600) for _ in tails)  # in the order they finish
    stop.set()
    sampler.join()
    for p in writers + tails:
        p.join(60)
    with evstore.connect(primary) as store:
        everything = [e.position for e in store.iter_all()]
    delivered: dict[str, Any] = {}
    for where, events in sorted(got.items()):
        latency = [(at - commits[event_id]) * 1000 for _, event_id, at in events
                   if event_id in commits]
        delivered[where] = {
            "events": len(events),
            "every_event_once_in_order": [e[0] for e in events] == everything,
            "latency_ms_p50": round(percentile(latency, 50), 1),
            "latency_ms_p99": round(percentile(latency, 99), 1),
            "latency_ms_max": round(max(latency), 1),
        }
        print(where, json.dumps(delivered[where]), flush=True)
    run = {
        "appended_per_s": round((len(everything) - 1) / args.seconds),
        "replay_lag_ms": {
            "samples": len(lags),
            "p50": round(percentile(lags, 50), 1) if lags else 0.0,
            "p99": round(percentile(lags, 99), 1) if lags else 0.0,
            "max": round(max(lags), 1) if lags else 0.0,
        },
        "tails": delivered,
        "read_your_writes": read_your_writes(primary, standby),
    }
    print(json.dumps(run["replay_lag_ms"]), flush=True)
    return run


def read_your_writes(primary: str, standby: str, rounds: int = 300) -> dict[str, float]:
    """An append then a read of the whole log after it: on the primary alone, and on a Store
    that reads from the standby (the read waits until the standby has the append)."""
    out: dict[str, float] = {}
    for name, kwargs in (("primary_only_ms", {}), ("read_url_standby_ms", {"read_url": standby})):
        took: list[float] = []
        with evstore.connect(primary, **kwargs) as store:  # type: ignore[arg-type]
            for i in range(rounds):
                started = time.perf_counter()
                written = store.append("ryw", [NewEvent("T", {"i": i})])
                page = store.read_all(after=written[0].position - 1, limit=1)
                took.append((time.perf_counter() - started) * 1000)
                assert page and page[0].event_id == written[0].event_id
        out[name + "_p50"] = round(percentile(took, 50), 2)
        out[name + "_p99"] = round(percentile(took, 99), 2)
    print("read your writes", json.dumps(out), flush=True)
    return out


# -- partitions -------------------------------------------------------------------------------

PLAIN = """CREATE TABLE log_plain (
    position bigint PRIMARY KEY, event_id text NOT NULL UNIQUE, stream_id text NOT NULL,
    version bigint NOT NULL, event_type text NOT NULL, payload jsonb NOT NULL,
    UNIQUE (stream_id, version))"""
PARTITIONED = """CREATE TABLE log_part (
    position bigint NOT NULL, event_id text NOT NULL, stream_id text NOT NULL,
    version bigint NOT NULL, event_type text NOT NULL, payload jsonb NOT NULL,
    PRIMARY KEY (position)) PARTITION BY RANGE (position)"""
FILL = """INSERT INTO {}
SELECT g, lpad(to_hex(g), 26, '0'), 'order-' || (g %% 1000), (g - 1) / 1000 + 1,
       'OrderPlaced', jsonb_build_object('order_id', g, 'note', 'deliver to the side door')
FROM generate_series(1, %(n)s) AS g"""
# Lookups run inside the server, so the figure is the index work and not the round trip.
BY_ID = """SELECT count(f.position) FROM unnest(%(ids)s::text[]) AS i(id)
CROSS JOIN LATERAL (SELECT position FROM {} AS l WHERE l.event_id = i.id) AS f"""
PAGE = "SELECT count(*) FROM (SELECT * FROM {} WHERE position > %(after)s ORDER BY position " \
       "LIMIT 1000) AS page"
STREAM = "SELECT count(*) FROM (SELECT * FROM {} WHERE stream_id = %(stream)s " \
         "ORDER BY version) AS s"


def run_partitions(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Both layouts in one database, loaded one after the other and measured alternately,
    three rounds, medians."""
    n, parts = args.events, args.partitions
    step = -(-n // parts)
    rng = random.Random(7)
    out: dict[str, Any] = {"rows": n, "partitions": parts}
    ids = [f"{p:026x}" for p in (rng.randrange(1, n + 1) for _ in range(20_000))]
    afters = [rng.randrange(0, n - 1000) for _ in range(200)]
    streams = [f"order-{rng.randrange(1000)}" for _ in range(50)]
    with scratch(args.pg, "partitions") as url, psycopg.connect(
        parse_url(url).conninfo or "", autocommit=True
    ) as conn:
        conn.execute(PLAIN)
        conn.execute(PARTITIONED)
        for k in range(parts):
            conn.execute(sql.SQL(
                "CREATE TABLE {} PARTITION OF log_part FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(f"log_part_{k}"), sql.Literal(k * step + 1),
                sql.Literal((k + 1) * step + 1)))
        try:
            conn.execute("ALTER TABLE log_part ADD UNIQUE (event_id)")
        except psycopg.Error as e:
            out["unique_event_id_on_partitioned"] = str(e).splitlines()[0]
        conn.execute("CREATE INDEX ON log_part (event_id)")
        conn.execute("CREATE INDEX ON log_part (stream_id, version)")
        loads = {}
        for table in ("log_plain", "log_part"):
            started = time.perf_counter()
            conn.execute(sql.SQL(FILL).format(sql.Identifier(table)), {"n": n})
            loads[table] = time.perf_counter() - started
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
        figures: dict[str, dict[str, list[float]]] = {t: {} for t in loads}
        for _ in range(3):
            for table in loads:
                name = sql.Identifier(table)
                took = figures[table]
                started = time.perf_counter()
                conn.execute(sql.SQL(BY_ID).format(name), {"ids": ids})
                took.setdefault("event_by_id_us", []).append(
                    (time.perf_counter() - started) / len(ids) * 1e6)
                took.setdefault("page_of_1000_ms", []).append(
                    _per_call(conn, sql.SQL(PAGE).format(name), "after", afters) / 1000)
                took.setdefault("stream_read_ms", []).append(
                    _per_call(conn, sql.SQL(STREAM).format(name), "stream", streams) / 1000)
        for table, layout in (("log_plain", "plain"), ("log_part", "partitioned")):
            out[layout] = {"load_s": round(loads[table], 1), **{
                k: round(statistics.median(v), 2) for k, v in figures[table].items()}}
            print(layout, json.dumps(out[layout]), flush=True)
    results["partitions"] = out


def _per_call(conn: psycopg.Connection[Any], query: sql.Composed, param: str,
              values: list[Any]) -> float:
    """Microseconds per execution, over all `values` (each with its round trip)."""
    started = time.perf_counter()
    for value in values:
        conn.execute(query, {param: value}).fetchall()
    return (time.perf_counter() - started) / len(values) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default=os.environ.get(
        "EVSTORE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server for the copy's scratch databases (evstore_bench_*)")
    parser.add_argument("--only", choices=("copy", "replicas", "partitions"),
                        help="run one part only")
    parser.add_argument("--partitions", type=int, default=10,
                        help="position ranges for the partitions part (default 10)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--source", help="the SQLite source file (kept and reused)")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "evstore-bench"))
    parser.add_argument("--reps", type=int, default=1,
                        help="repetitions of the copy and replicas parts (default 1)")
    parser.add_argument("--verify-destinations", action="store_true",
                        help="also run `evstore verify` on the copies")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pace", type=float, default=0.0, metavar="MS",
                        help="replicas: each writer pauses this long between appends (default "
                             "0, full speed as bench.py's W5)")
    parser.add_argument("--json", metavar="FILE", help="write the results here")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
    }
    if args.only in (None, "copy"):
        run_copy(args, results)
    if args.only in (None, "replicas"):
        run_replicas(args, results)
    if args.only in (None, "partitions"):
        run_partitions(args, results)
    results["machine"]["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
