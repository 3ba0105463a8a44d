"""Events as the API sees them, and the checks every event passes before it is written."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Sequence
from dataclasses import FrozenInstanceError, dataclass
from datetime import datetime
from typing import Any

from ulid import ULID

from evstore.errors import InvalidInput

MAX_ID_LENGTH = 200  # stream ids, event types and subscription names; CHECKed in both dialects


class ExpectedVersion(enum.Enum):
    """What an append expects of the stream, besides an exact version number."""

    ANY = "any"
    NO_STREAM = "no stream"
    STREAM_EXISTS = "stream exists"

    def __str__(self) -> str:
        return self.value


ANY = ExpectedVersion.ANY
NO_STREAM = ExpectedVersion.NO_STREAM
STREAM_EXISTS = ExpectedVersion.STREAM_EXISTS

Expected = ExpectedVersion | int


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. A ULID is generated when event_id is None."""

    type: str
    data: Any
    metadata: dict[str, Any] | None = None
    event_id: str | None = None


_UNSET: Any = object()
_loads = json.loads
_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def decode_json(text: str | bytes) -> Any:
    """json.loads for stored JSON: the C scanner straight away, json.loads for the rare text
    with surrounding whitespace (written by hand through SQL). Both dialects' CHECKs make
    sure the text is valid JSON."""
    if isinstance(text, bytes):
        text = text.decode()  # what psycopg's jsonb loader hands over: UTF-8 bytes
    if isinstance(text, str):
        try:
            value, end = _scan_once(text, 0)
        except StopIteration:
            return _loads(text)
        if end == len(text):
            return value
    return _loads(text)


