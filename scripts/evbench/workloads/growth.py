"""W6 growth: on a small log (W1's events, or --w6-base) and again on a large one (--growth
events): W1's append rate, a read from the start and from the middle, the peak memory of a
process replaying the whole log, and the bytes the event table and its indexes take per
event. --w6-10m: PostgreSQL only, 10,000,000 events against 100,000 (minutes).

evstore replays with store.replay into a projection counting events per type; raw and
eventsourcing read the whole log in pages of 1,000, decoded. Each system
grows its own log with its own writer, 1,000 events per append to a new stream."""

from __future__ import annotations

import argparse
import gc
import random
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from ulid import ULID

import evstore
from evbench.clients import log_size, open_reader, open_writer, sqlite_file
from evbench.data import Batch, Event, make_batches, make_event
from evbench.databases import Scratch, conninfo
from evbench.results import Results, timed
from evbench.systems import EvstoreSystem, make_system, touch
from evstore import NewEvent

SCRIPTS = Path(__file__).resolve().parents[2]  # the folder that holds evbench


def fill(store: evstore.Store, rng: random.Random, events: int, chunk: int = 1000) -> None:
    """Grow the log quickly: new streams of up to `chunk` events, one append each."""
    template = [make_event(rng, k) for k in range(chunk)]
    while events > 0:
        n = min(chunk, events)
        store.append(
            str(uuid.uuid4()),
            [NewEvent(e.type, e.data, e.metadata) for e in template[:n]],
            expected_version=evstore.NO_STREAM,
        )
        events -= n


def mid_read(store: evstore.Store, after: int, page: int, pages: int) -> float:
    """Events/s reading `pages` pages from `after` on, data decoded."""
    gc.collect()
    start = time.perf_counter()
    n = 0
    for _ in range(pages):
        got = store.read_all(after, page)
        n += touch(got)
        if len(got) < page:
            break
        after = got[-1].position
    return n / (time.perf_counter() - start)


def replay_peak_mb(url: str, system: str = "evstore") -> tuple[float, float, int]:
    """Peak resident memory (MB) of a fresh process before and after it replays the whole
    log into a projection counting events per type, and the number of events applied.

    Read from VmHWM in /proc/self/status: getrusage's ru_maxrss would also count the memory
    of this (large) process, which Linux carries over into a child across fork and exec."""
    if not system.startswith("evstore"):
        return read_all_peak_mb(url, system)
    code = (
        "import sys, evstore\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n"
        "class Count:\n"
        "    name = 'bench_replay'\n"
        "    def __init__(self): self.by_type = {}\n"
        "    def apply(self, tx, event):\n"
        "        event.data\n"
        "        self.by_type[event.type] = self.by_type.get(event.type, 0) + 1\n"
        "with evstore.connect(sys.argv[1]) as store:\n"
        "    before = hwm()\n"
        "    n = store.replay(Count(), batch_size=1000)\n"
        "print(before, hwm(), n)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


READ_ALL = """\
import sys
sys.path.insert(0, sys.argv[3])
from evbench.clients import open_reader
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
reader = open_reader(sys.argv[2], sys.argv[1])
before, n, last = hwm(), 0, 0
while True:
    rows = reader.after(last, 1000)
    n += len(rows)
    if len(rows) < 1000:
        break
    last = rows[-1][0]
reader.close()
print(before, hwm(), n)
"""


def read_all_peak_mb(url: str, system: str) -> tuple[float, float, int]:
    """replay_peak_mb for raw and eventsourcing: a fresh process reads the whole log."""
    out = subprocess.run(
        [sys.executable, "-c", READ_ALL, url, system, str(SCRIPTS)], check=True,
        capture_output=True, text=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def table_bytes_per_event(system: str, url: str) -> float:
    """The system's event table with its indexes (and TOAST on PostgreSQL), per event."""
    table = "stored_events" if system.startswith("es-") else "event_store"
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_file(url)) as conn:
            size = conn.execute(
                "SELECT sum(pgsize) FROM dbstat WHERE name IN "
                "(SELECT name FROM sqlite_schema WHERE tbl_name = ?)", (table,)).fetchone()[0]
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    else:
        with psycopg.connect(conninfo(url), autocommit=True) as pg:
            row = pg.execute(f"SELECT pg_total_relation_size('{table}'), count(*) "
                             f"FROM {table}").fetchone()
            assert row is not None
            size, count = row
    return float(size) / count if count else 0.0


def fill_any(system: str, url: str, rng: random.Random, events: int,
             chunk: int = 1000) -> None:
    """fill() for raw and eventsourcing: new streams of up to `chunk` events, one append
    each, through the system's own writer; fresh event ids, the same data."""
    template = [make_event(rng, k) for k in range(chunk)]
    writer = open_writer(system, url)
    try:
        while events > 0:
            n = min(chunk, events)
            batch = [Event(str(ULID()), e.type, e.data, e.metadata) for e in template[:n]]
            writer.prepare(batch)
            writer.append(Batch(str(uuid.uuid4()), 0, batch))
            events -= n
    finally:
        writer.close()


def read_pages(system: str, url: str, after: int, page: int, pages: int) -> float:
    """mid_read for raw and eventsourcing."""
    reader = open_reader(system, url)
    try:
        gc.collect()
        start = time.perf_counter()
        n = 0
        for _ in range(pages):
            got = reader.after(after, page)
            n += len(got)
            if len(got) < page:
                break
            after = got[-1][0]
        return n / (time.perf_counter() - start)
    finally:
        reader.close()


def bytes_per_event(store: evstore.Store) -> float:
    """The event table with its indexes (and, on PostgreSQL, its TOAST), per event."""
    if store.dialect == "postgres":
        size = store.execute("SELECT pg_total_relation_size('event_store')")[0][0]
    else:
        size = store.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN "
            "(SELECT name FROM sqlite_schema WHERE tbl_name = 'event_store')")[0][0]
    count = store.execute("SELECT count(*) FROM event_store")[0][0]
    return float(size) / count if count else 0.0


