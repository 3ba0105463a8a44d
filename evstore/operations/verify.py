"""`evstore verify`: prove that the stored log is still what was appended.

Two passes, both with flat memory:
1. Every event, page by page in position order: its content digest is recomputed from its
   type, data and metadata (events.digest_of) and compared with the stored one.
2. Per-stream rules, each one query that the database answers from its indexes: versions run
   1..n (or 0..n for a stream that starts at 0) with no gap, positions grow with versions,
   and each stream head equals its last event.
Findings are data; the command line prints them and exits 1 when there is any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evstore.events import RecordedEvent, chain_link, digest_of

if TYPE_CHECKING:
    from evstore.store import Store

# The queries are verify_* in sql/queries/<dialect>.sql (the same text on both dialects).


@dataclass(frozen=True, order=True)
class Finding:
    """One broken rule: `kind` is digest, digest-missing, versions, position-order, head or
    position; position is the event's where one event is at fault."""

    kind: str
    stream_id: str
    position: int | None
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class VerifyReport:
    events: int = 0
    streams: int = 0
    legacy: int = 0  # events stored before migration 0009, without a digest
    findings: list[Finding] = field(default_factory=list)
    truncated: bool = False  # more findings than max_findings
    chain_head: bytes | None = None  # the newest event's chain digest: record it elsewhere
    chain_head_position: int | None = None

    @property
    def intact(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, object]:
        return {
            "intact": self.intact,
            "events": self.events,
            "streams": self.streams,
            "events_without_digest_before_0009": self.legacy,
            "truncated": self.truncated,
            "chain_head": None if self.chain_head is None else self.chain_head.hex(),
            "chain_head_position": self.chain_head_position,
            "findings": [
                {"kind": f.kind, "stream_id": f.stream_id, "position": f.position,
                 "message": f.message}
                for f in self.findings
            ],
        }


def verify(
    store: Store,
    *,
    page_size: int = 1000,
    max_findings: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check every event's digest and every stream's versions, positions and head.
    `progress` is called with the number of positions each page covered."""
    report = VerifyReport()
    findings = report.findings
    digested_since: int | None = None  # position of the first event that has a digest

    def add(finding: Finding) -> None:
        if len(findings) < max_findings:
            findings.append(finding)
        else:
            report.truncated = True

    def check(event: RecordedEvent) -> None:
        nonlocal digested_since
        report.events += 1
        where = f"event at position {event.position} (stream {event.stream_id!r} version " \
                f"{event.version}, id {event.event_id})"
        stored = event.content_digest
        if stored is None:
            if digested_since is None:
                report.legacy += 1
            else:
                add(Finding("digest-missing", event.stream_id, event.position,
                            f"{where}: no content digest, though events before it have one; "
                            "it was not written by evstore's append"))
            return
        if digested_since is None:
            digested_since = event.position
        if digest_of(event.type, event.data, event.metadata) != stored:
            add(Finding("digest", event.stream_id, event.position,
                        f"{where}: content digest does not match its type, data and "
                        "metadata; the event was changed after it was appended"))

    limit = max_findings + 1
    # Readers and tails never see positions below 1: look for such rows first, on their own.
    for row in store.run_query("verify_below_one", limit=limit):
        hidden = _record(store.dialect, row)
        add(Finding("position", hidden.stream_id, hidden.position,
                    f"event at position {hidden.position} (stream {hidden.stream_id!r} version "
                    f"{hidden.version}, id {hidden.event_id}): position below 1, hidden from "
                    "every reader and tail; positions are drawn by the database"))
        check(hidden)
    done = 0
    for event in store.iter_all(page_size=page_size):
        check(event)
        if progress is not None and event.position > done:
            progress(event.position - done)
            done = event.position

    _check_chain(store, page_size, report, add)
    for stream_id, count, low, high in store.run_query("verify_version_gaps", limit=limit):
        add(Finding("versions", stream_id, None,
                    f"stream {stream_id!r}: versions are not 1..n (or 0..n) without gaps "
                    f"({count} events, versions {low} to {high})"))
    order = store.run_query("verify_position_order", limit=limit)
    for stream_id, version, position, previous in order:
        add(Finding("position-order", stream_id, position,
                    f"stream {stream_id!r}: version {version} is at position {position}, "
                    f"before the previous version's position {previous}"))
    for stream_id, head, last in store.run_query("verify_heads", limit=limit):
        shown = "no events" if last is None else f"last event at version {last}"
        add(Finding("head", stream_id, None,
                    f"stream {stream_id!r}: head says version {head}, but the log has "
                    f"{shown}"))
    for stream_id, last in store.run_query("verify_headless", limit=limit):
        add(Finding("head", stream_id, None,
                    f"stream {stream_id!r}: events up to version {last} but no stream head"))
    report.streams = int(store.run_query("verify_stream_count")[0][0])
    findings.sort()
    return report


def _record(dialect: str, row: tuple[object, ...]) -> RecordedEvent:
    """A record from a verify_below_one row: JSON text on SQLite, decoded jsonb on PostgreSQL."""
    position, stream_id, version, event_id, event_type, payload, metadata, digest = row
    values = (position, stream_id, version, event_id, event_type, payload, metadata,
              "1970-01-01T00:00:00+00:00", digest)
    if dialect == "sqlite":
        return RecordedEvent.from_row(values)
    return RecordedEvent.from_decoded_row(values)


def _check_chain(
    store: Store, page_size: int, report: VerifyReport, add: Callable[[Finding], None]
) -> None:
    """Recompute the hash chain in position order. A link that does not follow from the one
    before it means an event before it was removed, inserted or changed; the walk then goes on
    from the stored link, so each break is reported once."""
    previous: bytes | None = None
    after = 0
    while True:
        rows = store.run_query("verify_chain_page", after=after, limit=page_size)
        for position, event_id, stream_id, version, content, chain in rows:
            content = None if content is None else bytes(content)
            chain = None if chain is None else bytes(chain)
            if chain is None:
                if previous is not None:
                    add(Finding("chain", stream_id, position,
                                f"event at position {position} (stream {stream_id!r} version "
                                f"{version}, id {event_id}): no chain digest, though events "
                                "before it have one"))
                continue
            expected = chain_link(previous or b"", content or b"", event_id, version, stream_id)
            if chain != expected:
                add(Finding("chain", stream_id, position,
                            f"event at position {position} (stream {stream_id!r} version "
                            f"{version}, id {event_id}): chain digest does not follow from the "
                            "event before it; an event before it was removed, inserted or "
                            "changed"))
            previous = chain
            report.chain_head, report.chain_head_position = chain, position
        if len(rows) < page_size:
            return
        after = rows[-1][0]