class RecordedEvent:
    """An event as stored: ordered, compared and hashed by its global position; immutable.

    `data` and `metadata` are decoded from the stored JSON on first access, so reading or
    appending events whose data nobody looks at (a projection that skips most types, the
    records an append returns) costs no JSON decoding. Each record decodes its own copy.
    """

    __slots__ = (
        "_data",
        "_metadata",
        "_metadata_json",
        "_payload_json",
        "event_id",
        "position",
        "recorded_at",
        "stream_id",
        "type",
        "version",
    )
    __match_args__ = (
        "position",
        "stream_id",
        "version",
        "event_id",
        "type",
        "data",
        "metadata",
        "recorded_at",
    )

    position: int
    stream_id: str
    version: int
    event_id: str
    type: str
    recorded_at: datetime
    _data: Any
    _metadata: Any
    _payload_json: str | None
    _metadata_json: str | None

    def __init__(
        self,
        position: int,
        stream_id: str,
        version: int,
        event_id: str,
        type: str,
        data: Any,
        metadata: dict[str, Any],
        recorded_at: datetime,
    ) -> None:
        init = object.__setattr__
        init(self, "position", position)
        init(self, "stream_id", stream_id)
        init(self, "version", version)
        init(self, "event_id", event_id)
        init(self, "type", type)
        init(self, "_data", data)
        init(self, "_metadata", metadata)
        init(self, "_payload_json", None)
        init(self, "_metadata_json", None)
        init(self, "recorded_at", recorded_at)

    @classmethod
    def from_json(
        cls,
        position: int,
        stream_id: str,
        version: int,
        event_id: str,
        type: str,
        payload_json: str,
        metadata_json: str,
        recorded_at: datetime,
    ) -> RecordedEvent:
        """A record whose data and metadata are still JSON text, decoded when first read."""
        record = cls.__new__(cls)
        init = object.__setattr__
        init(record, "position", position)
        init(record, "stream_id", stream_id)
        init(record, "version", version)
        init(record, "event_id", event_id)
        init(record, "type", type)
        init(record, "_data", _UNSET)
        init(record, "_metadata", _UNSET)
        init(record, "_payload_json", payload_json)
        init(record, "_metadata_json", metadata_json)
        init(record, "recorded_at", recorded_at)
        return record

    @property
    def data(self) -> Any:
        data = self._data
        if data is _UNSET:
            data = decode_json(self._payload_json)  # type: ignore[arg-type]
            object.__setattr__(self, "_data", data)
        return data

    @property
    def metadata(self) -> dict[str, Any]:
        metadata = self._metadata
        if metadata is _UNSET:
            metadata = decode_json(self._metadata_json)  # type: ignore[arg-type]
            object.__setattr__(self, "_metadata", metadata)
        return metadata  # type: ignore[no-any-return]

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}: events are immutable")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}: events are immutable")

    def __repr__(self) -> str:
        return (
            f"RecordedEvent(position={self.position!r}, stream_id={self.stream_id!r}, "
            f"version={self.version!r}, event_id={self.event_id!r}, type={self.type!r}, "
            f"data={self.data!r}, metadata={self.metadata!r}, "
            f"recorded_at={self.recorded_at!r})"
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not RecordedEvent:
            return NotImplemented
        return self.position == other.position

    def __hash__(self) -> int:
        return hash((self.position,))

    def __lt__(self, other: RecordedEvent) -> bool:
        if other.__class__ is not RecordedEvent:
            return NotImplemented
        return self.position < other.position

    def __le__(self, other: RecordedEvent) -> bool:
        if other.__class__ is not RecordedEvent:
            return NotImplemented
        return self.position <= other.position

    def __gt__(self, other: RecordedEvent) -> bool:
        if other.__class__ is not RecordedEvent:
            return NotImplemented
        return self.position > other.position

    def __ge__(self, other: RecordedEvent) -> bool:
        if other.__class__ is not RecordedEvent:
            return NotImplemented
        return self.position >= other.position

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            RecordedEvent,
            (
                self.position,
                self.stream_id,
                self.version,
                self.event_id,
                self.type,
                self.data,
                self.metadata,
                self.recorded_at,
            ),
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A saved state of a stream at a version."""

    stream_id: str
    version: int
    state: Any
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A validated event with its JSON already encoded, ready for either dialect."""

    event_id: str
    type: str
    payload: str
    metadata: str


# json.dumps writes NUL as \u0000; PostgreSQL's jsonb and text refuse it, so both dialects do.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def encode_json(value: Any, what: str) -> str:
    """JSON text for value, refusing what would not round-trip identically on both dialects."""
    try:
        text = _dumps(value)
    except ValueError as e:
        raise InvalidInput(
            f"{what} contains NaN or Infinity, which JSON cannot represent; "
            "store them as strings or null"
        ) from e
    except TypeError as e:
        raise InvalidInput(
            f"{what} is not JSON-serialisable ({e}); convert it to dicts, lists, str, int, "
            "float, bool or None first"
        ) from e
    except RecursionError as e:
        raise InvalidInput(f"{what} is nested too deeply to encode as JSON") from e
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise InvalidInput(
            f"{what} contains a NUL character (\\x00), which PostgreSQL cannot store in "
            "text or jsonb; remove it or encode the value (for example base64)"
        )
    return text


def check_name(value: object, what: str) -> str:
    """A stream id, event type or subscription name: 1 to 200 characters without NUL."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidInput(f"{what} is empty; give 1 to {MAX_ID_LENGTH} characters")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(
            f"{what} is {len(value)} characters long; the limit is {MAX_ID_LENGTH}"
        )
    if "\x00" in value:
        raise InvalidInput(f"{what} contains a NUL character, which PostgreSQL cannot store")
    return value


# A ULID: 26 Crockford base32 characters (no I, L, O, U); the first is at most 7, since 26
# characters carry 130 bits and a ULID has 128.
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def check_event_id(value: object) -> str:
    """A ULID in its canonical 26-character upper-case form (lower case is accepted and
    upper-cased, as ULID's spec allows)."""
    if isinstance(value, str) and len(value) == 26:
        if _ULID.fullmatch(value):
            return value
        upper = value.upper()
        if _ULID.fullmatch(upper):
            return upper
    if isinstance(value, str) and len(value) == 26 and value[0] > "7":
        reason = "its first character must be 0-7, or the value overflows 128 bits"
    elif isinstance(value, str) and len(value) == 26:
        reason = "it holds a character outside Crockford base32 (I, L, O and U are not used)"
    else:
        reason = "a ULID is 26 Crockford base32 characters"
    raise InvalidInput(
        f"event_id {value!r} is not a ULID: {reason}; leave event_id=None to have one generated"
    )


def check_expected(expected: object) -> Expected:
    if isinstance(expected, ExpectedVersion):
        return expected
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise InvalidInput(
            f"expected_version {expected!r} must be evstore.ANY, evstore.NO_STREAM, "
            "evstore.STREAM_EXISTS or the stream's current version (an int >= 0)"
        )
    if expected < 0:
        raise InvalidInput(
            f"expected_version {expected} is negative; use 0 or evstore.NO_STREAM for a new "
            "stream, or the stream's current version"
        )
    return expected


MAX_EVENTS_PER_APPEND = 100_000


def encode_events(stream_id: str, events: Sequence[NewEvent]) -> list[EncodedEvent]:
    """Validate and encode a whole append before anything touches the database."""
    check_name(stream_id, "stream_id")
    if isinstance(events, NewEvent):
        raise InvalidInput("events must be a list of NewEvent; wrap the single event in [...]")
    if not events:
        raise InvalidInput("append needs at least one event")
    if len(events) > MAX_EVENTS_PER_APPEND:
        raise InvalidInput(
            f"{len(events)} events in one append; the limit is {MAX_EVENTS_PER_APPEND}, "
            "split the call"
        )
    encoded: list[EncodedEvent] = []
    seen: set[str] = set()
    for index, event in enumerate(events):
        if not isinstance(event, NewEvent):
            raise InvalidInput(
                f"events[{index}] is a {type(event).__name__}, not an evstore.NewEvent"
            )
        event_id = str(ULID()) if event.event_id is None else check_event_id(event.event_id)
        if event_id in seen:
            raise InvalidInput(f"event id {event_id} appears twice in one append")
        seen.add(event_id)
        check_name(event.type, f"events[{index}].type")
        metadata = event.metadata if event.metadata is not None else {}
        if not isinstance(metadata, dict):
            raise InvalidInput(f"events[{index}].metadata must be a dict or None")
        encoded.append(
            EncodedEvent(
                event_id=event_id,
                type=event.type,
                payload=encode_json(event.data, f"events[{index}].data"),
                metadata=encode_json(metadata, f"events[{index}].metadata"),
            )
        )
    return encoded

