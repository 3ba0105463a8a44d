-- Create snapshot, saved states of a stream at a version; removed with their stream (ON DELETE CASCADE).

CREATE TABLE snapshot (
    stream_id   text        NOT NULL,
    version     bigint      NOT NULL,
    state       jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_snapshot PRIMARY KEY (stream_id, version),
    CONSTRAINT ck_snapshot_version_positive CHECK (version >= 1),
    CONSTRAINT fk_snapshot_stream FOREIGN KEY (stream_id)
        REFERENCES stream (stream_id) ON DELETE CASCADE ON UPDATE NO ACTION
);
