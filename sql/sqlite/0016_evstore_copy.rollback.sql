-- Drop evstore_copy, and restore event_store_check_insert as 0014 left it.

DROP TRIGGER event_store_check_insert;

CREATE TRIGGER event_store_check_insert
    BEFORE INSERT ON event_store
    FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'evstore: event_store positions are drawn by the database; insert without a position')
    WHERE NEW.position <> -1;
    SELECT RAISE(ABORT, 'evstore: event_id is already stored in event_store; events are never replaced')
    WHERE EXISTS (SELECT 1 FROM event_store WHERE event_id = NEW.event_id);
    SELECT RAISE(ABORT, 'evstore: version does not follow the stream''s last event; events are never replaced')
    WHERE NEW.version <> coalesce(
        (SELECT max(version) FROM event_store WHERE stream_id = NEW.stream_id) + 1,
        CASE WHEN NEW.version = 0 THEN 0 ELSE 1 END);
    SELECT RAISE(ABORT, 'evstore: version is beyond the stream head; append through evstore, which moves the head first')
    WHERE NEW.version > coalesce((SELECT version FROM stream WHERE stream_id = NEW.stream_id), -1);
    SELECT RAISE(ABORT, 'evstore: content_digest is missing; append through evstore')
    WHERE NEW.content_digest IS NULL;
END;

DROP TABLE evstore_copy;
