"""Events as the API sees them, and the checks every event passes before it is written."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True, order=True)
class RecordedEvent:
    """An event as stored: ordered by its global position."""

    position: int
    stream_id: str = field(compare=False)
    version: int = field(compare=False)
    event_id: str = field(compare=False)
    type: str = field(compare=False)
    data: Any = field(compare=False)
    metadata: dict[str, Any] = field(compare=False)
    recorded_at: datetime = field(compare=False)


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


def check_event_id(value: object) -> str:
    """A ULID in its canonical 26-character upper-case form."""
    if not isinstance(value, str) or len(value) != 26:
        raise InvalidInput(
            f"event_id {value!r} is not a ULID (26 Crockford base32 characters); "
            "leave event_id=None to have one generated"
        )
    try:
        return str(ULID.from_str(value))
    except ValueError as e:
        raise InvalidInput(
            f"event_id {value!r} is not a ULID ({e}); leave event_id=None to have one generated"
        ) from e


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

