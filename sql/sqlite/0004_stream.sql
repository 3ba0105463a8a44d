-- Create stream, one row per stream with its current version, kept by the append path.

CREATE TABLE stream (
    stream_id   TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    metadata    TEXT,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT pk_stream PRIMARY KEY (stream_id),
    CONSTRAINT ck_stream_stream_id_length CHECK (length(stream_id) BETWEEN 1 AND 200),
    CONSTRAINT ck_stream_version_positive CHECK (version >= 1),
    CONSTRAINT ck_stream_metadata_json CHECK (metadata IS NULL OR json_valid(metadata))
) STRICT;

-- AFTER here, BEFORE on PostgreSQL: SQLite triggers cannot assign NEW, so this one updates the
-- row it fired for (recursive_triggers is off, so it does not fire itself again).
CREATE TRIGGER stream_set_updated_at
    AFTER UPDATE ON stream
    FOR EACH ROW
BEGIN
    UPDATE stream SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE stream_id = NEW.stream_id;
END;
