"""Replay on a large log: one transaction (the default) against batch-by-batch commits.

Fills a fresh store with --events events (1,000 streams, batches of 1,000), then replays a
projection that keeps one row per stream, once with store.replay(p) (atomic) and once with
store.replay(p, atomic=False), each in a fresh process so that peak memory (VmHWM) is the
replay's own. Prints seconds, events/s and peak resident memory for each."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import psycopg

import evstore
from evstore.urls import parse_url

CHILD = r"""
import json, sys, time
import evstore

class Counts:
    name = "counts"
    def reset(self, tx):
        tx.execute("DELETE FROM replay_counts")
    def apply(self, tx, event):
        event.data
        tx.execute("UPDATE replay_counts SET n = n + 1 WHERE stream_id = ?", (event.stream_id,))

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

url, atomic = sys.argv[1], sys.argv[2] == "atomic"
with evstore.connect(url) as store:
    before = hwm()
    start = time.perf_counter()
    n = store.replay(Counts(), batch_size=1000, atomic=atomic)
    seconds = time.perf_counter() - start
    print(json.dumps({"events": n, "seconds": seconds, "peak_mb": hwm(), "start_mb": before}))
"""


def fill(url: str, events: int) -> None:
    with evstore.connect(url) as store:
        store.migrate()
        store.execute("CREATE TABLE replay_counts (stream_id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        for s in range(1000):
            store.execute("INSERT INTO replay_counts (stream_id, n) VALUES (?, 0)", (f"s{s}",))
        per_stream = events // 1000
        for s in range(1000):
            for start in range(0, per_stream, 1000):
                n = min(1000, per_stream - start)
                store.append(f"s{s}", [evstore.NewEvent("T", {"i": start + k, "pad": "x" * 150})
                                       for k in range(n)])


def replay(url: str, mode: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, url, mode], capture_output=True,
                         text=True, check=True)
    return dict(json.loads(out.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="log size")
    parser.add_argument("--rounds", type=int, default=1, help="replays of each kind")
    parser.add_argument("--pg-dsn", default=os.environ.get("EVSTORE_TEST_PG_DSN"),
                        help="PostgreSQL server for a scratch database (default: "
                             "$EVSTORE_TEST_PG_DSN; SQLite only without one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("sqlite", f"sqlite:///{tmp}/replay.db")]
        scratch = None
        if args.pg_dsn:
            server = parse_url(args.pg_dsn)
            scratch = f"evstore_replay_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(server.conninfo or "", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{scratch}"')
            targets.append(("postgres", server.with_database(scratch).url))
        try:
            for dialect, url in targets:
                start = time.perf_counter()
                fill(url, args.events)
                print(f"{dialect}: filled {args.events:,} events in "
                      f"{time.perf_counter() - start:.0f} s", flush=True)
                for mode in ("atomic", "batched") * args.rounds:
                    r = replay(url, mode)
                    print(f"{dialect} {mode:8} {r['events']:>10,.0f} events "
                          f"{r['seconds']:7.1f} s {r['events'] / r['seconds']:>9,.0f} events/s "
                          f"peak {r['peak_mb']:.0f} MB (at start {r['start_mb']:.0f} MB)",
                          flush=True)
        finally:
            if scratch is not None:
                with psycopg.connect(server.conninfo or "", autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
