"""evstore with asyncio: append, read, a transaction, a projection and a tail, on one AsyncStore.

    python scripts/aio_example.py                      # SQLite file aio_example.db here
    EVSTORE_DATABASE_URL=postgresql://app@db/app python scripts/aio_example.py
"""

from __future__ import annotations

import argparse
import asyncio
import os

import evstore
import evstore.aio
from evstore import NO_STREAM, NewEvent


class Revenue:
    """A read model: the total paid, kept in a table of its own. apply() may be async."""

    name = "revenue"

    async def reset(self, tx: evstore.aio.AsyncTransaction) -> None:
        await tx.execute("DELETE FROM revenue")

    async def apply(self, tx: evstore.aio.AsyncTransaction, event: evstore.RecordedEvent) -> None:
        if event.type == "Paid":
            await tx.execute("UPDATE revenue SET total = total + ?", (event.data["amount"],))


async def main(url: str) -> None:
    async with await evstore.aio.connect(url) as store:
        await store.migrate()
        await store.execute("CREATE TABLE IF NOT EXISTS revenue (total INTEGER NOT NULL)")
        if not await store.execute("SELECT total FROM revenue"):
            await store.execute("INSERT INTO revenue (total) VALUES (0)")
        start = await store.head_position()
        # The tail runs beside the writers, as a task of its own.
        seen: list[evstore.RecordedEvent] = []

        async def follow() -> None:
            async with store.tail(after=start, idle_timeout=2) as tail:
                async for event in tail:
                    seen.append(event)
                    if len(seen) == 3:
                        return

        follower = asyncio.create_task(follow())
        stream = f"order-{start + 1}"
        await store.append(stream, [NewEvent("Placed", {"total": 30})], NO_STREAM)
        async with store.transaction() as tx:  # both events, or neither
            version = await tx.stream_version(stream)
            await tx.append(stream, [NewEvent("Paid", {"amount": 30})], version)
            await tx.append("ledger", [NewEvent("Credited", {"amount": 30})])
        events = await store.read_stream(stream)
        print(f"order-1: {', '.join(e.type for e in events)}")
        applied = await store.run_projection(Revenue())
        (total,), = await store.execute("SELECT total FROM revenue")
        print(f"projection applied {applied} events; revenue {total}")
        await follower
        print(f"tail saw {len(seen)} events, up to position {seen[-1].position}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=os.environ.get("EVSTORE_DATABASE_URL",
                                                             "sqlite:///aio_example.db"))
    asyncio.run(main(parser.parse_args().database))
