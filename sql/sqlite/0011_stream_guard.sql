-- Keep stream heads in step with the log: a head never moves back, never changes its stream, and is never deleted.
--
-- A head moved back or removed would make its stream unappendable (the next version would
-- collide with a stored event); evstore's append only ever moves heads forward. SQLite has no
-- TRUNCATE; DELETE without WHERE fires the row trigger.

CREATE TRIGGER stream_reject_rewind
    BEFORE UPDATE ON stream
    FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'evstore: a stream head only moves forward with its events')
    WHERE NEW.version < OLD.version OR NEW.stream_id <> OLD.stream_id;
END;

CREATE TRIGGER stream_reject_delete
    BEFORE DELETE ON stream
    FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'evstore: stream heads are never removed; the log is append-only');
END;
