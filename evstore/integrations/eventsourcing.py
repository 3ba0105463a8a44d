"""evstore as a persistence module of the eventsourcing library.

    PERSISTENCE_MODULE=evstore.eventsourcing
    EVSTORE_DATABASE_URL=postgresql://app@db/app   (or sqlite:////var/lib/app/events.db)
    EVSTORE_SCHEMA=dogschool                       (PostgreSQL, optional)

An Application's events go to evstore's `event_store`, its snapshots to `snapshot` and its
tracking records (process applications, projections) to `subscription`, where evstore's own
API, its CLI and `evstore verify` see them. Every setting may be prefixed with the
application's name (DOGSCHOOL_EVSTORE_DATABASE_URL), as eventsourcing's own settings are.
One evstore database (or PostgreSQL schema) is one log: give each application of a system
its own, as eventsourcing gives each one its own tables.

The mapping, both ways (README, "With the eventsourcing library"):

    StoredEvent.originator_id       stream_id: str(uuid), or the str id as it is
    StoredEvent.originator_version  version: the same number (caller-assigned versions; an
                                    aggregate may start at 0, migration 0014)
    StoredEvent.topic               event_type
    StoredEvent.state               payload: the JSON document when the state is UTF-8 JSON,
                                    {"$bytes": "<base64>"} when it is not (compressed,
                                    encrypted); metadata {"state_text": "<exact text>"} only
                                    when evstore's canonical JSON would not give the state
                                    back byte for byte
    Notification.id                 position
    Tracking(name, id)              subscription `name` at position `id` (compare-and-set)
    snapshot                        snapshot (stream_id, version, {"topic": ..., "state": ...})

The factory's default transcoder writes JSON with sorted keys (CanonicalJSONTranscoder), which
is the form evstore stores, so states come back byte for byte without `state_text`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DatabaseError,
    DataError,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    JSONTranscoder,
    Notification,
    OperationalError,
    PersistenceError,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
    Transcoder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool

import evstore
from evstore import errors
from evstore.events import (
    MAX_ID_LENGTH,
    MAX_JSON_DEPTH,
    NewEvent,
    RecordedEvent,
    as_document,
    canonical_json,
    encode_json,
    from_document,
)
from evstore.store import Store, Transaction

__all__ = [
    "CanonicalJSONTranscoder",
    "EvstoreAggregateRecorder",
    "EvstoreApplicationRecorder",
    "EvstoreDatastore",
    "EvstoreFactory",
    "EvstoreProcessRecorder",
    "EvstoreSnapshotRecorder",
    "EvstoreSubscription",
    "EvstoreTrackingRecorder",
    "Factory",
]

# A stream id that str(uuid) gives: read back as a UUID (ORIGINATOR_ID_TYPE=uuid).
_CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch
STATE_TEXT = "state_text"  # metadata key: the state's exact text, when not canonical JSON
MAX_VERSION = 2**63 - 1


class CanonicalJSONTranscoder(JSONTranscoder):
    """eventsourcing's JSONTranscoder with sorted keys: the canonical JSON evstore stores, so
    a state is stored as its document and comes back byte for byte."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = json.JSONEncoder(
            default=self._encode_obj, separators=(",", ":"), ensure_ascii=False, sort_keys=True
        )


# -- errors ------------------------------------------------------------------------------------


def _translated(error: errors.EvstoreError) -> PersistenceError:
    """The eventsourcing exception for an evstore error (PEP 249's classes, which
    eventsourcing's callers and retry decorators catch); the evstore error is its cause."""
    message = str(error)
    if isinstance(error, errors.WrongExpectedVersion | errors.DuplicateEventId
                  | errors.CheckpointConflict | errors.SnapshotError):
        return IntegrityError(message)
    if isinstance(error, errors.ConnectionFailed | errors.AppendLockTimeout):
        return OperationalError(message)
    if isinstance(error, errors.StoreClosed):
        return InterfaceError(message)
    if isinstance(error, errors.InvalidInput):
        return DataError(message)
    if isinstance(error, errors.DatabaseError):
        return DatabaseError(message)
    return PersistenceError(message)


@contextmanager
def translated() -> Iterator[None]:
    try:
        yield
    except errors.EvstoreError as e:
        raise _translated(e) from e


# -- the mapping -------------------------------------------------------------------------------


