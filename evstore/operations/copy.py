"""`evstore copy SRC DST`: move a whole store to another database, SQLite or PostgreSQL either
way, keeping every event's position, id, version, type, data, metadata, time and digests.

What it copies is the source as of one moment, the position H it reads first: every event up
to H, and the stream heads, subscriptions (soft-deleted ones too) and snapshots of that moment,
read in one snapshot of the source (REPEATABLE READ on PostgreSQL, one read transaction on
SQLite). Events up to H never change afterwards (the log is append-only and readers never
skip), so the events are then copied batch by batch, each batch one transaction of the
destination, and a copy that dies goes on from the destination's highest position.

The steps:
1. The destination must be empty; copy migrates it (evstore's migrations only). It records
   the copy in evstore_copy (migration 0016): the source, H, and the event at H with its chain
   digest. In the same transaction it writes the heads, subscriptions and snapshots, reads
   them back and compares them with the source's.
2. Events, batch by batch in position order. Every event's content digest is recomputed from
   the very text that is written, and its chain link from the one before, so a source that
   fails `evstore verify` stops the copy. A writer thread writes and commits each batch while
   the next one is read, then reads the batch back from the destination and compares it with
   what was read from the source: count, highest position, every position, id, stream,
   version, type, time and both digests, and the chain walked over the destination. A resumed
   copy first compares what the destination holds already, range by range, the same way.
3. Nothing beyond H, every stream head at its last event; then the identity sequence (or
   AUTOINCREMENT) stands past the highest position, and the copy is marked finished.
The documents themselves are not read back: their digests were checked against the bytes
sent, and `evstore verify DST` digests them again as the destination returns them.
`--resume` continues an unfinished copy of the same log, or checks a finished one again.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from evstore.errors import CopyMismatch, CopyRefused
from evstore.events import chain_link, content_digest
from evstore.operations.copy_ends import End, EventRow, KeyRow, as_time, open_end
from evstore.urls import DatabaseURL

BATCH = 20_000  # events per destination transaction
VERIFY_PAGE = 20_000  # events compared per range

Progress = Callable[[str, int, int], None]  # (phase, done, total): "copy" or "verify"
Row = TypeVar("Row", bound=tuple[Any, ...])


@dataclass
class CopyReport:
    source: str
    destination: str
    through: int  # the source's position the copy is as of
    events: int = 0  # events in the destination
    copied: int = 0  # events written by this run
    resumed_after: int | None = None  # the destination's highest position when resumed
    streams: int = 0
    subscriptions: int = 0
    snapshots: int = 0
    chain_head: bytes | None = None
    already_finished: bool = False
    source_moved_on: int = 0  # positions the source has beyond `through`
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source, "destination": self.destination, "through": self.through,
            "events": self.events, "copied": self.copied, "resumed_after": self.resumed_after,
            "streams": self.streams, "subscriptions": self.subscriptions,
            "snapshots": self.snapshots,
            "chain_head": None if self.chain_head is None else self.chain_head.hex(),
            "already_finished": self.already_finished,
            "source_moved_on": self.source_moved_on, "seconds": round(self.seconds, 3),
        }


def copy_store(
    source: DatabaseURL,
    destination: DatabaseURL,
    *,
    resume: bool = False,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy the store at `source` into the empty database `destination` (see the module's
    docstring). Raises CopyRefused when the destination is not empty (unless `resume`
    continues the same copy) and CopyMismatch when the verification finds a difference."""
    started = time.monotonic()
    _check_urls(source, destination)
    src = open_end(source)
    try:
        dst = open_end(destination)
        try:
            report = _copy(src, dst, resume, batch_size, progress or _quiet)
        finally:
            dst.close()
    finally:
        src.close()
    report.seconds = time.monotonic() - started
    return report


def _quiet(phase: str, done: int, total: int) -> None:
    pass


def _check_urls(source: DatabaseURL, destination: DatabaseURL) -> None:
    for url, what in ((source, "source"), (destination, "destination")):
        if url.is_memory:
            raise CopyRefused(
                f"the {what} {url.redacted} is an in-memory database, which only its own "
                "process sees; copy to or from a file"
            )
    if source.dialect == "sqlite":
        assert source.sqlite_path is not None
        if not Path(source.sqlite_path).is_file():
            raise CopyRefused(
                f"no database at {source.sqlite_path!r}; check the source's path"
            )
    same = (
        Path(source.sqlite_path or "").resolve() == Path(destination.sqlite_path or "").resolve()
        if source.dialect == destination.dialect == "sqlite"
        else source.conninfo == destination.conninfo and source.dialect == destination.dialect
    )
    if same:
        raise CopyRefused(
            f"source and destination are the same database ({source.redacted}); name another "
            "destination"
        )


