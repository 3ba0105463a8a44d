-- Keep stream heads in step with the log: a head never moves back, never changes its stream, and is never deleted or replaced.
--
-- A head moved back or removed would make its stream unappendable (the next version would
-- collide with a stored event); evstore's append only ever moves heads forward. SQLite has no
-- TRUNCATE; DELETE without WHERE fires the row trigger. INSERT OR REPLACE would delete the old
-- head without firing the delete trigger, so stream_check_insert refuses an INSERT of a head
-- that exists: evstore's append updates an existing head and inserts only new ones.

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

CREATE TRIGGER stream_check_insert
    BEFORE INSERT ON stream
    FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'evstore: the stream head exists already; heads are never replaced')
    WHERE EXISTS (SELECT 1 FROM stream WHERE stream_id = NEW.stream_id);
END;
