"""Measure `evstore relay`: throughput into JetStream against a plain nats-py publisher of the
same messages (the limit), and the latency from an append's commit to a JetStream consumer.

    python scripts/bench_relay.py --events 100000 --reps 3
    python scripts/bench_relay.py --databases postgres --postgres postgresql://u@host/db

Throughput: a log of --events events (1,000 streams, 5 types, a 209-byte payload and a
122-byte metadata object, as scripts/bench.py's W1) is relayed into a fresh JetStream stream;
the clock runs from the relay's start until JetStream acknowledged the last event. The plain
publisher sends the same subjects, headers and bodies, built before its clock starts, with
publish_async and the same bound on acks in flight, and waits for every ack: what NATS and
nats-py take, with no database and no checkpoints.

Latency: the relay runs as its own process (`evstore relay`); a thread appends one event at a
time at --rate per second; a JetStream consumer in this process notes when each arrives. The
figure is arrival minus the moment store.append returned (the commit), on one clock.

Needs a NATS server with JetStream (--nats, default nats://127.0.0.1:4222) and, for
PostgreSQL, a server where it may create and drop a scratch database (evstore_bench_relay_*).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
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

import nats
import psycopg
from psycopg import sql

import evstore
from evstore import NewEvent
from evstore.operations.relay import DEFAULT_MAX_IN_FLIGHT, Relay, _headers, subject_for
from evstore.urls import parse_url

PAYLOAD = {"sku": "tea-0042", "quantity": 3, "price": {"amount": 1299, "currency": "EUR"},
           "note": "x" * 120, "tags": ["gift", "express"]}
METADATA = {"correlation_id": "01HZX3C6Y8Q1J6J9V2N8M4K0PA", "user": "someone@example.org",
            "source": "bench"}
TYPES = ["Placed", "Paid", "Packed", "Shipped", "Delivered"]


@contextlib.contextmanager
def database(kind: str, pg: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    server = parse_url(pg)
    name = f"evstore_bench_relay_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.conninfo or "", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.with_database(name).url
    finally:
        with psycopg.connect(server.conninfo or "", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def fill(url: str, events: int) -> None:
    per = max(events // 1000, 1)
    with evstore.connect(url) as store:
        store.migrate()
        for s in range(events // per):
            store.append(f"order-{s}", [NewEvent(TYPES[i % 5], PAYLOAD, METADATA)
                                        for i in range(per)])


async def delete_stream(nats_url: str, stream: str) -> None:
    nc = await nats.connect(servers=[nats_url])
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


async def relay_rate(url: str, nats_url: str, events: int) -> float:
    stream = f"BENCH_{uuid.uuid4().hex[:10]}"
    relay = Relay(url, nats_url, stream, f"bench.{stream.lower()}", log=lambda line: None)
    try:
        start = time.perf_counter()
        run = asyncio.create_task(relay.run_async())
        while relay.stats.published < events:
            await asyncio.sleep(0.001)
            if run.done():
                run.result()
                raise RuntimeError("the relay ended early")
        seconds = time.perf_counter() - start
        relay.stop()
        await run
        return events / seconds
    finally:
        await delete_stream(nats_url, stream)


async def plain_rate(url: str, nats_url: str) -> float:
    stream = f"BENCH_{uuid.uuid4().hex[:10]}"
    prefix = f"bench.{stream.lower()}"
    with evstore.connect(url) as store:
        messages = [(subject_for(prefix, e.stream_id, e.type), e.data_json.encode(),
                     _headers(e)) for e in store.iter_all()]
    nc = await nats.connect(servers=[nats_url])
    try:
        js = nc.jetstream(publish_async_max_pending=DEFAULT_MAX_IN_FLIGHT)
        await js.add_stream(name=stream, subjects=[f"{prefix}.>"])
        start = time.perf_counter()
        futures = [await js.publish_async(subject, body, headers=dict(headers), stream=stream)
                   for subject, body, headers in messages]
        acks = await asyncio.gather(*futures)
        seconds = time.perf_counter() - start
        assert len(acks) == len(messages) and not any(a.duplicate for a in acks)
        return len(messages) / seconds
    finally:
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(stream)
        await nc.close()


async def latency(url: str, nats_url: str, count: int, rate: float) -> list[float]:
    stream = f"BENCH_{uuid.uuid4().hex[:10]}"
    prefix = f"bench.{stream.lower()}"
    with evstore.connect(url) as store:
        store.migrate()
    relay = subprocess.Popen(
        [sys.executable, "-m", "evstore", "relay", "--database", url, "--nats", nats_url,
         "--stream", stream, "--subject", prefix],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    committed: dict[int, float] = {}
    arrived: dict[int, float] = {}
    nc = await nats.connect(servers=[nats_url])
    try:
        js = nc.jetstream()
        for _ in range(200):  # the relay creates the stream
            try:
                await js.stream_info(stream)
                break
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.05)

        async def on_message(msg: Any) -> None:
            arrived[int(msg.headers["Evstore-Position"])] = time.perf_counter()

        sub = await js.subscribe(f"{prefix}.>", stream=stream, cb=on_message,
                                 ordered_consumer=True)

        def append() -> None:
            with evstore.connect(url) as store:
                for i in range(count):
                    due = start + i / rate
                    time.sleep(max(0.0, due - time.perf_counter()))
                    [event] = store.append(f"order-{i % 100}",
                                           [NewEvent(TYPES[i % 5], PAYLOAD, METADATA)])
                    committed[event.position] = time.perf_counter()

        start = time.perf_counter()
        writer = threading.Thread(target=append)
        writer.start()
        while writer.is_alive() or len(arrived) < count:
            await asyncio.sleep(0.01)
            if time.perf_counter() - start > count / rate + 60:
                raise RuntimeError(f"only {len(arrived)} of {count} events arrived")
        writer.join()
        await sub.unsubscribe()
        return [(arrived[p] - committed[p]) * 1000 for p in sorted(committed)]
    finally:
        relay.terminate()
        relay.communicate(timeout=60)
        await nc.close()
        await delete_stream(nats_url, stream)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--postgres", default=os.environ.get(
        "EVSTORE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--latency-events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0,
                        help="appends per second during the latency run (default 200)")
    parser.add_argument("--json", metavar="PATH", help="write every measurement here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for kind in args.databases.split(","):
        with database(kind, args.postgres) as url:
            fill(url, args.events)
            relay = [asyncio.run(relay_rate(url, args.nats, args.events))
                     for _ in range(args.reps)]
            plain = [asyncio.run(plain_rate(url, args.nats)) for _ in range(args.reps)]
        with database(kind, args.postgres) as url:
            waits = asyncio.run(latency(url, args.nats, args.latency_events, args.rate))
        results[kind] = {"relay_events_per_s": relay, "plain_events_per_s": plain,
                         "latency_ms": waits}
        r, p = statistics.median(relay), statistics.median(plain)
        print(f"{kind}: relay {r:,.0f} events/s (min {min(relay):,.0f}, max {max(relay):,.0f}); "
              f"plain nats-py publisher {p:,.0f} events/s (min {min(plain):,.0f}, "
              f"max {max(plain):,.0f}); relay/plain {r / p:.2f}")
        print(f"{kind}: commit to JetStream consumer at {args.rate:g} appends/s: "
              f"p50 {percentile(waits, 0.5):.1f} ms, p99 {percentile(waits, 0.99):.1f} ms, "
              f"max {max(waits):.1f} ms ({len(waits)} events)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
