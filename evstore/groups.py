"""Consumer groups: n processes share the log, each stream belonging to exactly one member.

Membership. A stream belongs to member `member_of(stream_id, n)`: the first 8 bytes of the
SHA-256 of the stream id's UTF-8 bytes, read as a big-endian unsigned integer, modulo n. It is
computed in Python on the shared read path, so it is the same on both dialects by
construction (README, "Consumer groups", says why the filter is not in SQL). A stream's
events reach its member in version order, because members read the log in position order.

Checkpoints. Member i of a group of n > 1 named NAME keeps its checkpoint in `subscription`
as `NAME/member-i-of-n`; a group of one is the plain consumer, whose checkpoint is `NAME`. A
member's checkpoint is the position up to which it has read the log (its own events applied,
the others' skipped).

Claims. A member is held by one process at a time through a lease row in
consumer_group_lease (migration 0013), renewed in every batch's transaction and given back
when the Store closes. A claim is refused while another holder's lease is live, and while a
live lease or a checkpoint of the same NAME says the group has another size: that change
needs `reset_group` (`evstore group reset NAME --yes`) first.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evstore.dialects import shared
from evstore.dialects.base import Plan, call
from evstore.dialects.shared import Queries
from evstore.errors import GroupSizeChanged, InvalidInput, MemberClaimed, MemberOutOfRange
from evstore.events import MAX_ID_LENGTH, RecordedEvent, check_name

if TYPE_CHECKING:
    from evstore.dialects.base import Backend

LEASE_SECONDS = 30.0  # a member's lease lasts this long after its last renewal
MAX_GROUP_SIZE = 2**31 - 1  # an integer column on both dialects
MEMBER_SEPARATOR = "/member-"
_MEMBER_NAME = re.compile(r"/member-(\d+)-of-(\d+)")


def member_of(stream_id: str, group_size: int) -> int:
    """The member that owns a stream: the first 8 bytes of SHA-256(UTF-8 stream id) as a
    big-endian unsigned integer, modulo group_size."""
    digest = hashlib.sha256(stream_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % group_size


class Membership:
    """Which streams one member owns; remembers the answer per stream id."""

    __slots__ = ("_cache", "member", "size")

    def __init__(self, member: int, size: int) -> None:
        self.member = member
        self.size = size
        self._cache: dict[str, bool] = {}

    def owns(self, event: RecordedEvent) -> bool:
        stream_id = event.stream_id
        mine = self._cache.get(stream_id)
        if mine is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            mine = self._cache[stream_id] = member_of(stream_id, self.size) == self.member
        return mine


def check_member(member: object, size: object) -> tuple[int, int] | None:
    """(member, size), or None when neither is given; MemberOutOfRange otherwise."""
    if member is None and size is None:
        return None
    if member is None or size is None:
        raise MemberOutOfRange(
            "give both group_member and group_size (member i of a group of n), or neither"
        )
    for value, what in ((member, "group_member"), (size, "group_size")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise MemberOutOfRange(f"{what} must be an int, not {type(value).__name__}")
    assert isinstance(member, int) and isinstance(size, int)
    if not 1 <= size <= MAX_GROUP_SIZE:
        raise MemberOutOfRange(f"group_size must be from 1 to {MAX_GROUP_SIZE}, not {size}")
    if not 0 <= member < size:
        raise MemberOutOfRange(
            f"group_member {member} is out of range for a group of {size}: members are "
            f"numbered 0 to {size - 1}"
        )
    return member, size


def checkpoint_name(name: str, member: int, size: int) -> str:
    """The checkpoint of member `member` of a group of `size` named `name`."""
    if size == 1:
        return name
    full = f"{name}{MEMBER_SEPARATOR}{member}-of-{size}"
    if len(full) > MAX_ID_LENGTH:
        raise InvalidInput(
            f"the checkpoint name {full[:40]!r}... of this group member is {len(full)} "
            f"characters long; the limit is {MAX_ID_LENGTH}: use a shorter name"
        )
    return full


def check_group_name(name: object) -> str:
    text = check_name(name, "consumer group name")
    if MEMBER_SEPARATOR in text:
        raise InvalidInput(
            f"consumer group name {text!r} contains {MEMBER_SEPARATOR!r}, which evstore "
            "uses to name member checkpoints; choose another name"
        )
    return text


@dataclass(frozen=True)
class MemberState:
    """One row of `group_status`: a member's checkpoint and lease."""

    member: int
    group_size: int
    checkpoint: str | None  # the checkpoint's name, None when it has none
    position: int
    holder: str | None
    expires_at: str | None  # ISO-8601 UTC
    live: bool  # the lease is held now

    def to_dict(self) -> dict[str, Any]:
        return {
            "member": self.member, "group_size": self.group_size,
            "checkpoint": self.checkpoint, "position": self.position,
            "holder": self.holder, "expires_at": self.expires_at, "live": self.live,
        }