def state_document(state: bytes) -> tuple[Any, dict[str, Any] | None]:
    """What evstore stores for a state: (data, metadata). The JSON document when the state
    is JSON that evstore can store (UTF-8, no NaN or NUL), with metadata {"state_text": ...}
    when its canonical form is not these very bytes; otherwise the bytes themselves, which
    evstore stores as {"$bytes": "<base64>"}."""
    try:
        text = state.decode("utf-8")
        document = json.loads(text, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return bytes(state), None
    if "\\u0000" in text:
        return bytes(state), None  # NUL: neither dialect stores it in a document
    try:
        canonical = canonical_json(document)
        canonical.encode("utf-8")  # a lone surrogate, escaped in the text, cannot be stored
        if canonical.count("[") + canonical.count("{") > MAX_JSON_DEPTH:
            encode_json(document, "state")  # refuses what is nested too deeply to store
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError):
        return bytes(state), None  # evstore.InvalidInput is a ValueError
    if canonical == text:
        return document, None
    return document, {STATE_TEXT: text}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON that evstore stores")


def state_of_record(record: RecordedEvent) -> bytes:
    """The state bytes of a stored event. On SQLite the stored text is the state itself (it
    is canonical JSON), so nothing is decoded; PostgreSQL's documents are encoded again."""
    metadata = record.metadata
    if metadata:
        return state_of(record.data, metadata)
    text = record.data_json
    if text.startswith('{"$bytes":'):
        return state_of(record.data, None)
    return text.encode("utf-8")


def state_of(data: Any, metadata: dict[str, Any] | None) -> bytes:
    """The state bytes back from what evstore stored (state_document's inverse)."""
    if metadata:
        text = metadata.get(STATE_TEXT)
        if isinstance(text, str):
            return text.encode("utf-8")
    if data.__class__ is bytes:
        return data
    return canonical_json(data).encode("utf-8")


class EvstoreDatastore:
    """One evstore Store, shared by every recorder a factory makes (a Store is thread-safe),
    and how originator ids come back: UUID (the default) or str."""

    def __init__(self, store: Store, originator_id_type: str = "uuid") -> None:
        self.store = store
        self.originator_id_type = originator_id_type
        self._migrated = False
        self._migrate_lock = threading.Lock()

    def migrate(self) -> None:
        """Apply evstore's migrations, once (CREATE_TABLE, as eventsourcing's modules do)."""
        with self._migrate_lock:
            if not self._migrated:
                with translated():
                    self.store.migrate()
                self._migrated = True

    def close(self) -> None:
        self.store.close()

    def stream_id(self, originator_id: UUID | str) -> str:
        return str(originator_id)

    def originator_id(self, stream_id: str) -> UUID | str:
        """A stream id in UUID's canonical form is a UUID (with ORIGINATOR_ID_TYPE=uuid);
        any other stream, written through evstore's own API, keeps its str id."""
        if self.originator_id_type == "uuid" and _CANONICAL_UUID(stream_id):
            return UUID(stream_id)
        return stream_id

    def new_events(self, stored_events: Sequence[StoredEvent]) -> list[tuple[str, list[NewEvent]]]:
        """The appends of one insert: each run of consecutive events of one originator is
        one append, in the order given, so positions follow the list."""
        runs: list[tuple[str, list[NewEvent]]] = []
        previous: UUID | str | None = None
        for s in stored_events:
            data, metadata = state_document(s.state)
            event = NewEvent(s.topic, data, metadata, version=s.originator_version)
            if runs and s.originator_id == previous:
                runs[-1][1].append(event)
            else:
                runs.append((self.stream_id(s.originator_id), [event]))
                previous = s.originator_id
        for stream_id, events in runs:
            first = events[0].version
            assert first is not None
            for offset, event in enumerate(events):
                if event.version != first + offset:
                    raise IntegrityError(
                        f"originator {stream_id}: versions {[e.version for e in events]} in one "
                        "write do not follow each other; evstore keeps every stream without "
                        "gaps or repeats, so each version is the one after the last"
                    )
        return runs

    def stored_event(self, record: RecordedEvent) -> StoredEvent:
        return StoredEvent(
            originator_id=self.originator_id(record.stream_id),
            originator_version=record.version,
            topic=record.type,
            state=state_of_record(record),
        )

    def notification(self, record: RecordedEvent) -> Notification:
        return Notification(
            id=record.position,
            originator_id=self.originator_id(record.stream_id),
            originator_version=record.version,
            topic=record.type,
            state=state_of_record(record),
        )

    def append_all(self, tx: Transaction | None, stored_events: Sequence[StoredEvent]) -> list[int]:
        """Append the events (in `tx`, or as one append when they are one run); returns
        their positions in the order given."""
        runs = self.new_events(stored_events)
        if tx is None and len(runs) == 1:
            return [e.position for e in self.store.append(*runs[0])]
        if tx is None:
            with self.store.transaction() as own:
                return self.append_all(own, stored_events)
        positions: list[int] = []
        for stream_id, events in runs:
            positions += (e.position for e in tx.append(stream_id, events))
        return positions

    def track(self, tx: Transaction | None, tracking: Tracking) -> None:
        """Record a tracking object as a compare-and-set of the checkpoint named after the
        upstream application: only a notification id above the current one is accepted, and
        of two recorders that race with the same id, one wins (IntegrityError for the other)."""
        name, notification_id = tracking.application_name, tracking.notification_id
        store: Store | Transaction = tx if tx is not None else self.store
        current = store.checkpoint(name)
        if notification_id <= current:
            raise IntegrityError(
                f"tracking {name!r} is at notification {current}: notification "
                f"{notification_id} was processed already (or skipped)"
            )
        store.save_checkpoint(name, notification_id, expected=current)


