-- Keep stream heads in step with the log: a head never moves back, never changes its stream, and is never deleted or truncated.
--
-- A head moved back or removed would make its stream unappendable (the next version would
-- collide with a stored event); evstore_append() only ever moves heads forward.

CREATE FUNCTION stream_reject_rewind() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version < OLD.version OR NEW.stream_id <> OLD.stream_id THEN
        RAISE EXCEPTION 'evstore: a stream head only moves forward with its events'
            USING ERRCODE = 'restrict_violation',
                  HINT = 'Stream heads are kept by evstore_append(); append events instead.';
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION stream_reject_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'evstore: stream heads are never removed; the log is append-only'
        USING ERRCODE = 'restrict_violation',
              HINT = 'A stream ends by appending a closing event of your own.';
END;
$$;

CREATE TRIGGER stream_reject_rewind
    BEFORE UPDATE ON stream
    FOR EACH ROW EXECUTE FUNCTION stream_reject_rewind();

CREATE TRIGGER stream_reject_delete
    BEFORE DELETE ON stream
    FOR EACH ROW EXECUTE FUNCTION stream_reject_delete();

-- TRUNCATE skips row triggers (PostgreSQL only, as for event_store in 0002).
CREATE TRIGGER stream_reject_truncate
    BEFORE TRUNCATE ON stream
    FOR EACH STATEMENT EXECUTE FUNCTION stream_reject_delete();
