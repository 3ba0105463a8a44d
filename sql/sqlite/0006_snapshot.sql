-- Create snapshot, saved states of a stream at a version; removed with their stream (ON DELETE CASCADE).

CREATE TABLE snapshot (
    stream_id   TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT pk_snapshot PRIMARY KEY (stream_id, version),
    CONSTRAINT ck_snapshot_version_positive CHECK (version >= 1),
    CONSTRAINT ck_snapshot_state_json CHECK (json_valid(state)),
    CONSTRAINT fk_snapshot_stream FOREIGN KEY (stream_id)
        REFERENCES stream (stream_id) ON DELETE CASCADE ON UPDATE NO ACTION
) STRICT;
