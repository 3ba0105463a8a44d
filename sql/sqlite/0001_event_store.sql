-- Create event_store, the append-only event log: one row per event, in global order by position.
--
-- position     global order: INTEGER PRIMARY KEY AUTOINCREMENT, the rowid, never reused. SQLite
--              has one writer at a time, so positions become visible in commit order.
-- event_id     ULID (26 characters), unique across the whole log.
-- stream_id    the stream the event belongs to; version is its 1-based place in that stream.
-- payload, metadata: JSON text, checked by json_valid (PostgreSQL: jsonb).
-- recorded_at  UTC, ISO-8601 with milliseconds and Z (PostgreSQL: timestamptz).
-- STRICT makes SQLite refuse values of the wrong type, as PostgreSQL does.

CREATE TABLE event_store (
    position     INTEGER NOT NULL CONSTRAINT pk_event_store PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL,
    stream_id    TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    event_type   TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    metadata     TEXT    NOT NULL DEFAULT '{}',
    recorded_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT uq_event_store_event_id UNIQUE (event_id),
    CONSTRAINT uq_event_store_stream_id_version UNIQUE (stream_id, version),
    CONSTRAINT ck_event_store_event_id_length CHECK (length(event_id) = 26),
    CONSTRAINT ck_event_store_stream_id_length CHECK (length(stream_id) BETWEEN 1 AND 200),
    CONSTRAINT ck_event_store_event_type_length CHECK (length(event_type) BETWEEN 1 AND 200),
    CONSTRAINT ck_event_store_version_positive CHECK (version >= 1),
    CONSTRAINT ck_event_store_payload_json CHECK (json_valid(payload)),
    CONSTRAINT ck_event_store_metadata_json CHECK (json_valid(metadata))
) STRICT;

-- Reading one event type in global order: read_all(types=[...]) and type-filtered tails.
CREATE INDEX ix_event_store_event_type_position ON event_store (event_type, position);
