-- Guard every INSERT into event_store, as PostgreSQL's evstore_append() does: positions drawn by the database, versions that follow the stream head, no event id or version replaced, a content digest on every row.
--
-- SQLite has no roles and no stored functions, so the rules of an append are checked by this
-- trigger on every row, whoever inserts it. It also closes REPLACE: INSERT OR REPLACE and
-- REPLACE INTO delete the conflicting row without firing delete triggers (recursive_triggers is
-- off by default), so without the checks below they could rewrite or move an event.
--   * NEW.position is -1 in a BEFORE INSERT trigger when the row leaves position to
--     AUTOINCREMENT; any other value was chosen by the writer. A writer who chooses -1 itself
--     is caught after the insert by event_store_check_position, where NEW.position is the
--     position the row really got.
--   * The version must be exactly one more than the stream's last event, and at most the
--     stream head that the append moved first in the same transaction.
--   * A row without a chain digest is not refused here (anyone who can write the file can
--     compute one); `evstore verify` reports it, and every link that does not follow.

CREATE TRIGGER event_store_check_insert
    BEFORE INSERT ON event_store
    FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'evstore: event_store positions are drawn by the database; insert without a position')
    WHERE NEW.position <> -1;
    SELECT RAISE(ABORT, 'evstore: event_id is already stored in event_store; events are never replaced')
    WHERE EXISTS (SELECT 1 FROM event_store WHERE event_id = NEW.event_id);
    SELECT RAISE(ABORT, 'evstore: version does not follow the stream''s last event; events are never replaced')
    WHERE NEW.version <> 1 + coalesce(
        (SELECT max(version) FROM event_store WHERE stream_id = NEW.stream_id), 0);
    SELECT RAISE(ABORT, 'evstore: version is beyond the stream head; append through evstore, which moves the head first')
    WHERE NEW.version > coalesce((SELECT version FROM stream WHERE stream_id = NEW.stream_id), 0);
    SELECT RAISE(ABORT, 'evstore: content_digest is missing; append through evstore')
    WHERE NEW.content_digest IS NULL;
END;

CREATE TRIGGER event_store_check_position
    AFTER INSERT ON event_store
    FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'evstore: event_store positions are drawn by the database; insert without a position')
    WHERE NEW.position < 1;
END;