def _checkpoint_sizes(q: Queries, name: str) -> Plan[dict[str, tuple[int, int, int]]]:
    """The group's live checkpoints: name -> (member, size, position)."""
    prefix = name + MEMBER_SEPARATOR
    rows = yield from shared.run(q, "group_checkpoints", {
        "group_name": name, "member_prefix": prefix, "prefix_length": len(prefix),
    })
    found: dict[str, tuple[int, int, int]] = {}
    for checkpoint, position in rows:
        if checkpoint == name:
            found[checkpoint] = (0, 1, int(position))
            continue
        match = _MEMBER_NAME.fullmatch(checkpoint[len(name):])
        if match:
            found[checkpoint] = (int(match[1]), int(match[2]), int(position))
    return found


def _leases(q: Queries, name: str) -> Plan[list[tuple[int, int, str, str, bool]]]:
    rows = yield from shared.run(q, "group_leases", {"group_name": name})
    return [
        (int(member), int(size), str(holder), str(expires), bool(live))
        for member, size, holder, expires, live in rows
    ]


def _lock(q: Queries, name: str) -> Plan[None]:
    # SQLite: the transaction's BEGIN IMMEDIATE already excludes every other writer.
    if q.dialect == "postgres":
        yield from shared.run(q, "postgres_lock_group", {"group_name": name})


def _refuse_other_sizes(q: Queries, name: str, size: int, holder: str | None) -> Plan[None]:
    sizes: set[int] = set()
    where: list[str] = []
    checkpoints = yield from _checkpoint_sizes(q, name)
    for checkpoint, (_, other, position) in sorted(checkpoints.items()):
        if other != size and position > 0:
            sizes.add(other)
            where.append(f"checkpoint {checkpoint!r} at position {position}")
    for member, other, who, expires, live in (yield from _leases(q, name)):
        if other != size and live and who != holder:
            sizes.add(other)
            where.append(f"member {member} of {other} held by {who} until {expires}")
    if sizes:
        shown = ", ".join(str(s) for s in sorted(sizes))
        raise GroupSizeChanged(
            f"consumer group {name!r} was run with group size {shown}, not {size} "
            f"({'; '.join(where)}). Changing the size moves streams between members, so "
            "their checkpoints no longer mean anything. Stop every member, then reset the "
            f"group (`evstore group reset {name} --yes`, or store.reset_group(...)) and reset "
            "what its members built, or keep the old size"
        )


class Leases:
    """The member leases one Store holds; the Store gives them back when it closes.

    Each operation is a plan (evstore.plans), for the Store's and the AsyncStore's drivers;
    claim, renew, release and release_all run it on a sync backend, for the relay."""

    def __init__(self) -> None:
        self.holder = f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.held: set[tuple[str, int]] = set()

    def claiming(
        self, q: Queries, name: str, member: int, size: int, ttl: float = LEASE_SECONDS,
    ) -> Plan[None]:
        """Claim a member (in one transaction with the size check), or raise."""
        yield call("transaction", self._claim(q, name, member, size, ttl))

    def _claim(self, q: Queries, name: str, member: int, size: int, ttl: float) -> Plan[None]:
        yield from _lock(q, name)
        yield from _refuse_other_sizes(q, name, size, self.holder)
        yield from self.renewing(q, name, member, size, ttl)

    def renewing(
        self, q: Queries, name: str, member: int, size: int, ttl: float = LEASE_SECONDS,
    ) -> Plan[None]:
        """Extend this holder's lease (or take a free or expired one); MemberClaimed when
        another process holds the member. Run it inside the work's own transaction, so work
        commits only under a lease."""
        granted = yield from shared.run(q, "claim_group_member", {
            "group_name": name, "member": member, "group_size": size,
            "holder": self.holder, "ttl_seconds": float(ttl),
        })
        if granted:
            self.held.add((name, member))
            return
        self.held.discard((name, member))
        leases = yield from _leases(q, name)
        lease = next((row for row in leases if row[0] == member), None)
        who, until = (lease[2], lease[3]) if lease else ("another process", "?")
        raise MemberClaimed(
            f"member {member} of consumer group {name!r} (size {size}) is held by {who} "
            f"until {until}: two processes may not run the same member. Stop the other "
            f"process, or run a different member; a crashed holder's lease expires "
            f"{ttl:g} s after its last renewal"
        )

    def releasing(self, q: Queries, name: str, member: int) -> Plan[None]:
        yield from shared.run(q, "release_group_member", {
            "group_name": name, "member": member, "holder": self.holder,
        })
        self.held.discard((name, member))

    def releasing_all(self, q: Queries) -> Plan[None]:
        for name, member in sorted(self.held):
            try:
                yield from self.releasing(q, name, member)
            except Exception:  # closing anyway: an unreleased lease expires by itself
                pass
        self.held.clear()

    # On a sync backend (the relay holds one):

    def claim(
        self, backend: Backend, name: str, member: int, size: int,
        ttl: float = LEASE_SECONDS,
    ) -> None:
        shared.drive(backend, self.claiming(_queries(backend), name, member, size, ttl))

    def renew(
        self, backend: Backend, name: str, member: int, size: int,
        ttl: float = LEASE_SECONDS,
    ) -> None:
        shared.drive(backend, self.renewing(_queries(backend), name, member, size, ttl))

    def release(self, backend: Backend, name: str, member: int) -> None:
        shared.drive(backend, self.releasing(_queries(backend), name, member))

    def release_all(self, backend: Backend) -> None:
        shared.drive(backend, self.releasing_all(_queries(backend)))