def _copy(src: End, dst: End, resume: bool, batch: int, progress: Progress) -> CopyReport:
    if not src.run("event_store_exists"):
        raise CopyRefused(
            f"the source {src.url.redacted} has no event store; check its URL (and schema)"
        )
    marker = _destination_marker(dst, resume)
    report = CopyReport(src.url.redacted, dst.url.redacted, 0)
    if marker is None:
        _start(src, dst, report)
    else:
        _check_same_copy(src, dst, marker, report)
    through = report.through
    # What the destination holds already (a resumed or finished copy) is compared with the
    # source first; the events copied by this run are compared batch by batch as they land.
    chain = _verify_range(src, dst, report.resumed_after or 0, report, progress)
    if not report.already_finished:
        _copy_events(src, dst, through, batch, chain, report, progress)
    _verify_rest(dst, through)
    head = src.run("copy_head")
    report.source_moved_on = (int(head[0][0]) - through) if head else 0
    if not report.already_finished:
        with dst.write_transaction():
            dst.finish()
            dst.run("copy_marker_finish")
    return report


# -- the destination -------------------------------------------------------------------------


def _destination_marker(dst: End, resume: bool) -> tuple[Any, ...] | None:
    """The destination's copy record when resuming; None for an empty destination, migrated
    here. Anything else is refused before anything is written."""
    where = dst.url.redacted
    if dst.is_standby():
        raise CopyRefused(
            f"{where} is a standby (a PostgreSQL server in recovery), which serves reads only; "
            "copy into the primary, and the standby receives the copy by replication"
        )
    if not dst.run("event_store_exists"):
        _migrate(dst)
        return None
    streams, head, subscriptions, snapshots = dst.run("copy_contents")[0]
    marker = dst.run("copy_marker") if dst.run("copy_table_exists") else []
    if marker:
        if not resume:
            state = "a finished" if marker[0][4] is not None else "an unfinished"
            raise CopyRefused(
                f"{where} holds {state} copy of {marker[0][0]} (up to position "
                f"{marker[0][1]}); pass --resume to continue it (or check it again), or copy "
                "into an empty database"
            )
        return marker[0]
    if streams or head or subscriptions or snapshots:
        raise CopyRefused(
            f"{where} is not empty ({streams} stream(s), events up to position {head or 0}, "
            f"{subscriptions} subscription(s), {snapshots} snapshot(s)) and no copy was "
            "started into it; copy into an empty database"
            + (" (--resume continues only a copy that `evstore copy` started)" if resume
               else "")
        )
    _migrate(dst)  # empty, perhaps migrated before 0016
    return None


def _migrate(dst: End) -> None:
    from evstore.store import Store

    with Store(dst.url) as store:
        store.migrate()


def _start(src: End, dst: End, report: CopyReport) -> None:
    """Record the copy, and copy the heads, subscriptions and snapshots of one moment of the
    source, with the position that moment ends at."""
    with src.consistent_read():
        head = src.run("copy_head")
        through, event_id, chain = head[0] if head else (0, None, None)
        report.through = int(through)
        with dst.write_transaction():
            dst.run("copy_marker_start", source=src.url.redacted, source_position=through,
                    source_event_id=event_id, source_chain_digest=chain)
            report.streams = _copy_table(src.streams, dst.streams, dst.insert_streams,
                                         "stream head", 0)
            report.subscriptions = _copy_table(
                src.subscriptions, dst.subscriptions, dst.insert_subscriptions, "subscription", 0)
            report.snapshots = _copy_table(src.snapshots, dst.snapshots, dst.insert_snapshots,
                                           "snapshot", 0)


def _copy_table(
    read: Callable[[], Iterator[Row]],
    read_back: Callable[[], Iterator[Row]],
    write: Callable[[Iterable[Row]], None],
    what: str,
    key: int,
) -> int:
    """Stream rows from the source into the destination, then read them back and compare.
    Returns the number of rows."""
    written = _Fingerprint()
    write(written.through(read()))
    back = _Fingerprint()
    for _ in back.through(read_back()):
        pass
    if (written.count, written.digest()) != (back.count, back.digest()):
        _name_first_difference(read(), read_back(), what, key)
    return written.count


def _name_first_difference(
    source: Iterator[Row], destination: Iterator[Row], what: str, key: int
) -> None:
    for a, b in _pairs(source, destination):
        if a != b:
            shown = a[key] if a is not None else b[key]  # type: ignore[index]
            raise CopyMismatch(
                f"{what} {shown!r} differs: the source has {a!r}, the destination {b!r}"
            )
    raise CopyMismatch(f"the {what}s differ between the source and the destination")


