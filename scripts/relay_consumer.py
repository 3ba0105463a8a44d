"""A consumer in another process: read the events `evstore relay` put into a JetStream stream.

It needs nothing of evstore, only nats-py, and prints one JSON line per event, in the
stream's order:

    python scripts/relay_consumer.py --nats nats://127.0.0.1:4222 --stream ORDERS \\
        --subject 'evstore.orders.>' --idle-timeout 2

--subject filters by NATS subject: `PREFIX.>` is every event, `PREFIX.*.Placed` every event of
type Placed, `PREFIX.order-1.*` every event of stream order-1 (stream ids and types are
percent-encoded subject tokens: `order 1` is `order%201`). --durable NAME keeps the consumer's
position in JetStream, so a restarted consumer goes on where it stopped; without it, an
ordered consumer reads from the start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any
from urllib.parse import unquote


def event_of(msg: Any) -> dict[str, Any]:
    """A JetStream message as the event the relay published (README, "Consumers on other
    machines")."""
    headers = msg.headers or {}
    return {
        "position": int(headers["Evstore-Position"]),
        "stream_id": unquote(headers["Evstore-Stream"]),
        "version": int(headers["Evstore-Version"]),
        "event_id": headers["Nats-Msg-Id"],
        "type": unquote(headers["Evstore-Type"]),
        "recorded_at": headers["Evstore-Recorded-At"],
        "data": json.loads(msg.data),
        "metadata": json.loads(headers["Evstore-Metadata"]),
        "subject": msg.subject,
        "sequence": msg.metadata.sequence.stream,
    }


async def consume(args: argparse.Namespace) -> int:
    import nats

    nc = await nats.connect(servers=[args.nats], name="evstore relay consumer")
    try:
        js = nc.jetstream()
        if args.durable:
            sub = await js.subscribe(args.subject, stream=args.stream, durable=args.durable,
                                     manual_ack=True)
        else:
            sub = await js.subscribe(args.subject, stream=args.stream, ordered_consumer=True)
        count = 0
        while args.limit is None or count < args.limit:
            try:
                msg = await sub.next_msg(timeout=args.idle_timeout)
            except nats.errors.TimeoutError:
                break  # idle: nothing new for --idle-timeout seconds
            print(json.dumps(event_of(msg), sort_keys=True, ensure_ascii=False), flush=True)
            if args.durable:
                await msg.ack()
            count += 1
        await sub.unsubscribe()
    finally:
        await nc.close()
    print(f"read {count} event(s)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="the NATS server URL")
    parser.add_argument("--stream", required=True, help="the JetStream stream the relay fills")
    parser.add_argument("--subject", default=">", help="subject filter (default: all)")
    parser.add_argument("--durable", help="a durable consumer name (resume where it stopped)")
    parser.add_argument("--idle-timeout", type=float, default=2.0,
                        help="stop after this many seconds without a message (default 2)")
    parser.add_argument("--limit", type=int, help="stop after this many events")
    return asyncio.run(consume(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
