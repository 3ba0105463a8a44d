-- Undo 0014: streams start at version 1 again; refused (ck_evstore_0014_no_stream_starts_at_zero) while any event has version 0.
--
-- Such events stay (the log is append-only), and the CHECK of 0001 would no longer hold for
-- them, so the guard table below stops the rollback before anything is changed.

CREATE TEMP TABLE evstore_0014_guard (
    no_version_zero INTEGER NOT NULL CONSTRAINT ck_evstore_0014_no_stream_starts_at_zero
        CHECK (no_version_zero = 1)
);

INSERT INTO evstore_0014_guard
SELECT NOT EXISTS (SELECT 1 FROM event_store WHERE version = 0);

DROP TABLE evstore_0014_guard;

PRAGMA writable_schema = ON;

UPDATE sqlite_schema SET sql = replace(sql, 'CONSTRAINT ck_event_store_version_not_negative CHECK (version >= 0)', 'CONSTRAINT ck_event_store_version_positive CHECK (version >= 1)')
WHERE type = 'table' AND name = 'event_store';

UPDATE sqlite_schema SET sql = replace(sql, 'CONSTRAINT ck_stream_version_not_negative CHECK (version >= 0)', 'CONSTRAINT ck_stream_version_positive CHECK (version >= 1)')
WHERE type = 'table' AND name = 'stream';

PRAGMA writable_schema = OFF;

CREATE TEMP TABLE evstore_0014_guard (
    rewritten INTEGER NOT NULL CONSTRAINT ck_evstore_0014_version_checks_rewritten CHECK (rewritten = 2)
);

INSERT INTO evstore_0014_guard
SELECT count(*) FROM sqlite_schema
WHERE type = 'table' AND ((name = 'event_store' AND instr(sql, 'CONSTRAINT ck_event_store_version_positive CHECK (version >= 1)') > 0)
   OR (name = 'stream' AND instr(sql, 'CONSTRAINT ck_stream_version_positive CHECK (version >= 1)') > 0));

DROP TABLE evstore_0014_guard;

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
    WHERE NEW.version <> 1 + coalesce(
        (SELECT max(version) FROM event_store WHERE stream_id = NEW.stream_id), 0);
    SELECT RAISE(ABORT, 'evstore: version is beyond the stream head; append through evstore, which moves the head first')
    WHERE NEW.version > coalesce((SELECT version FROM stream WHERE stream_id = NEW.stream_id), 0);
    SELECT RAISE(ABORT, 'evstore: content_digest is missing; append through evstore')
    WHERE NEW.content_digest IS NULL;
END;

PRAGMA writable_schema = RESET;
