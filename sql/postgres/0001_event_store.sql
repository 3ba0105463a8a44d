-- Create event_store, the append-only event log: one row per event, in global order by position.
--
-- position     global order; drawn from the identity sequence while the append path holds the
--              advisory lock evstore.append (see README, "Gap-free global order"), so positions
--              become visible in commit order and a reader's checkpoint is a single number.
-- event_id     ULID (26 characters), unique across the whole log.
-- stream_id    the stream the event belongs to; version is its 1-based place in that stream.

CREATE TABLE event_store (
    position     bigint      GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME event_store_position_seq),
    event_id     text        NOT NULL,
    stream_id    text        NOT NULL,
    version      bigint      NOT NULL,
    event_type   text        NOT NULL,
    payload      jsonb       NOT NULL,
    metadata     jsonb       NOT NULL DEFAULT '{}',
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_event_store PRIMARY KEY (position),
    CONSTRAINT uq_event_store_event_id UNIQUE (event_id),
    CONSTRAINT uq_event_store_stream_id_version UNIQUE (stream_id, version),
    CONSTRAINT ck_event_store_event_id_length CHECK (length(event_id) = 26),
    CONSTRAINT ck_event_store_stream_id_length CHECK (length(stream_id) BETWEEN 1 AND 200),
    CONSTRAINT ck_event_store_event_type_length CHECK (length(event_type) BETWEEN 1 AND 200),
    CONSTRAINT ck_event_store_version_positive CHECK (version >= 1)
);

-- Reading one event type in global order: read_all(types=[...]) and type-filtered tails.
CREATE INDEX ix_event_store_event_type_position ON event_store (event_type, position);