# -- recorders ---------------------------------------------------------------------------------


class EvstoreRecorder:
    def __init__(self, datastore: EvstoreDatastore) -> None:
        self.datastore = datastore

    def create_table(self) -> None:
        """evstore's tables come from its migrations."""
        self.datastore.migrate()


class EvstoreAggregateRecorder(EvstoreRecorder, AggregateRecorder):
    """Stored events in evstore's event_store, one stream per originator."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if stored_events:
            with translated():
                self.datastore.append_all(None, stored_events)
        return None

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        stream_id = self.datastore.stream_id(originator_id)
        if len(stream_id) > MAX_ID_LENGTH or not stream_id:
            return []  # no such stream can exist
        if limit is not None and limit <= 0:
            return []
        low = 0 if gt is None else max(gt + 1, 0)
        high = MAX_VERSION if lte is None else min(lte, MAX_VERSION)
        if low > high:
            return []
        # Versions are unique integers: [low, high] holds at most high - low + 1 events.
        most = min(high - low + 1, MAX_VERSION if limit is None else limit)
        with translated():
            if desc:
                records = self.datastore.store.read_stream(stream_id, high, most, True)
                records = [r for r in records if r.version >= low]
            else:
                records = self.datastore.store.read_stream(stream_id, low, most)
                records = [r for r in records if r.version <= high]
            return [self.datastore.stored_event(r) for r in records]


class EvstoreApplicationRecorder(EvstoreAggregateRecorder, ApplicationRecorder):
    """An application's events in evstore's log: notification ids are global positions."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        with translated():
            return self.datastore.append_all(None, stored_events)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        after = 0 if start is None else (start - 1 if inclusive_of_start else start)
        after = max(after, 0)
        if stop is not None:
            limit = min(limit, stop - after)  # positions are unique: at most this many
        types = _types(topics)
        if limit <= 0 or types == []:
            return []
        with translated():
            records = self.datastore.store.read_all(after, min(limit, MAX_VERSION), types)
        return [self.datastore.notification(r) for r in records]

    def max_notification_id(self) -> int | None:
        with translated():
            return self.datastore.store.head_position() or None

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return EvstoreSubscription(self, gt=gt, topics=topics)


def _types(topics: Sequence[str]) -> list[str] | None:
    """The event types to read for these topics (None: all). A topic evstore cannot store
    as an event type (over 200 characters) matches no event."""
    if not topics:
        return None
    return [t for t in topics if 0 < len(t) <= MAX_ID_LENGTH and "\x00" not in t]


