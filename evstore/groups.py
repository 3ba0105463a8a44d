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

from evstore.errors import GroupSizeChanged, InvalidInput, MemberClaimed, MemberOutOfRange
from evstore.events import MAX_ID_LENGTH, RecordedEvent, check_name

if TYPE_CHECKING:
    from evstore.dialects.base import Backend
    from evstore.store import Projection, Store, Transaction

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


def _checkpoint_sizes(backend: Backend, name: str) -> dict[str, tuple[int, int, int]]:
    """The group's live checkpoints: name -> (member, size, position)."""
    prefix = name + MEMBER_SEPARATOR
    rows = backend.run("group_checkpoints", {
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


def _leases(backend: Backend, name: str) -> list[tuple[int, int, str, str, bool]]:
    return [
        (int(member), int(size), str(holder), str(expires), bool(live))
        for member, size, holder, expires, live in backend.run(
            "group_leases", {"group_name": name}
        )
    ]


def _lock(backend: Backend, name: str) -> None:
    # SQLite: the transaction's BEGIN IMMEDIATE already excludes every other writer.
    if backend.dialect == "postgres":
        backend.run("postgres_lock_group", {"group_name": name})


def _refuse_other_sizes(backend: Backend, name: str, size: int, holder: str | None) -> None:
    sizes: set[int] = set()
    where: list[str] = []
    for checkpoint, (_, other, position) in sorted(_checkpoint_sizes(backend, name).items()):
        if other != size and position > 0:
            sizes.add(other)
            where.append(f"checkpoint {checkpoint!r} at position {position}")
    for member, other, who, expires, live in _leases(backend, name):
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
    """The member leases one Store holds; the Store gives them back when it closes."""

    def __init__(self) -> None:
        self.holder = f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.held: set[tuple[str, int]] = set()

    def claim(
        self, backend: Backend, name: str, member: int, size: int,
        ttl: float = LEASE_SECONDS,
    ) -> None:
        """Claim a member (in one transaction with the size check), or raise."""
        with backend.transaction():
            _lock(backend, name)
            _refuse_other_sizes(backend, name, size, self.holder)
            self.renew(backend, name, member, size, ttl)

    def renew(
        self, backend: Backend, name: str, member: int, size: int,
        ttl: float = LEASE_SECONDS,
    ) -> None:
        """Extend this holder's lease (or take a free or expired one); MemberClaimed when
        another process holds the member. Run it inside the work's own transaction, so work
        commits only under a lease."""
        granted = backend.run("claim_group_member", {
            "group_name": name, "member": member, "group_size": size,
            "holder": self.holder, "ttl_seconds": float(ttl),
        })
        if granted:
            self.held.add((name, member))
            return
        self.held.discard((name, member))
        lease = next((row for row in _leases(backend, name) if row[0] == member), None)
        who, until = (lease[2], lease[3]) if lease else ("another process", "?")
        raise MemberClaimed(
            f"member {member} of consumer group {name!r} (size {size}) is held by {who} "
            f"until {until}: two processes may not run the same member. Stop the other "
            f"process, or run a different member; a crashed holder's lease expires "
            f"{ttl:g} s after its last renewal"
        )

    def release(self, backend: Backend, name: str, member: int) -> None:
        backend.run("release_group_member", {
            "group_name": name, "member": member, "holder": self.holder,
        })
        self.held.discard((name, member))

    def release_all(self, backend: Backend) -> None:
        for name, member in sorted(self.held):
            try:
                self.release(backend, name, member)
            except Exception:  # closing anyway: an unreleased lease expires by itself
                pass
        self.held.clear()


def refuse_if_grouped(backend: Backend, name: str) -> None:
    """A plain run_projection is a group of one: refuse it while member checkpoints or live
    members of a larger group exist."""
    _refuse_other_sizes(backend, name, 1, None)


def run_projection(
    store: Store,
    leases: Leases,
    projection: Projection,
    member: int,
    size: int,
    *,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> int:
    """Run one member of a projection's group: every event of its streams after its
    checkpoint, a page of the log per transaction, with the lease renewed in it."""
    name = check_group_name(projection.name)
    checkpoint = checkpoint_name(name, member, size)
    backend = store._live()
    leases.claim(backend, name, member, size)
    owns = Membership(member, size).owns
    applied = 0
    while True:
        with store.transaction() as tx:
            leases.renew(backend, name, member, size)
            position = backend.checkpoint(checkpoint, for_update=True)
            events = backend.read_all(position, batch_size, None)
            if not events:
                return applied
            mine = [event for event in events if owns(event)]
            for event in mine:
                projection.apply(tx, event)
            backend.set_checkpoint(checkpoint, events[-1].position)
        applied += len(mine)
        if progress is not None and mine:
            progress(len(mine))


def group_status(backend: Backend, name: str) -> list[MemberState]:
    """Every member that has a checkpoint or a lease row, by size and member."""
    name = check_group_name(name)
    states: dict[tuple[int, int], MemberState] = {}
    for checkpoint, (member, size, position) in _checkpoint_sizes(backend, name).items():
        states[(size, member)] = MemberState(member, size, checkpoint, position, None, None,
                                             False)
    for member, size, holder, expires, live in _leases(backend, name):
        before = states.get((size, member))
        states[(size, member)] = MemberState(
            member, size, before.checkpoint if before else None,
            before.position if before else 0, holder, expires, live,
        )
    return [states[key] for key in sorted(states)]


def reset_group(
    store: Store, leases: Leases, name: str, reset: Callable[[Transaction], None] | None,
) -> list[MemberState]:
    """Soft-delete every checkpoint of the group (the plain one and every member's, of any
    size) and its lease rows, in one transaction with `reset(tx)` when given. Refused while
    another process holds a member. Returns what was reset."""
    name = check_group_name(name)
    backend = store._live()
    with store.transaction() as tx:
        _lock(backend, name)
        busy = [row for row in _leases(backend, name) if row[4] and row[2] != leases.holder]
        if busy:
            listed = "; ".join(f"member {m} of {s} held by {h} until {e}"
                               for m, s, h, e, _ in busy)
            raise MemberClaimed(
                f"cannot reset consumer group {name!r} while it runs ({listed}); stop those "
                "processes first, or wait until their leases expire"
            )
        before = group_status(backend, name)
        for state in before:
            if state.checkpoint is not None:
                backend.delete_checkpoint(state.checkpoint)
        backend.run("delete_group_leases", {"group_name": name})
        if reset is not None:
            reset(tx)
    leases.held = {held for held in leases.held if held[0] != name}
    return before