def run_w6(
    name: str, scratch: Scratch, w1: list[Batch], args: argparse.Namespace, results: Results,
    rng: random.Random,
) -> None:
    system = make_system(name)
    system.setup(scratch)
    ours = isinstance(system, EvstoreSystem)
    url = system.url
    try:
        w1_events = sum(len(b.events) for b in w1)
        system.prepare(w1)

        # Small log: W1's rate on an empty log, a read from the start, the replay's memory.
        def do_w1_empty() -> int:
            for b in w1:
                system.append(b)
            return w1_events

        def count() -> int:
            return system.store.head_position() if ours else log_size(name, url)

        def grow(events: int) -> None:
            if ours:
                fill(system.store, rng, events)
            else:
                fill_any(name, url, rng, events)

        def size() -> float:
            return bytes_per_event(system.store) if ours else table_bytes_per_event(name, url)

        n, s = timed(do_w1_empty)
        results.add("W6 W1 @empty", name, n / s, "events/s")
        small = count()
        if args.w6_base and args.w6_base > small:
            grow(args.w6_base - small)
            small = count()
        results.add("W6 bytes/event @small", name, size(), "bytes/event")
        _, mb_small, n_small = replay_peak_mb(url, name)
        results.add("W6 replay MB @small", name, mb_small, "MB")
        results.note("W6 replay MB @small", name, f"{n_small:,} events replayed")
        # Grow to --growth events, then W1 again on top (fresh streams, fresh ids).
        print(f"  {name}: growing the log from {small:,} to {args.growth:,} events", flush=True)
        grow(max(0, args.growth - small - w1_events))
        for rep in range(args.reps):
            fresh = make_batches(random.Random(9000 + rep), args.streams,
                                 args.events // args.streams, args.batch)
            system.prepare(fresh)

            def do_w1(batches: list[Batch] = fresh) -> int:
                for b in batches:
                    system.append(b)
                return sum(len(b.events) for b in batches)

            n, s = timed(do_w1)
            results.add("W6 W1 @large", name, n / s, "events/s")
        head = count()
        results.add("W6 bytes/event @large", name, size(), "bytes/event")
        results.note("W6 bytes/event @large", name, f"{head:,} events")
        results.note("W6 W1 @large", name, f"log held {head - w1_events * args.reps:,} to "
                     f"{head:,} events")
        # Reads of the same length from the first and from the middle position of the full
        # log, alternating, so both see the same cache and the same machine.
        for _ in range(args.reps):
            for label, after in (("W6 read @start", 0), ("W6 read @middle", head // 2)):
                rate = mid_read(system.store, after, args.page, args.w6_pages) if ours else \
                    read_pages(name, url, after, args.page, args.w6_pages)
                results.add(label, name, rate, "events/s")
        before, mb_large, n_large = replay_peak_mb(url, name)
        results.add("W6 replay MB @large", name, mb_large, "MB")
        results.note("W6 replay MB @large", name,
                     f"{n_large:,} events replayed; {before:.0f} MB before the replay began")
    finally:
        system.teardown(scratch)