class EvstoreSubscription(Subscription[ApplicationRecorder]):
    """Notifications as they commit, from evstore's tail: LISTEN/NOTIFY on PostgreSQL,
    PRAGMA data_version on SQLite. stop() ends the iteration from any thread."""

    def __init__(
        self,
        recorder: EvstoreApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._datastore = recorder.datastore
        types = _types(topics)
        self._nothing = types == []
        with translated():
            self._tail = self._datastore.store.tail(after=max(gt or 0, 0), types=types or None)

    def __next__(self) -> Notification:
        if self._has_been_stopped or self._nothing:
            raise StopIteration
        with translated():
            record = next(self._tail)
        return self._datastore.notification(record)

    def stop(self) -> None:
        super().stop()
        self._tail.stop()

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            self._tail.close()


class EvstoreTrackingRecorder(EvstoreRecorder, TrackingRecorder):
    """Tracking records as evstore checkpoints (the subscription table), one per upstream
    application, moved by compare-and-set. Subclass it for a view (a projection's tables):
    `with self.transaction(tracking) as tx: tx.execute(...)` commits the view's writes with
    the tracking record."""

    def insert_tracking(self, tracking: Tracking) -> None:
        with translated():
            self.datastore.track(None, tracking)

    def max_tracking_id(self, application_name: str) -> int | None:
        if not 0 < len(application_name) <= MAX_ID_LENGTH:
            return None
        with translated():
            return self.datastore.store.checkpoint(application_name) or None

    @contextmanager
    def transaction(self, tracking: Tracking | None = None) -> Iterator[Transaction]:
        """An evstore transaction that records `tracking` first: the caller's writes in it
        (tx.execute, tx.append) commit with the tracking record, or not at all."""
        with translated(), self.datastore.store.transaction() as tx:
            if tracking is not None:
                self.datastore.track(tx, tracking)
            yield tx


class EvstoreProcessRecorder(
    EvstoreTrackingRecorder, EvstoreApplicationRecorder, ProcessRecorder
):
    """A process application's events and its tracking record in one transaction. The
    checkpoint moves first, so of two recorders racing with the same notification one fails
    before it has appended anything."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is None:
            return super().insert_events(stored_events, **kwargs)
        with translated(), self.datastore.store.transaction() as tx:
            self.datastore.track(tx, tracking)
            return self.datastore.append_all(tx, stored_events) if stored_events else []


class EvstoreSnapshotRecorder(EvstoreRecorder, AggregateRecorder):
    """Snapshots in evstore's snapshot table: state {"topic": ..., "state": ...}, where the
    inner state is mapped as an event's is. A snapshot replaces one of the same version.
    Version 0 is not stored: evstore's snapshots start at version 1, and a snapshot of an
    aggregate's first event would save nothing but replaying that one event."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        store = self.datastore.store
        with translated(), store.transaction():
            for s in stored_events:
                if s.originator_version == 0:
                    continue
                data, metadata = state_document(s.state)
                envelope = {"topic": s.topic, "state": as_document(data)}
                if metadata:
                    envelope.update(metadata)
                store.save_snapshot(self.datastore.stream_id(s.originator_id),
                                    s.originator_version, envelope)
        return None

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        stream_id = self.datastore.stream_id(originator_id)
        if len(stream_id) > MAX_ID_LENGTH or not stream_id:
            return []
        found: list[StoredEvent] = []
        below = MAX_VERSION if lte is None else lte
        # Newest first, one indexed lookup each: the repository asks for one (desc, limit=1).
        while below >= 1 and (not desc or limit is None or len(found) < limit):
            with translated():
                snapshot = self.datastore.store.load_snapshot(stream_id, below)
            if snapshot is None or (gt is not None and snapshot.version <= gt):
                break
            envelope = snapshot.state
            found.append(StoredEvent(
                originator_id=self.datastore.originator_id(stream_id),
                originator_version=snapshot.version,
                topic=envelope["topic"],
                state=state_of(from_document(envelope["state"]), envelope),
            ))
            below = snapshot.version - 1
        if not desc:
            found.reverse()
            found = found[:limit] if limit is not None else found
        return found


# -- the factory -------------------------------------------------------------------------------

TRecorderAny = TypeVar("TRecorderAny", bound="EvstoreRecorder")


class EvstoreFactory(InfrastructureFactory[EvstoreTrackingRecorder]):
    """Makes the recorders of one application over one evstore Store."""

    EVSTORE_DATABASE_URL = "EVSTORE_DATABASE_URL"
    EVSTORE_SCHEMA = "EVSTORE_SCHEMA"
    EVSTORE_LOCK_TIMEOUT = "EVSTORE_LOCK_TIMEOUT"
    EVSTORE_POOL_SIZE = "EVSTORE_POOL_SIZE"
    ORIGINATOR_ID_TYPE = "ORIGINATOR_ID_TYPE"
    CREATE_TABLE = "CREATE_TABLE"

    aggregate_recorder_class = EvstoreAggregateRecorder
    snapshot_recorder_class = EvstoreSnapshotRecorder
    application_recorder_class = EvstoreApplicationRecorder
    tracking_recorder_class = EvstoreTrackingRecorder
    process_recorder_class = EvstoreProcessRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        url = self.env.get(self.EVSTORE_DATABASE_URL)
        if not url:
            keys = ", ".join(self.env.create_keys(self.EVSTORE_DATABASE_URL))
            msg = (
                f"evstore database URL not found in the environment under {keys}; set "
                "EVSTORE_DATABASE_URL, e.g. sqlite:////var/lib/app/events.db or "
                "postgresql://app@db/app"
            )
            raise OSError(msg)
        originator_id_type = (self.env.get(self.ORIGINATOR_ID_TYPE) or "uuid").lower()
        if originator_id_type not in ("uuid", "text"):
            msg = (
                f"{self.ORIGINATOR_ID_TYPE}={originator_id_type!r}: give uuid (the default) "
                "or text"
            )
            raise OSError(msg)
        options: dict[str, Any] = {"schema": self.env.get(self.EVSTORE_SCHEMA) or None}
        for key, name, kind in ((self.EVSTORE_LOCK_TIMEOUT, "lock_timeout", float),
                                (self.EVSTORE_POOL_SIZE, "pool_size", int)):
            text = (self.env.get(key) or "").strip()
            if text:
                try:
                    options[name] = kind(text)
                except ValueError:
                    msg = f"{key}={text!r} is not a number; give {name} in {kind.__name__}"
                    raise OSError(msg) from None
        try:
            store = evstore.connect(url, **options)
        except errors.InvalidURL as e:
            raise OSError(str(e)) from e
        except errors.InvalidInput as e:
            raise OSError(str(e)) from e
        except errors.EvstoreError as e:
            raise _translated(e) from e
        self.datastore = EvstoreDatastore(store, originator_id_type)

    def transcoder(self) -> Transcoder:
        """TRANSCODER_TOPIC when set, else CanonicalJSONTranscoder (sorted keys)."""
        if self.env.get(self.TRANSCODER_TOPIC):
            return super().transcoder()
        return CanonicalJSONTranscoder()

    def env_create_table(self) -> bool:
        return bool(strtobool(self.env.get(self.CREATE_TABLE) or "yes"))

    def _made(self, recorder: EvstoreRecorder) -> None:
        if self.env_create_table():
            recorder.create_table()

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """purpose "events": the event log; "snapshots": the snapshot table."""
        if purpose == "snapshots":
            snapshots = self.snapshot_recorder_class(self.datastore)
            self._made(snapshots)
            return snapshots
        if purpose != "events":
            msg = (
                f"aggregate recorder purpose {purpose!r}: evstore stores 'events' in its log "
                "and 'snapshots' in its snapshot table"
            )
            raise OSError(msg)
        recorder = self.aggregate_recorder_class(self.datastore)
        self._made(recorder)
        return recorder

    def application_recorder(self) -> ApplicationRecorder:
        cls = self._recorder_class(self.APPLICATION_RECORDER_TOPIC,
                                   self.application_recorder_class)
        recorder = cls(self.datastore)
        self._made(recorder)
        return recorder

    def tracking_recorder(
        self, tracking_recorder_class: type[EvstoreTrackingRecorder] | None = None
    ) -> EvstoreTrackingRecorder:
        cls = tracking_recorder_class or self._recorder_class(
            self.TRACKING_RECORDER_TOPIC, self.tracking_recorder_class)
        recorder = cls(self.datastore)
        self._made(recorder)
        return recorder

    def process_recorder(self) -> ProcessRecorder:
        cls = self._recorder_class(self.PROCESS_RECORDER_TOPIC, self.process_recorder_class)
        recorder = cls(self.datastore)
        self._made(recorder)
        return recorder

    def _recorder_class(self, key: str, default: type[TRecorderAny]) -> type[TRecorderAny]:
        topic = self.env.get(key)
        if not topic:
            return default
        cls = resolve_topic(topic)
        if not (isinstance(cls, type) and issubclass(cls, default)):
            msg = f"{key}={topic!r} does not name a subclass of {default.__qualname__}"
            raise OSError(msg)
        return cls

    def close(self) -> None:
        self.datastore.close()

Factory = EvstoreFactory