def _pairs(a: Iterator[Row], b: Iterator[Row]) -> Iterator[tuple[Row | None, Row | None]]:
    done = object()
    while True:
        x, y = next(a, done), next(b, done)
        if x is done and y is done:
            return
        yield (None if x is done else x), (None if y is done else y)  # type: ignore[misc]


def _check_same_copy(src: End, dst: End, marker: tuple[Any, ...], report: CopyReport) -> None:
    """A resumed copy goes on only from the same log: the source must still hold the event
    the copy was started at, and the destination's newest event must be the source's."""
    source, through, event_id, chain, finished = marker
    report.through = int(through)
    report.already_finished = finished is not None
    if through:
        at = src.run("copy_event_at", position=through)
        if not at or at[0][1] != event_id or _bytes(at[0][2]) != _bytes(chain):
            raise CopyRefused(
                f"{dst.url.redacted} holds a copy of another log: it was copied from {source} "
                f"up to position {through} (event {event_id}), and {src.url.redacted} holds "
                f"{'no event' if not at else 'event ' + at[0][1]} there; resume with the "
                "source it was started from, or copy into an empty database"
            )
    streams, head, subscriptions, snapshots = dst.run("copy_contents")[0]
    report.streams, report.subscriptions, report.snapshots = streams, subscriptions, snapshots
    report.resumed_after = int(head or 0)
    if head:
        mine, theirs = dst.run("copy_event_at", position=head), src.run(
            "copy_event_at", position=head)
        if not theirs or (mine[0][1], _bytes(mine[0][2])) != (theirs[0][1],
                                                               _bytes(theirs[0][2])):
            raise CopyMismatch(
                f"event at position {head}: the destination has {mine[0][1]}, the source "
                f"{'nothing' if not theirs else theirs[0][1]}; the destination was changed "
                "after the copy started. Copy into an empty database"
            )


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


# -- events ----------------------------------------------------------------------------------


def _copy_events(
    src: End,
    dst: End,
    through: int,
    batch: int,
    chain: bytes,
    report: CopyReport,
    progress: Progress,
) -> None:
    """Batch by batch, in three threads: this one reads a batch from the source, checks its
    digests and formats it for the destination; a writer writes and commits the batch before
    it; a verifier, on a connection of its own, reads each committed batch back and compares
    it with what was read from the source."""
    after = report.resumed_after or 0
    checked = _Chain(chain)  # the source's chain, as read
    landed = _Chain(chain)  # the destination's chain, as read back
    progress("copy", after, through)
    back = open_end(dst.url)

    def verify(rows: list[EventRow], start: int) -> None:
        end = rows[-1][0]
        ours = back.keys(start, end, len(rows) + 1)
        for key, row in _pairs(iter([_key(r) for r in rows]), iter(ours)):
            _compare(key, row, start, end)
            assert row is not None
            landed.follow(row, "the destination's")
        report.copied += len(rows)
        report.events += len(ours)
        progress("copy", end, through)

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="evstore-verify") as verifier, \
                ThreadPoolExecutor(1, thread_name_prefix="evstore-write") as writer:

            def write(data: Any, rows: list[EventRow], start: int) -> Future[None]:
                with dst.write_transaction():
                    dst.insert_encoded(data)
                return verifier.submit(verify, rows, start)

            writing: Future[Future[None]] | None = None
            verifying: deque[Future[None]] = deque()
            while after < through:
                rows = src.events(after, through, batch)
                if not rows:
                    break
                _check_source(rows, checked)
                data = dst.encode_events(rows)
                if writing is not None:
                    verifying.append(writing.result())  # the batch before is committed
                # At most two committed batches wait for their comparison (flat memory);
                # the first difference stops the copy here.
                while verifying and (verifying[0].done() or len(verifying) > 2):
                    verifying.popleft().result()
                writing = writer.submit(write, data, rows, after)
                after = rows[-1][0]
            if writing is not None:
                verifying.append(writing.result())
            for done in verifying:
                done.result()
    finally:
        back.close()
    report.chain_head = landed.previous or report.chain_head


def _key(row: EventRow) -> KeyRow:
    """An event's keys: what the verification compares."""
    return (row[0], row[1], row[2], row[3], row[4], row[7], row[8], row[9])


class _Chain:
    """The hash chain walked in position order: each link must follow from the one before."""

    def __init__(self, previous: bytes) -> None:
        self.previous = previous

    def follow(self, row: KeyRow, whose: str) -> None:
        position, event_id, stream_id, version, _, _, content, chain = row
        if chain is None:
            return
        chain = bytes(chain)
        link = chain_link(self.previous, bytes(content or b""), event_id, version, stream_id)
        if link != chain:
            raise CopyMismatch(
                f"{whose} event at position {position} (stream {stream_id!r} version "
                f"{version}, id {event_id}): its chain digest does not follow from the event "
                "before it"
                + (". The source's log was changed; run `evstore verify` on it. The "
                   "destination holds the events before it" if whose == "source" else "")
            )
        self.previous = chain


