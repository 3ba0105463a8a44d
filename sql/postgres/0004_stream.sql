-- Create stream, one row per stream with its current version, kept by the append path.

CREATE TABLE stream (
    stream_id   text        NOT NULL,
    version     bigint      NOT NULL,
    metadata    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_stream PRIMARY KEY (stream_id),
    CONSTRAINT ck_stream_stream_id_length CHECK (length(stream_id) BETWEEN 1 AND 200),
    CONSTRAINT ck_stream_version_positive CHECK (version >= 1)
);

CREATE FUNCTION stream_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- BEFORE on PostgreSQL (assign NEW); the SQLite twin runs AFTER and updates the row, since
-- SQLite triggers cannot assign NEW. sql/parity.toml declares that timing difference.
CREATE TRIGGER stream_set_updated_at
    BEFORE UPDATE ON stream
    FOR EACH ROW EXECUTE FUNCTION stream_set_updated_at();
