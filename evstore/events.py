"""Events as the API sees them, and the checks every event passes before it is written."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from json.encoder import c_encode_basestring, c_make_encoder  # type: ignore[attr-defined]
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
    """An event as stored: ordered, compared and hashed by its global position; read-only.

    A record keeps the row it was read from. `data` and `metadata` are decoded from the stored
    JSON on first access (and kept), so events whose data nobody looks at (a projection that
    skips most types, the records an append returns) cost no JSON decoding; `recorded_at` is
    parsed when read. Each record decodes its own copy of the data.
    """

    __slots__ = ("_data", "_metadata", "_row")
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

    # (position, stream_id, version, event_id, type, data or its JSON text,
    #  metadata or its JSON text, recorded_at as a datetime or ISO-8601 text,
    #  content_digest as 32 bytes, or None for an event stored before digests existed)
    _row: tuple[Any, ...]
    _data: Any
    _metadata: Any

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
        content_digest: bytes | None = None,
    ) -> None:
        self._row = (
            position, stream_id, version, event_id, type, None, None, recorded_at, content_digest
        )
        self._data = data
        self._metadata = metadata

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> RecordedEvent:
        """A record over a row whose data and metadata are still JSON text, and whose
        recorded_at may be ISO-8601 text; both are decoded when first read."""
        record = _new(cls)
        record._row = row
        record._data = record._metadata = _UNSET
        return record

    @classmethod
    def from_decoded_row(cls, row: tuple[Any, ...]) -> RecordedEvent:
        """A record over a row whose data and metadata are already decoded."""
        record = _new(cls)
        record._row = row
        record._data = row[5]
        record._metadata = row[6]
        return record

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
        recorded_at: datetime | str,
        content_digest: bytes | None = None,
    ) -> RecordedEvent:
        return cls.from_row(
            (position, stream_id, version, event_id, type, payload_json, metadata_json,
             recorded_at, content_digest)
        )

    @property
    def position(self) -> int:
        return self._row[0]  # type: ignore[no-any-return]

    @property
    def stream_id(self) -> str:
        return self._row[1]  # type: ignore[no-any-return]

    @property
    def version(self) -> int:
        return self._row[2]  # type: ignore[no-any-return]

    @property
    def event_id(self) -> str:
        return self._row[3]  # type: ignore[no-any-return]

    @property
    def type(self) -> str:
        return self._row[4]  # type: ignore[no-any-return]

    @property
    def data(self) -> Any:
        data = self._data
        if data is _UNSET:
            data = self._data = decode_json(self._row[5])
        return data

    @property
    def metadata(self) -> dict[str, Any]:
        metadata = self._metadata
        if metadata is _UNSET:
            metadata = self._metadata = decode_json(self._row[6])
        return metadata  # type: ignore[no-any-return]

    @property
    def data_json(self) -> str:
        """The data as canonical JSON text (see canonical_json): the same on both dialects,
        and on SQLite the stored text itself, with no decoding."""
        raw = self._row[5]
        return raw if raw.__class__ is str and self._data is _UNSET else canonical_json(self.data)

    @property
    def metadata_json(self) -> str:
        """The metadata as canonical JSON text, like data_json."""
        raw = self._row[6]
        return (
            raw if raw.__class__ is str and self._metadata is _UNSET
            else canonical_json(self.metadata)
        )

    @property
    def recorded_at(self) -> datetime:
        value = self._row[7]
        return value if value.__class__ is datetime else _parse_time(value)

    @property
    def content_digest(self) -> bytes | None:
        """SHA-256 of type, data and metadata in canonical form (see content_digest()), as
        stored with the event; None for an event stored before migration 0009."""
        value = self._row[8] if len(self._row) > 8 else None
        return None if value is None else bytes(value)

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
        return self._row[0] == other._row[0]  # type: ignore[no-any-return]

    def __hash__(self) -> int:
        return hash((self._row[0],))

    def __lt__(self, other: RecordedEvent) -> bool:
        if other.__class__ is not RecordedEvent:
            return NotImplemented
        return self._row[0] < other._row[0]  # type: ignore[no-any-return]

    def __le__(self, other: RecordedEvent) -> bool:
        if other.__class__ is not RecordedEvent:
            return NotImplemented
        return self._row[0] <= other._row[0]  # type: ignore[no-any-return]

    def __gt__(self, other: RecordedEvent) -> bool:
        if other.__class__ is not RecordedEvent:
            return NotImplemented
        return self._row[0] > other._row[0]  # type: ignore[no-any-return]

    def __ge__(self, other: RecordedEvent) -> bool:
        if other.__class__ is not RecordedEvent:
            return NotImplemented
        return self._row[0] >= other._row[0]  # type: ignore[no-any-return]

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
                self.content_digest,
            ),
        )


_new = object.__new__
_parse_time = datetime.fromisoformat  # reads a trailing Z as UTC on Python 3.11+


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
    digest: bytes


# json.dumps writes NUL as \u0000; PostgreSQL's jsonb and text refuse it, so both dialects do.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _not_serialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder json.dumps uses, made once: sorted keys, compact separators, no ASCII escaping,
# NaN and Infinity refused. Sorted keys make the stored text canonical (see canonical_json), so
# one encoding serves both storage and the content digest; PostgreSQL's jsonb does not keep key
# order either, so both dialects now return keys in the same order. json.JSONEncoder.encode
# would build the encoder again for every call, which costs as much as encoding a 200-byte
# document. markers=None leaves cycle detection to the recursion limit (a self-referencing
# value ends in RecursionError, reported below).
if c_make_encoder is not None:
    _c_encoder = c_make_encoder(
        None, _not_serialisable, c_encode_basestring, None, ":", ",", True, False, False
    )

    def _dumps(value: Any) -> str:
        if value.__class__ is str:
            return c_encode_basestring(value)  # type: ignore[no-any-return]
        return "".join(_c_encoder(value, 0))

else:  # an interpreter without the C accelerator
    _dumps = json.JSONEncoder(  # type: ignore[assignment]
        ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True
    ).encode


MAX_JSON_DEPTH = 200  # nesting of arrays and objects in one document
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # one encoded data, metadata or snapshot document
MAX_APPEND_BYTES = 256 * 1024 * 1024  # all documents of one append together

# Text that may not be canonical as encoded: numeric or boolean dict keys (json writes them as
# strings, but sorted them as numbers), floats that PostgreSQL's jsonb gives back in another
# spelling (1e+16 comes back as 10000000000000000, -0.0 as 0.0). Strings that merely contain
# these characters take the slow path too, which is correct, only slower.
# A key is the only string followed by ":" in compact JSON, so this finds numeric and boolean
# keys; its literal first character keeps the search at about 2 µs for a 300-byte document.
_NON_STRING_KEY = re.compile(r'"(?:-?[0-9][^"]*|true|false|null)":')
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _normalise_numbers(value: Any) -> Any:
    """The value as PostgreSQL's jsonb gives it back: -0.0 as 0, and floats of 1e16 and more
    (whose repr has an exponent and no fraction) as the integer their repr spells."""
    if value.__class__ is float:
        if value == 0:
            return 0.0
        if abs(value) >= 1e16:
            return int(Decimal(repr(value)))
        return value
    if value.__class__ is dict:
        return {k: _normalise_numbers(v) for k, v in value.items()}
    if value.__class__ is list:
        return [_normalise_numbers(v) for v in value]
    return value


def _canonical(text: str) -> str:
    if "e+" in text or "-0.0" in text or _NON_STRING_KEY.search(text):
        return _dumps(_normalise_numbers(_loads(text)))
    return text


def canonical_json(value: Any) -> str:
    """The canonical JSON text of a decoded value: sorted keys, no whitespace, no ASCII
    escaping, numbers as PostgreSQL's jsonb keeps them. It is what evstore stores on SQLite and
    what the content digest covers, on both dialects."""
    try:
        return _canonical(_dumps(value))
    except TypeError:  # keys of mixed types: as JSON they are all strings, and sort as such
        return _canonical(_dumps(_as_json_keys(value)))


def _depth_exceeds(text: str, limit: int) -> bool:
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


def encode_json(value: Any, what: str) -> str:
    """Canonical JSON text for value, refusing what would not round-trip identically on both
    dialects or could not be read back. `what` names the value in error messages."""
    try:
        text = _dumps(value)
    except ValueError as e:
        raise InvalidInput(
            f"{what} contains NaN or Infinity, which JSON cannot represent; "
            "store them as strings or null"
        ) from e
    except TypeError as e:
        # Keys of mixed types (3 and "t") cannot be sorted as they are; json writes them all
        # as strings, and as strings they sort.
        try:
            text = _dumps(_as_json_keys(value))
        except _KeyCollision as collision:
            raise InvalidInput(
                f"{what} has keys that are the same once written as JSON strings "
                f"({collision}); JSON object keys are strings, so one value would be lost. "
                "Rename one of the keys"
            ) from e
        except (TypeError, ValueError, RecursionError):
            raise InvalidInput(
                f"{what} is not JSON-serialisable ({e}); convert it to dicts, lists, str, "
                "int, float, bool or None first"
            ) from e
    except RecursionError as e:
        raise InvalidInput(
            f"{what} is nested too deeply, or contains itself, to encode as JSON; the limit "
            f"is {MAX_JSON_DEPTH} levels"
        ) from e
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise InvalidInput(
            f"{what} contains a NUL character (\\x00), which PostgreSQL cannot store in "
            "text or jsonb; remove it or encode the value (for example base64)"
        )
    try:
        size = len(text.encode())
    except UnicodeEncodeError as e:
        raise InvalidInput(
            f"{what} contains a lone surrogate ({text[e.start:e.end]!a}), which is not valid "
            "Unicode and which neither dialect can store; fix the string's decoding"
        ) from e
    if size > MAX_DOCUMENT_BYTES:
        raise InvalidInput(
            f"{what} is {size:,} bytes as JSON; the limit is {MAX_DOCUMENT_BYTES:,} bytes per "
            "document. Store large content elsewhere and put its address in the event"
        )
    if _depth_exceeds(text, MAX_JSON_DEPTH):
        raise InvalidInput(
            f"{what} is nested more than {MAX_JSON_DEPTH} levels deep; readers on either "
            "dialect could not decode it. Flatten the document"
        )
    return _canonical(text)


def _encode_field(value: Any, index: int, field: str) -> str:
    """encode_json for events[index].field, naming the field only when there is an error."""
    try:
        text = _dumps(value)
    except (ValueError, TypeError, RecursionError):
        text = ""
    if (
        not text
        or ("\\u0000" in text and _NUL_ESCAPE.search(text))
        or len(text) * 4 > MAX_DOCUMENT_BYTES
        or text.count("[") + text.count("{") > MAX_JSON_DEPTH
    ):
        return encode_json(value, f"events[{index}].{field}")  # checks fully, raises precisely
    return _canonical(text)


_dumps_unsorted = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":")
).encode


class _KeyCollision(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        counts = Counter(k for k, _ in pairs)
        repeated = sorted(k for k, n in counts.items() if n > 1)
        raise _KeyCollision(", ".join(repr(k) for k in repeated))
    return result


def _as_json_keys(value: Any) -> Any:
    """The value with every dict key as the string JSON writes for it (1 -> "1", True ->
    "true"), refusing keys that become the same string, such as 1 and "1"."""
    return _loads(_dumps_unsorted(value), object_pairs_hook=_unique_pairs)

_DIGEST_PREFIX = b"evstore-v1\x00"
_sha256 = hashlib.sha256


def content_digest(event_type: str, payload_json: str, metadata_json: str) -> bytes:
    """SHA-256 over "evstore-v1", the type, and the canonical JSON of data and metadata, each
    followed by NUL (none of them can contain one): the same bytes on both dialects."""
    return _sha256(
        b"".join((
            _DIGEST_PREFIX,
            event_type.encode(),
            b"\x00",
            payload_json.encode(),
            b"\x00",
            metadata_json.encode(),
        ))
    ).digest()


def chain_link(
    previous: bytes, content_digest: bytes, event_id: str, version: int, stream_id: str
) -> bytes:
    """The chain digest of an event (migration 0009): SHA-256 of the previous event's chain
    digest (b"" for the first), its content digest, its event id, its version as an 8-byte
    big-endian integer and its stream id. PostgreSQL's evstore_append() computes the same."""
    return _sha256(
        b"".join((previous, content_digest, event_id.encode(),
                  version.to_bytes(8, "big", signed=True), stream_id.encode()))
    ).digest()