def _check_source(rows: list[EventRow], chain: _Chain) -> None:
    """Every event's content digest again from the text about to be written, and its chain
    link from the one before: a source that fails `evstore verify` is not copied on."""
    for row in rows:
        position, event_id, stream_id, version, etype, data, meta, _, content, _ = row
        if content is not None and content_digest(etype, data, meta) != bytes(content):
            raise CopyMismatch(
                f"source event at position {position} (stream {stream_id!r} version "
                f"{version}, id {event_id}): its content digest does not match its type, data "
                "and metadata. The source's log was changed; run `evstore verify` on it. The "
                "destination holds the events before it"
            )
        chain.follow(_key(row), "source")


# -- verification ----------------------------------------------------------------------------


def _verify_range(
    src: End, dst: End, through: int, report: CopyReport, progress: Progress
) -> bytes:
    """Compare the destination's events up to `through` with the source's, range by range,
    and walk the destination's chain over them; returns the chain digest at `through`."""
    after, count = 0, 0
    chain = _Chain(b"")
    if through:
        progress("verify", 0, through)
    while after < through:
        theirs = src.keys(after, through, VERIFY_PAGE)
        end = theirs[-1][0] if len(theirs) == VERIFY_PAGE else through
        # One row more than the source has: an extra event in the destination shows.
        ours = dst.keys(after, end, len(theirs) + 1)
        for key, row in _pairs(iter(theirs), iter(ours)):
            _compare(key, row, after, end)
            assert row is not None
            chain.follow(row, "the destination's")
        count += len(ours)
        after = end
        progress("verify", after, through)
    report.events = count
    report.chain_head = chain.previous or None
    return chain.previous


def _verify_rest(dst: End, through: int) -> None:
    """Nothing beyond `through`, and every stream head at its stream's last event."""
    top = dst.run("copy_head")
    if top and int(top[0][0]) > through:
        raise CopyMismatch(
            f"the destination holds events after position {through}, up to {top[0][0]}, "
            "which the copy did not write: something appended to it during the copy"
        )
    heads = dst.run("verify_heads", limit=1)
    if heads:
        stream_id, head, last = heads[0]
        raise CopyMismatch(
            f"stream {stream_id!r}: the destination's head says version {head}, but its log "
            f"has {'no events' if last is None else f'its last event at version {last}'}"
        )


_KEYS = ("position", "event_id", "stream_id", "version", "event_type", "recorded_at",
         "content_digest", "chain_digest")


def _compare(key: KeyRow | None, row: KeyRow | None, after: int, end: int) -> None:
    """One event of the source (its keys) against the destination's, naming what differs."""
    if key is None or row is None:
        present = row if key is None else key
        assert present is not None
        raise CopyMismatch(
            f"positions {after + 1} to {end}: the event at position {present[0]} is missing "
            f"from the {'source' if key is None else 'destination'}"
        )
    mine = (*row[:5], as_time(row[5]), _bytes(row[6]), _bytes(row[7]))
    theirs = (*key[:5], as_time(key[5]), _bytes(key[6]), _bytes(key[7]))
    if mine[0] != theirs[0]:
        first = min(mine[0], theirs[0])
        raise CopyMismatch(
            f"positions {after + 1} to {end}: the event at position {first} is missing from "
            f"the {'destination' if first == theirs[0] else 'source'}"
        )
    if mine != theirs:
        field = next(n for n, a, b in zip(_KEYS, theirs, mine, strict=True) if a != b)
        raise CopyMismatch(
            f"event at position {key[0]}: {field} differs, the source has "
            f"{_shown(theirs, field)}, the destination {_shown(mine, field)}"
        )


def _shown(row: tuple[Any, ...], field: str) -> str:
    value = row[_KEYS.index(field)]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return repr(value)


class _Fingerprint:
    """A count and a SHA-256 over rows of plain values, to compare two reads of a table."""

    def __init__(self) -> None:
        self.count = 0
        self._hash = hashlib.sha256()

    def through(self, rows: Iterable[Row]) -> Iterator[Row]:
        update = self._hash.update
        for row in rows:
            self.count += 1
            update(repr(tuple(_plain(v) for v in row)).encode())
            yield row

    def digest(self) -> bytes:
        return self._hash.digest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, memoryview):
        return bytes(value)
    return value