def _queries(backend: Backend) -> Queries:
    return backend.queries  # type: ignore[attr-defined, no-any-return]


def refuse_if_grouped(q: Queries, name: str) -> Plan[None]:
    """A plain run_projection is a group of one: refuse it while member checkpoints or live
    members of a larger group exist."""
    yield from _refuse_other_sizes(q, name, 1, None)


def run_projection(
    q: Queries,
    leases: Leases,
    projection: Any,
    member: int,
    size: int,
    batch_size: int,
    progress: Callable[[int], Any] | None,
) -> Plan[int]:
    """Run one member of a projection's group: every event of its streams after its
    checkpoint, a page of the log per transaction, with the lease renewed in it."""
    name = check_group_name(projection.name)
    checkpoint = checkpoint_name(name, member, size)
    yield from leases.claiming(q, name, member, size)
    owns = Membership(member, size).owns
    applied = 0
    while True:
        mine = yield call("transaction", _member_batch(q, leases, projection, name, member,
                                                       size, checkpoint, owns, batch_size))
        if mine is None:
            return applied
        applied += mine
        if progress is not None and mine:
            yield call("callback", progress, mine)


def _member_batch(
    q: Queries, leases: Leases, projection: Any, name: str, member: int, size: int,
    checkpoint: str, owns: Callable[[RecordedEvent], bool], batch_size: int,
) -> Plan[int | None]:
    """One page of the log in one transaction: the number of this member's events applied,
    or None at the end of the log."""
    yield from leases.renewing(q, name, member, size)
    position = yield from shared.checkpoint(q, checkpoint, True)
    events = yield from shared.read_all(q, position, batch_size, None)
    if not events:
        return None
    mine = [event for event in events if owns(event)]
    for event in mine:
        yield call("apply", projection.apply, event)
    yield from shared.set_checkpoint(q, checkpoint, events[-1].position)
    return len(mine)


def group_status(q: Queries, name: str) -> Plan[list[MemberState]]:
    """Every member that has a checkpoint or a lease row, by size and member."""
    name = check_group_name(name)
    states: dict[tuple[int, int], MemberState] = {}
    checkpoints = yield from _checkpoint_sizes(q, name)
    for checkpoint, (member, size, position) in checkpoints.items():
        states[(size, member)] = MemberState(member, size, checkpoint, position, None, None,
                                             False)
    for member, size, holder, expires, live in (yield from _leases(q, name)):
        before = states.get((size, member))
        states[(size, member)] = MemberState(
            member, size, before.checkpoint if before else None,
            before.position if before else 0, holder, expires, live,
        )
    return [states[key] for key in sorted(states)]


def reset_group(
    q: Queries, leases: Leases, name: str, reset: Callable[..., Any] | None,
) -> Plan[list[MemberState]]:
    """Soft-delete every checkpoint of the group (the plain one and every member's, of any
    size) and its lease rows, in one transaction with `reset(tx)` when given. Refused while
    another process holds a member. Returns what was reset."""
    name = check_group_name(name)
    before: list[MemberState] = yield call("transaction", _reset(q, leases, name, reset))
    leases.held = {held for held in leases.held if held[0] != name}
    return before


def _reset(
    q: Queries, leases: Leases, name: str, reset: Callable[..., Any] | None,
) -> Plan[list[MemberState]]:
    yield from _lock(q, name)
    busy = [row for row in (yield from _leases(q, name)) if row[4] and row[2] != leases.holder]
    if busy:
        listed = "; ".join(f"member {m} of {s} held by {h} until {e}"
                           for m, s, h, e, _ in busy)
        raise MemberClaimed(
            f"cannot reset consumer group {name!r} while it runs ({listed}); stop those "
            "processes first, or wait until their leases expire"
        )
    before = yield from group_status(q, name)
    for state in before:
        if state.checkpoint is not None:
            yield from shared.delete_checkpoint(q, state.checkpoint)
    yield from shared.run(q, "delete_group_leases", {"group_name": name})
    if reset is not None:
        yield call("apply", reset)
    return before
