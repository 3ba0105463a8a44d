"""The events every system writes, made before any clock starts."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from typing import Any

from ulid import ULID

EVENT_TYPES = ("OrderPlaced", "ItemAdded", "ItemRemoved", "PaymentCaptured", "OrderShipped")


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str  # a ULID, 26 characters
    type: str
    data: dict[str, Any]  # about 200 bytes of JSON, with a nested object
    metadata: dict[str, Any]  # about 130 bytes of JSON


@dataclass
class Batch:
    stream: str  # a UUID in text form, so eventsourcing (uuid originator ids) can take it too
    start: int  # the stream's version before this append
    events: list[Event]


def make_event(rng: random.Random, seq: int) -> Event:
    kind = EVENT_TYPES[seq % len(EVENT_TYPES)]
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
    return Event(str(ULID()), kind, data, metadata)


def make_batches(rng: random.Random, streams: int, per_stream: int, batch: int) -> list[Batch]:
    """`streams` new streams of `per_stream` events each, appended `batch` at a time."""
    out = []
    seq = 0
    for _ in range(streams):
        stream = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        for start in range(0, per_stream, batch):
            events = []
            for _ in range(min(batch, per_stream - start)):
                events.append(make_event(rng, seq))
                seq += 1
            out.append(Batch(stream, start, events))
    return out


def make_singles(rng: random.Random, w1: list[Batch], count: int, streams: int) -> list[Batch]:
    """`count` one-event appends, round robin over the first `streams` streams of W1."""
    heads: dict[str, int] = {}
    for b in w1:
        heads[b.stream] = b.start + len(b.events)
    chosen = list(dict.fromkeys(b.stream for b in w1))[:streams]
    out = []
    for i in range(count):
        stream = chosen[i % len(chosen)]
        out.append(Batch(stream, heads[stream], [make_event(rng, i)]))
        heads[stream] += 1
    return out


def jdump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

