"""The relay: every committed event, exactly once and in order, into a NATS JetStream stream.

    evstore relay --database URL --nats nats://HOST:PORT --stream JS_STREAM --subject PREFIX

What a message is (README, "Consumers on other machines"):
- subject `PREFIX.<stream id>.<event type>`, each of the two encoded as one subject token;
- headers Nats-Msg-Id (the event id), Evstore-Position, Evstore-Stream, Evstore-Version,
  Evstore-Type, Evstore-Recorded-At and Evstore-Metadata (the metadata as ASCII JSON);
- body: the event's data as canonical JSON (UTF-8), the same bytes from both dialects.

Why it is exactly once, in order:
1. One connection and one publisher per relay, publishes in position order, and the first
   failure ends the connection. What JetStream stored of this relay's events is therefore
   always a prefix of them, in position order: the acks' stream sequences are checked to
   grow, and a relay that sees otherwise stops.
2. The checkpoint (subscription row, fenced by the member's lease) moves only to positions
   whose publish JetStream acknowledged.
3. On every (re)start the relay asks JetStream which of the events after its checkpoint it
   already holds (the last message on an event's subject tells whether that event is stored:
   a binary search over the prefix), and starts after them. So a crash between an ack and
   the checkpoint, or a restart hours later, publishes nothing twice.
4. A publish that was still in flight when a relay died may land after the new relay looked:
   Nats-Msg-Id deduplication absorbs it, which is why the duplicate window must be longer
   than `ack_timeout` (checked at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import evstore
from evstore import groups
from evstore.errors import (
    AppendLockTimeout,
    ConnectionFailed,
    EvstoreError,
    InvalidInput,
    MemberClaimed,
    RelayError,
    RelayMisconfigured,
)
from evstore.events import RecordedEvent
from evstore.urls import parse_url, scrub

DEFAULT_MAX_IN_FLIGHT = 2000  # publishes awaiting their ack
DEFAULT_ACK_TIMEOUT = 10.0  # seconds a publish may wait for its ack
DEFAULT_DUPLICATE_WINDOW = 120.0  # seconds, for a stream the relay creates (NATS's default)
CHECKPOINT_INTERVAL = 0.1  # seconds between checkpoint commits while events flow
MAX_BACKOFF = 5.0
MAX_SUBJECT = 3800  # NATS's control line is 4096 bytes, with the reply inbox and sizes
NATS_SCHEMES = ("nats", "tls", "ws", "wss")

_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PREFIX_TOKEN = re.compile(r"[!-~]+")  # printable ASCII without space


def subject_token(text: str) -> str:
    """One subject token for a stream id or an event type: A-Z a-z 0-9 - _ stay as they are,
    every other character becomes its UTF-8 bytes as %XX (upper-case hex), as in a URL. It is
    reversible (urllib.parse.unquote, decodeURIComponent) and never contains '.', '*', '>',
    whitespace or anything but ASCII."""
    if _SAFE.fullmatch(text):
        return text
    return "".join(
        c if _SAFE.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in text
    )


def subject_for(prefix: str, stream_id: str, event_type: str) -> str:
    return f"{prefix}.{subject_token(stream_id)}.{subject_token(event_type)}"


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix:
        raise RelayMisconfigured("--subject is empty; give a subject prefix such as evstore.app")
    tokens = prefix.split(".")
    bad = [t for t in tokens if not _PREFIX_TOKEN.fullmatch(t) or t in ("*", ">")
           or "*" in t or ">" in t]
    if bad or len(prefix) > 200 or prefix.startswith("$"):
        raise RelayMisconfigured(
            f"subject prefix {prefix!r} is not a plain NATS subject: use 1 to 200 printable "
            "ASCII characters in tokens separated by '.', without spaces, wildcards ('*', "
            "'>') or empty tokens, not starting with '$' (reserved), e.g. evstore.orders"
        )
    return prefix


def check_stream_name(name: object) -> str:
    if not isinstance(name, str) or not _STREAM_NAME.fullmatch(name):
        raise RelayMisconfigured(
            f"JetStream stream name {name!r} is not usable: use 1 to 64 of A-Z a-z 0-9 - _"
        )
    return name


def nats_secrets(url: str) -> list[str]:
    """The password or token a NATS URL carries (nats://user:password@ or nats://token@)."""
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    if not at:
        return []
    name, colon, password = userinfo.partition(":")
    return [password] if colon else [name]


def redact_nats(url: str) -> str:
    """The NATS URL with its password or token replaced by ***."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    name, colon, _ = userinfo.partition(":")
    shown = f"{name}:***" if colon else "***"
    return urlunsplit(parts._replace(netloc=f"{shown}@{host}"))


def check_nats_url(url: object) -> str:
    if not isinstance(url, str) or not url:
        raise RelayMisconfigured("--nats is empty; give a URL such as nats://127.0.0.1:4222")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as e:
        raise RelayMisconfigured(
            f"NATS URL {redact_nats(url)!r} has a malformed host or port; give one such as "
            "nats://127.0.0.1:4222"
        ) from e
    if parts.scheme not in NATS_SCHEMES or not parts.hostname:
        raise RelayMisconfigured(
            f"NATS URL {redact_nats(url)!r} is not a NATS server URL; give one such as "
            f"nats://127.0.0.1:4222 (schemes: {', '.join(NATS_SCHEMES)})"
        )
    return url


@dataclass
class RelayStats:
    """What a relay did: events published and acknowledged as new, acknowledged as
    duplicates, skipped at start because JetStream already held them, the last checkpointed
    position, and how many times it (re)connected."""

    published: int = 0
    duplicates: int = 0
    skipped: int = 0
    position: int = 0
    connections: int = 0
    errors: list[str] = field(default_factory=list)
    stopped_by: str | None = None  # "SIGTERM", "SIGINT" or "stop()"; None: idle or error


class _Stopped(Exception):
    """stop() or a signal ended the run."""


class _Transient(Exception):
    """A failure worth a reconnect: NATS or the database went away, an ack did not come."""


_END = object()


def _headers(event: RecordedEvent) -> dict[str, str]:
    metadata = event.metadata_json
    if not metadata.isascii():
        metadata = json.dumps(event.metadata, ensure_ascii=True, sort_keys=True,
                              separators=(",", ":"))
    return {
        "Nats-Msg-Id": event.event_id,
        "Evstore-Position": str(event.position),
        "Evstore-Stream": subject_token(event.stream_id),
        "Evstore-Version": str(event.version),
        "Evstore-Type": subject_token(event.type),
        "Evstore-Recorded-At": event.recorded_at.isoformat(timespec="microseconds")[:26] + "Z",
        "Evstore-Metadata": metadata,
    }


def _header_bytes(headers: dict[str, str]) -> int:
    return 12 + sum(len(k) + len(v) + 4 for k, v in headers.items())


class Relay:
    """Publishes a store's log to a JetStream stream; see the module's docstring.

    run() returns when idle_timeout seconds pass without a new event (never, without one);
    it raises a RelayError (or a GroupError) for what a reconnect cannot fix. NATS and
    database failures are retried with backoff (0.1 s doubling to 5 s), at most
    reconnect_attempts times in a row (None: forever)."""

    def __init__(
        self,
        database: str,
        nats: str,
        stream: str,
        subject: str,
        *,
        name: str | None = None,
        schema: str | None = None,
        idle_timeout: float | None = None,
        group_member: int | None = None,
        group_size: int | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        reconnect_attempts: int | None = None,
        lease_ttl: float = groups.LEASE_SECONDS,
        wait_for_lease: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.database = parse_url(database)
        if self.database.is_memory:
            raise RelayMisconfigured(
                "the relay needs a database other processes write to; an in-memory SQLite "
                "database belongs to one connection"
            )
        self.nats_url = check_nats_url(nats)
        self.stream = check_stream_name(stream)
        self.prefix = check_prefix(subject)
        self.schema = schema
        group = groups.check_member(group_member, group_size)
        self.member, self.size = group if group is not None else (0, 1)
        self.name = groups.check_group_name(name if name is not None else f"relay-{stream}")
        self.checkpoint_name = groups.checkpoint_name(self.name, self.member, self.size)
        for value, what in ((max_in_flight, "max_in_flight"),):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{what} must be an int of at least 1, not {value!r}")
        for seconds, what in ((ack_timeout, "ack_timeout"), (lease_ttl, "lease_ttl")):
            if not isinstance(seconds, int | float) or not 0 < seconds <= 86400:
                raise InvalidInput(f"{what} must be a number of seconds above 0, not {seconds!r}")
        if idle_timeout is not None and not (
            isinstance(idle_timeout, int | float) and 0 <= idle_timeout <= 86400 * 365
        ):
            raise InvalidInput(f"idle_timeout must be a number of seconds, not {idle_timeout!r}")
        self.idle_timeout = idle_timeout
        self.max_in_flight = max_in_flight
        self.ack_timeout = float(ack_timeout)
        self.reconnect_attempts = reconnect_attempts
        self.lease_ttl = float(lease_ttl)
        self.wait_for_lease = wait_for_lease
        self._log = log if log is not None else _stderr
        self._secrets = nats_secrets(nats)
        self.stats = RelayStats()
        self._leases = groups.Leases()
        self._owns = groups.Membership(self.member, self.size).owns
        self._subjects: dict[tuple[str, str], str] = {}
        self._max_message: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def __repr__(self) -> str:
        return (f"<evstore Relay {self.database.redacted} -> {redact_nats(self.nats_url)} "
                f"stream {self.stream} subject {self.prefix}>")

    # -- public ----------------------------------------------------------------------------

    def run(self, *, handle_signals: bool = False) -> RelayStats:
        """Relay until idle or stopped. handle_signals=True (the command line): SIGTERM and
        SIGINT stop the relay as stop() does, and stats.stopped_by names the signal."""
        return asyncio.run(self.run_async(handle_signals=handle_signals))

    def stop(self, reason: str = "stop()") -> None:
        """End run() from any thread: the relay stops reading, counts the acks that still
        come, checkpoints them, gives its lease back and returns."""
        self.stats.stopped_by = reason
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)

    async def run_async(self, *, handle_signals: bool = False) -> RelayStats:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self.stats.stopped_by is not None:
            return self.stats
        if not handle_signals or threading.current_thread() is not threading.main_thread():
            return await self._run_until_stopped()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            self._loop.add_signal_handler(sig, self.stop, sig.name)
        try:
            return await self._run_until_stopped()
        finally:
            for sig, handler in previous.items():
                self._loop.remove_signal_handler(sig)
                signal.signal(sig, handler)

    async def _run_until_stopped(self) -> RelayStats:
        import nats.errors

        # A checkpoint that waited too long for SQLite's write lock (busy writers) is retried
        # like a lost connection: what was acknowledged is found in JetStream on restart.
        transient = (_Transient, ConnectionFailed, AppendLockTimeout, OSError, TimeoutError,
                     nats.errors.Error)
        failures = 0
        while True:
            before = self.stats.published + self.stats.skipped
            try:
                await self._run_once()
                return self.stats
            except _Stopped:
                return self.stats
            except transient as error:
                text = self._scrub(str(error) if isinstance(error, _Transient | ConnectionFailed)
                                   else f"{type(error).__name__}: {error}")
                if self.stats.published + self.stats.skipped > before:
                    failures = 0
                failures += 1
                self.stats.errors.append(text)
                if self.reconnect_attempts is not None and failures > self.reconnect_attempts:
                    raise RelayError(
                        f"the relay gave up after {self.reconnect_attempts} reconnect "
                        f"attempt(s): {text}. Everything acknowledged is checkpointed at "
                        f"position {self.stats.position}; start it again to go on"
                    ) from error
                delay = min(0.1 * 2 ** (failures - 1), MAX_BACKOFF)
                self._log(f"evstore relay: {text}; reconnecting in {delay:.1f} s")
                await self._pause(delay)
            except MemberClaimed as error:
                if not self.wait_for_lease:
                    raise
                self._log(f"evstore relay: waiting as a standby: {self._scrub(str(error))}")
                await self._pause(self.lease_ttl / 3)

    async def _pause(self, seconds: float) -> None:
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        if self._stopping.is_set():
            raise _Stopped()

    async def _watch_stop(self) -> None:
        assert self._stopping is not None
        await self._stopping.wait()
        raise _Stopped()

    # -- one connection ----------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        text = scrub(text, self.database.url, self.nats_url)
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    async def _run_once(self) -> None:
        store = await asyncio.to_thread(self._open_store)
        nc: Any = None
        try:
            nc = await self._connect_nats()
            self.stats.connections += 1
            js = nc.jetstream(publish_async_max_pending=self.max_in_flight)
            info = await self._ensure_stream(js)
            self._check_stream(info, nc.max_payload)
            resume = await self._resume_point(js, store)
            await self._relay(js, nc, store, resume)
        finally:
            if nc is not None:
                with contextlib.suppress(Exception):  # the connection may be gone already
                    await asyncio.wait_for(nc.close(), 5)
            await asyncio.to_thread(self._close_store, store)

    def _open_store(self) -> evstore.Store:
        store = evstore.Store(self.database, schema=self.schema)
        try:
            if not store.run_query("event_store_exists"):
                raise RelayMisconfigured(
                    f"{self.database.redacted} has no event store tables; run `evstore migrate` "
                    "on it first (with the same --schema)"
                )
            self._leases.claim(store._live(), self.name, self.member, self.size,
                               self.lease_ttl)
        except BaseException:
            store.close()
            raise
        return store

    def _close_store(self, store: evstore.Store) -> None:
        """Give the lease back and close. When the store's connection was dropped, give it
        back on a new one, so that a restarted relay need not wait for it to expire (a
        reconnecting relay simply claims it again)."""
        for name, member in sorted(self._leases.held):
            try:
                self._leases.release(store._live(), name, member)
            except EvstoreError:
                with contextlib.suppress(EvstoreError), evstore.Store(
                    self.database, schema=self.schema
                ) as fresh:
                    self._leases.release(fresh._live(), name, member)
        store.close()

    async def _connect_nats(self) -> Any:
        import nats

        lost = asyncio.Event()
        self._lost = lost

        async def on_closed() -> None:
            lost.set()

        async def on_error(error: Exception) -> None:
            self._last_nats_error = error

        # The relay reconnects itself (and checks JetStream before it publishes again), so
        # the client makes one attempt and never buffers publishes across a reconnect. Its
        # logger would print tracebacks with the server URL: the relay reports instead.
        logger = logging.getLogger("nats")
        logger.propagate = False
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
        try:
            return await nats.connect(
                servers=[self.nats_url], allow_reconnect=False, connect_timeout=5,
                max_reconnect_attempts=1, reconnect_time_wait=0.1,
                name=f"evstore-relay {self.checkpoint_name}",
                disconnected_cb=on_closed, closed_cb=on_closed, error_cb=on_error,
            )
        except Exception as e:
            raise _Transient(
                f"cannot connect to NATS at {redact_nats(self.nats_url)}: "
                f"{type(e).__name__} {e}"
            ) from e

    async def _ensure_stream(self, js: Any) -> Any:
        from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
        from nats.js.errors import BadRequestError, NotFoundError

        try:
            return await js.stream_info(self.stream)
        except NotFoundError:
            pass
        config = StreamConfig(
            name=self.stream, subjects=[f"{self.prefix}.>"],
            description=f"evstore events relayed from {self.database.redacted}",
            retention=RetentionPolicy.LIMITS, storage=StorageType.FILE,
            discard=DiscardPolicy.OLD, max_msgs=-1, max_bytes=-1, max_age=0,
            max_msg_size=-1, num_replicas=1, duplicate_window=DEFAULT_DUPLICATE_WINDOW,
        )
        try:
            return await js.add_stream(config)
        except BadRequestError as e:
            # Another member created it meanwhile, or its subjects overlap another stream's.
            try:
                return await js.stream_info(self.stream)
            except NotFoundError:
                raise RelayMisconfigured(
                    f"JetStream refused to create stream {self.stream} for subjects "
                    f"{self.prefix}.>: {e.description}. Another stream probably takes these "
                    "subjects; choose another --subject or --stream"
                ) from e

    def _check_stream(self, info: Any, max_payload: int) -> None:
        config = info.config
        wanted = f"{self.prefix}.>"
        if wanted not in (config.subjects or []):
            raise RelayMisconfigured(
                f"JetStream stream {self.stream} exists with subjects "
                f"{', '.join(config.subjects or []) or '(none)'}, not {wanted}: the relay "
                "publishes to every subject under its prefix. Use the stream's own prefix as "
                "--subject, add the subject to the stream, or name another --stream"
            )
        if config.no_ack:
            raise RelayMisconfigured(
                f"JetStream stream {self.stream} does not acknowledge publishes (no_ack), so "
                "the relay could never checkpoint; use a stream with acks"
            )
        window = float(config.duplicate_window or 0)
        if window < 2 * self.ack_timeout:
            raise RelayMisconfigured(
                f"JetStream stream {self.stream} deduplicates over {window:g} s; the relay "
                f"needs at least twice its ack timeout ({2 * self.ack_timeout:g} s), so that "
                "a publish still in flight when a relay stops is recognised when it is sent "
                "again. Raise the stream's duplicate_window"
            )
        limit = max_payload
        if config.max_msg_size and config.max_msg_size > 0:
            limit = min(limit, config.max_msg_size)
        self._max_message = limit

    # -- where to start --------------------------------------------------------------------

    def _subject(self, event: RecordedEvent) -> str:
        key = (event.stream_id, event.type)
        subject = self._subjects.get(key)
        if subject is None:
            if len(self._subjects) > 100_000:
                self._subjects.clear()
            subject = self._subjects[key] = subject_for(self.prefix, *key)
        return subject

    async def _stored(self, js: Any, event: RecordedEvent) -> bool:
        """Whether JetStream holds this event: the last message on its subject is at its
        position or later (this relay's stored events are a prefix in position order)."""
        from nats.js.errors import NotFoundError

        try:
            message = await js.get_msg(self.stream, subject=self._subject(event))
        except NotFoundError:
            return False
        position = (message.headers or {}).get("Evstore-Position")
        return position is not None and int(position) >= event.position

    async def _resume_point(self, js: Any, store: evstore.Store) -> int:
        """The checkpoint, moved past the events JetStream already holds."""
        checkpoint = await asyncio.to_thread(store.checkpoint, self.checkpoint_name)
        position = checkpoint
        skipped = 0
        while True:
            page = await asyncio.to_thread(store.read_all, position, 1000)
            if not page:
                break
            mine = [e for e in page if self._owns(e)]
            if mine and not await self._stored(js, mine[-1]):
                low, high = 0, len(mine) - 1  # mine[high] is not stored
                while low < high:
                    middle = (low + high) // 2
                    if await self._stored(js, mine[middle]):
                        low = middle + 1
                    else:
                        high = middle
                skipped += low
                if low:
                    position = mine[low - 1].position
                break
            skipped += len(mine)
            position = page[-1].position
            if len(page) < 1000:
                break
        if position > checkpoint and skipped:
            await asyncio.to_thread(self._save_checkpoint, store, position)
            self.stats.skipped += skipped
            self._log(f"evstore relay: JetStream already held {skipped} event(s) after the "
                      f"checkpoint; resuming after position {position}")
        elif position > checkpoint:
            position = checkpoint  # only other members' events: nothing to move past
        self.stats.position = position
        return position

    def _save_checkpoint(self, store: evstore.Store, position: int) -> None:
        backend = store._live()
        with store.transaction():
            self._leases.renew(backend, self.name, self.member, self.size, self.lease_ttl)
            backend.set_checkpoint(self.checkpoint_name, position)

    # -- the flow --------------------------------------------------------------------------

    async def _relay(self, js: Any, nc: Any, store: evstore.Store, after: int) -> None:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        events: deque[Any] = deque()
        stop = threading.Event()
        tail = store.tail(after=after, group_member=self.member, group_size=self.size,
                          idle_timeout=self.idle_timeout, page_size=1000)

        def wake() -> None:
            loop.call_soon_threadsafe(ready.set)

        def read() -> None:
            try:
                for event in tail:
                    while len(events) >= 4 * self.max_in_flight and not stop.is_set():
                        time.sleep(0.002)
                    if stop.is_set():
                        return
                    events.append(event)
                    if len(events) == 1:
                        wake()
                events.append(_END)
            except BaseException as error:
                events.append(error)
            finally:
                wake()

        reader = threading.Thread(target=read, name="evstore-relay-reader", daemon=True)
        reader.start()
        pending: deque[tuple[RecordedEvent, Any]] = deque()
        acked = asyncio.Event()
        state = {"acked": after, "done": False, "seq": 0}
        tasks = [
            asyncio.create_task(self._publish(js, events, ready, pending, acked)),
            asyncio.create_task(self._acks(pending, acked, state)),
            asyncio.create_task(self._checkpoints(store, state, acked)),
            asyncio.create_task(self._watch(nc)),
            asyncio.create_task(self._watch_stop()),
        ]
        try:
            finished = tasks[2]  # the checkpoints end last, once the tail went idle
            running = set(tasks)
            while not finished.done():
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    error = task.exception()
                    if error is not None:
                        raise error
        finally:
            stop.set()
            tail.stop()
            while not all(task.done() for task in tasks):
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks, timeout=0.1)
            for task in tasks:  # retrieved, so that asyncio does not report them again
                if not task.cancelled():
                    task.exception()
            await self._drain(nc, pending, state)
            await asyncio.to_thread(reader.join)
            if state["acked"] > self.stats.position:
                try:
                    await asyncio.to_thread(self._save_checkpoint, store, state["acked"])
                    self.stats.position = state["acked"]
                except EvstoreError as error:
                    self._log(f"evstore relay: could not save the last checkpoint "
                              f"({self._scrub(str(error))}); the next start finds the "
                              "published events in JetStream")

    async def _watch(self, nc: Any) -> None:
        await self._lost.wait()
        error = getattr(self, "_last_nats_error", None)
        raise _Transient(f"the NATS connection closed ({error or 'server gone'})")

    async def _publish(
        self, js: Any, events: deque[Any], ready: asyncio.Event,
        pending: deque[tuple[RecordedEvent, Any]], acked: asyncio.Event,
    ) -> None:
        limit = self._max_message or 1 << 20
        stream = self.stream
        while True:
            if not events:
                ready.clear()
                if not events:
                    await ready.wait()
                continue
            item = events.popleft()
            if item is _END:
                pending.append((item, None))  # type: ignore[arg-type]
                acked.set()
                return
            if isinstance(item, BaseException):
                if isinstance(item, ConnectionFailed):
                    raise _Transient(str(item)) from item
                raise item
            event: RecordedEvent = item
            subject = self._subject(event)
            headers = _headers(event)
            body = event.data_json.encode()
            if len(body) + len(headers["Evstore-Metadata"]) + 1024 > limit or (
                len(subject) > MAX_SUBJECT
            ):
                size = len(body) + _header_bytes(headers)
            else:
                size = 0  # far below the limit: headers without metadata are short
            if size > limit or len(subject) > MAX_SUBJECT:
                raise RelayError(
                    f"event at position {event.position} (stream {event.stream_id!r}, "
                    f"version {event.version}) cannot be published: its message is {size} "
                    f"bytes with a {len(subject)}-byte subject, and the server or stream "
                    f"{stream} takes at most {limit} bytes and subjects of at most "
                    f"{MAX_SUBJECT}. Raise max_payload (nats-server) or the stream's "
                    "max_msg_size; the relay stops here so that nothing is skipped"
                )
            future = await js.publish_async(subject, body, headers=headers, stream=stream)
            pending.append((event, future))
            if len(pending) == 1:
                acked.set()

    async def _acks(
        self, pending: deque[tuple[RecordedEvent, Any]], acked: asyncio.Event,
        state: dict[str, Any],
    ) -> None:
        while True:
            if not pending:
                acked.clear()
                if not pending:
                    await acked.wait()
                continue
            if pending[0][0] is _END:
                pending.popleft()
                state["done"] = True
                return
            await self._take_ack(pending, state)

    async def _take_ack(
        self, pending: deque[tuple[RecordedEvent, Any]], state: dict[str, Any],
    ) -> None:
        """Wait for the oldest publish's ack, check it, count it, and only then drop it from
        `pending` (so that a cancelled wait leaves it for _drain)."""
        from nats.js.errors import APIError

        event, future = pending[0]
        if not future.done():
            # asyncio.wait, not wait_for: it never cancels the future, and never swallows a
            # cancellation of this task that comes as the ack arrives (wait_for on 3.11 can).
            await asyncio.wait({future}, timeout=self.ack_timeout)
        if not future.done():
            raise _Transient(f"no ack within {self.ack_timeout:g} s for position {event.position}")
        try:
            ack = future.result()
        except APIError as e:
            raise _Transient(
                f"JetStream refused position {event.position}: {e.description} "
                f"(code {e.err_code})"
            ) from e
        if ack.seq <= state["seq"]:
            raise RelayError(
                f"JetStream stored position {event.position} at sequence {ack.seq}, not "
                f"after sequence {state['seq']} of the event before it: stream "
                f"{self.stream} is out of position order from there. Another publisher "
                "is writing this relay's events; stop it"
            )
        pending.popleft()
        state["seq"] = ack.seq
        if ack.duplicate:
            self.stats.duplicates += 1
        else:
            self.stats.published += 1
        state["acked"] = event.position

    async def _drain(
        self, nc: Any, pending: deque[tuple[RecordedEvent, Any]], state: dict[str, Any],
    ) -> None:
        """After a failure: count the acks that still come for what was sent, in order, so
        that the last checkpoint covers them; stop at the first that does not, when the
        connection is gone, or after one ack_timeout in all."""
        deadline = time.monotonic() + self.ack_timeout
        while pending and pending[0][0] is not _END:
            future = pending[0][1]
            if not future.done():
                if nc.is_closed or self._lost.is_set() or time.monotonic() > deadline:
                    return
                await asyncio.wait({future}, timeout=deadline - time.monotonic())
                continue
            try:
                await self._take_ack(pending, state)
            except Exception:
                return

    async def _checkpoints(
        self, store: evstore.Store, state: dict[str, Any], acked: asyncio.Event,
    ) -> None:
        renewed = time.monotonic()
        while True:
            if state["acked"] > self.stats.position or (
                time.monotonic() - renewed > self.lease_ttl / 3
            ):
                target = state["acked"]
                await asyncio.to_thread(self._save_checkpoint, store, target)
                self.stats.position = target
                renewed = time.monotonic()
            if state["done"] and state["acked"] <= self.stats.position:
                return
            await asyncio.sleep(CHECKPOINT_INTERVAL)


def run_relay(database: str, nats: str, stream: str, subject: str, **options: Any) -> RelayStats:
    """Relay the log until idle (see Relay); returns what it did."""
    return Relay(database, nats, stream, subject, **options).run()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)

