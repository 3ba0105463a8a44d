"""W5: writer processes and a tailer (PostgreSQL)."""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import random
import threading
import time
import uuid
from typing import Any

import psycopg

import evstore
from evbench.data import Batch, make_event
from evbench.databases import Scratch, conninfo, es_pg_datastore, raw_pg_connect, store_head
from evbench.results import Results
from evbench.systems import RAW_PG_COLUMNS, es_state, make_system, raw_pg_append
from evstore import NewEvent


def w5_writer(
    system: str, url: str, writer: int, batch: int, seconds: float, pool: int, ready: Any,
    go: Any, out: Any,
) -> None:
    rng = random.Random(1000 + writer)
    streams = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20)]
    heads = dict.fromkeys(streams, 0)
    # Events are made before the clock starts, so the 2 cores go to appending, not to making
    # test data; a writer that uses up its pool stops early and says so.
    made = [make_event(rng, k) for k in range(pool)]
    appended = 0
    store: Any = None
    conn: Any = None
    recorder: Any = None
    # es-postgres-bytes: its states encoded before the clock starts, as in W1.
    states = {e.event_id: es_state(e) for e in made} if system.endswith("-bytes") else {}
    if system.startswith("evstore-postgres"):
        store = evstore.connect(url)
    elif system == "raw-postgres":
        conn = raw_pg_connect(url)
    else:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.postgres import PostgresApplicationRecorder

        recorder = PostgresApplicationRecorder(es_pg_datastore(url))
    ready.put(writer)
    go.wait()
    deadline = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < deadline:
        if (seq + 1) * batch > len(made):
            print(f"W5 writer {writer}: used all {pool} events; raise --w5-pool", flush=True)
            break
        stream = streams[seq % len(streams)]
        events = made[seq * batch : (seq + 1) * batch]
        b = Batch(stream, heads[stream], events)
        if store is not None:
            store.append(
                stream,
                [NewEvent(e.type, e.data, e.metadata, e.event_id) for e in events],
                expected_version=b.start if b.start else evstore.NO_STREAM,
            )
        elif conn is not None:
            raw_pg_append(conn, b)
        else:
            sid = uuid.UUID(stream)
            recorder.insert_events(
                [StoredEvent(sid, b.start + k, e.type,
                             states[e.event_id] if states else es_state(e))
                 for k, e in enumerate(events, 1)]
            )
        heads[stream] += batch
        appended += batch
        seq += 1
    out.put(appended)


def w5_tail(system: str, url: str, done: threading.Event) -> list[int]:
    """Follow the log the way each system offers, until the writers are done and it is at
    the head; returns the positions delivered, in delivery order."""
    seen: list[int] = []
    if system.startswith("evstore-postgres"):
        store = evstore.connect(url)
        tail = store.tail(poll_interval=0.1)

        def stopper() -> None:
            done.wait()
            head = store_head(url)
            while tail.position < head:
                time.sleep(0.05)
            tail.stop()

        threading.Thread(target=stopper, daemon=True).start()
        for event in tail:
            seen.append(event.position)
        store.close()
        return seen
    if system == "raw-postgres":
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            last = 0
            while True:
                finished = done.is_set()
                rows = conn.execute(
                    f"SELECT {RAW_PG_COLUMNS} FROM event_store WHERE position > %s "
                    "ORDER BY position LIMIT 500",
                    (last,),
                    binary=True,
                ).fetchall()
                seen.extend(r[0] for r in rows)
                if rows:
                    last = rows[-1][0]
                elif finished:
                    return seen
                else:
                    time.sleep(0.01)
    from eventsourcing.postgres import PostgresApplicationRecorder

    datastore = es_pg_datastore(url)
    recorder = PostgresApplicationRecorder(datastore)
    last = 0
    while True:
        finished = done.is_set()
        rows = recorder.select_notifications(last + 1, 500)
        for r in rows:
            json.loads(r.state)  # decoded, as evstore's tail and the raw tailer deliver it
        seen.extend(r.id for r in rows)
        if rows:
            last = rows[-1].id
        elif finished:
            datastore.close()
            return seen
        else:
            time.sleep(0.01)



def run_w5(system_name: str, scratch: Scratch, args: argparse.Namespace, results: Results) -> None:
    system = make_system(system_name)
    system.setup(scratch)
    url = system.url
    try:
        ctx = multiprocessing.get_context("spawn")
        go = ctx.Event()
        ready = ctx.Queue()
        out = ctx.Queue()
        procs = [
            ctx.Process(
                target=w5_writer,
                args=(system_name, url, w, args.w5_batch, args.w5_seconds, args.w5_pool,
                      ready, go, out),
            )
            for w in range(args.w5_writers)
        ]
        for p in procs:
            p.start()
        for _ in procs:  # every writer connected and holding its events
            ready.get(timeout=300)
        done = threading.Event()
        seen: list[int] = []
        tailer = threading.Thread(target=lambda: seen.extend(w5_tail(system_name, url, done)))
        tailer.start()
        start = time.perf_counter()
        go.set()
        appended = sum(out.get(timeout=args.w5_seconds + 60) for _ in procs)
        elapsed = time.perf_counter() - start
        for p in procs:
            p.join()
        done.set()
        tailer.join(timeout=120)
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            if system_name.startswith("es-"):
                rows = conn.execute("SELECT notification_id FROM stored_events").fetchall()
            else:
                rows = conn.execute("SELECT position FROM event_store").fetchall()
        committed = {r[0] for r in rows}
        if len(committed) != appended:
            raise RuntimeError(f"{system_name}: {appended} appended, {len(committed)} stored")
        missed = len(committed - set(seen))
        out_of_order = sum(1 for a, b in itertools.pairwise(seen) if b <= a)
        results.add("W5", system_name, appended / elapsed, "events/s")
        results.add("W5 missed", system_name, missed, "events")
        if out_of_order:
            results.note("W5", system_name, f"{out_of_order} deliveries out of order")
    finally:
        system.teardown(scratch)