def digest_of(event_type: str, data: Any, metadata: Any) -> bytes:
    """The content digest of an event as read back: what `evstore verify` recomputes."""
    return content_digest(event_type, canonical_json(data), canonical_json(metadata))


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
    try:
        value.encode()
    except UnicodeEncodeError as e:
        raise InvalidInput(
            f"{what} contains a lone surrogate ({value[e.start:e.end]!a}), which is not valid "
            "Unicode and which neither dialect can store"
        ) from e
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
    if expected > 2**63 - 1:
        raise InvalidInput(
            f"expected_version {expected} is beyond 2**63 - 1, the largest version either "
            "dialect stores; pass the stream's current version"
        )
    if expected < 0:
        raise InvalidInput(
            f"expected_version {expected} is negative; use 0 or evstore.NO_STREAM for a new "
            "stream, or the stream's current version"
        )
    return expected


MAX_EVENTS_PER_APPEND = 100_000


def encode_events(stream_id: str, events: Sequence[NewEvent]) -> list[EncodedEvent]:
    """Validate and encode a whole append before anything touches the database.

    The loop checks the common case inline and calls the descriptive checks only for a value
    that fails, so error messages are only built when there is an error to report."""
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
    total = 0
    ulid_ok = _ULID.fullmatch
    for index, event in enumerate(events):
        if not isinstance(event, NewEvent):
            raise InvalidInput(
                f"events[{index}] is a {type(event).__name__}, not an evstore.NewEvent"
            )
        event_id = event.event_id
        if event_id is None:
            event_id = str(ULID())
        elif event_id.__class__ is not str or len(event_id) != 26 or not ulid_ok(event_id):
            event_id = check_event_id(event_id)
        if event_id in seen:
            raise InvalidInput(f"event id {event_id} appears twice in one append")
        seen.add(event_id)
        event_type = event.type
        if (
            event_type.__class__ is not str
            or not 0 < len(event_type) <= MAX_ID_LENGTH
            or "\x00" in event_type
        ):
            check_name(event_type, f"events[{index}].type")
        metadata = event.metadata
        if metadata is None:
            metadata_json = "{}"
        elif isinstance(metadata, dict):
            metadata_json = _encode_field(metadata, index, "metadata")
        else:
            raise InvalidInput(f"events[{index}].metadata must be a dict or None")
        payload_json = _encode_field(event.data, index, "data")
        try:
            digest = content_digest(event_type, payload_json, metadata_json)
        except UnicodeEncodeError:
            for what, text in (("type", event_type), ("data", payload_json),
                               ("metadata", metadata_json)):
                encode_json(text, f"events[{index}].{what}")  # names the lone surrogate
            raise
        total += len(payload_json) + len(metadata_json)
        encoded.append(EncodedEvent(event_id, event_type, payload_json, metadata_json, digest))
    if total > MAX_APPEND_BYTES // 4 and sum(
        len(e.payload.encode()) + len(e.metadata.encode()) for e in encoded
    ) > MAX_APPEND_BYTES:
        raise InvalidInput(
            f"one append of {len(encoded)} events holds more than {MAX_APPEND_BYTES:,} bytes "
            "of JSON; split it into several appends in one store.transaction()"
        )
    return encoded
