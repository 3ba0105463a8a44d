"""evstore copy: move a whole store to another database, SQLite or PostgreSQL either way."""

from __future__ import annotations

import argparse
from typing import Any

from evstore.cli.common import EXIT_OK, Add, Options, print_json, progress_bar, whole_number
from evstore.urls import parse_url

DESCRIPTION = """\
Copy the store at SRC_URL into DST_URL: every event with its position, id, version, type,
data, metadata, time and both digests, the stream heads, the subscriptions (soft-deleted ones
too) and the snapshots, as they are when the copy starts. Events appended to the source
afterwards are not copied.

DST_URL must be an empty database (a SQLite file is created); the copy runs evstore's own
migrations on it first. A destination that holds anything else is refused (exit 2).

The copy checks every event's digests as it reads it, writes batches with the driver's fast
path (binary COPY on PostgreSQL, executemany on SQLite), and compares every batch it wrote
with the source: count, highest position, every position, id, stream, version, type, time and
both digests, and the hash chain. It exits 1 naming the first difference. Afterwards the
destination's next append gets the next position and the next version. Write to the
destination only once the copy has finished.

A copy that stopped (killed, lost connection) continues with --resume and the same SRC_URL;
--resume on a finished copy compares it with the source again."""


def cmd_copy(args: argparse.Namespace) -> int:
    from evstore.operations.copy import copy_store

    source, destination = parse_url(args.source), parse_url(args.destination)
    bars: dict[str, Any] = {}

    def progress(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[phase] = progress_bar(total, True)
            bar.set_description(phase)
        bar.update(done - bar.n)

    try:
        report = copy_store(source, destination, resume=args.resume,
                            batch_size=args.batch_size, progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    if args.json:
        print_json(report.to_dict())
        return EXIT_OK
    if report.already_finished:
        print(f"{report.destination} holds a finished copy of {report.source} up to "
              f"position {report.through}; compared it with the source again")
    else:
        resumed = (f", resumed after position {report.resumed_after}"
                   if report.resumed_after else "")
        rate = report.copied / report.seconds if report.seconds else 0.0
        print(f"copied {report.copied} event(s) in {report.seconds:.1f}s ({rate:,.0f}/s)"
              f"{resumed}")
    print(f"verified {report.events} event(s) up to position {report.through}, "
          f"{report.streams} stream head(s), {report.subscriptions} subscription(s), "
          f"{report.snapshots} snapshot(s): identical to the source")
    if report.chain_head is not None:
        print(f"chain head at position {report.through}: {report.chain_head.hex()}")
    if report.source_moved_on:
        print(f"the source has appended beyond position {report.through} since the copy "
              "started; those events are not in this copy")
    return EXIT_OK


def register(add: Add, o: Options) -> None:
    """The copy command's parser."""
    p = add("copy", "copy a whole store into an empty database, SQLite or PostgreSQL either "
            "way, keeping positions, ids and digests, and verify it", o.out)
    p.description = DESCRIPTION
    p.add_argument("source", metavar="SRC_URL", help="the store to copy (it is only read)")
    p.add_argument("destination", metavar="DST_URL",
                   help="an empty database; the copy migrates it first")
    p.add_argument("--resume", action="store_true",
                   help="continue a copy into DST_URL that stopped, from the same source (or "
                        "compare a finished one with the source again)")
    p.add_argument("--batch-size", type=whole_number(1, "a batch size"), default=20_000,
                   metavar="N", help="events per destination transaction (default 20000)")
    p.set_defaults(func=cmd_copy)
