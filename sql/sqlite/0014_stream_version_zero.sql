-- Let a stream start at version 0 as well as 1, for callers that assign their events' versions: event_store and stream accept version 0, and the INSERT guard lets a stream begin at 0.
--
-- A stream's first event has version 0 or 1 and every later one follows the last without a
-- gap. evstore's own appends still start at 1; a caller that gives each event its version
-- (NewEvent.version) may start at 0, as the eventsourcing library's aggregates and recorder
-- tests do, and keeps its numbers as they are. As on PostgreSQL:
--   * ck_event_store_version_positive and ck_stream_version_positive (version >= 1) become
--     ck_event_store_version_not_negative and ck_stream_version_not_negative (version >= 0).
--     SQLite cannot ALTER a CHECK. Instead of copying both tables (and every trigger on
--     them), this uses the procedure SQLite documents for loosening a CHECK (lang_altertable,
--     "Making Other Kinds Of Table Schema Changes"): the CHECK's text in sqlite_schema is
--     rewritten, which is safe because every stored row already passes the looser one.
--     Nothing is copied or scanned, whatever the size of the log. The guard table below
--     fails the migration (and rolls it all back) unless both definitions were rewritten;
--     a connection in SQLite's defensive mode refuses the UPDATE, which also rolls back.
--   * event_store_check_insert (0010) lets a stream's first event be version 0 or 1. A head
--     at 0 is now a stream: the "beyond the stream head" rule compares with -1 when there is
--     no head at all.
-- Recreating the trigger is a schema change: every other connection reads the new schema at
-- its next statement, a rollback of this migration restores the old one, and
-- writable_schema = RESET makes this connection read it now.
-- Snapshots keep versions from 1 (ck_snapshot_version_positive): a snapshot of version 0
-- would save replaying a single event.

PRAGMA writable_schema = ON;

UPDATE sqlite_schema SET sql = replace(sql, 'CONSTRAINT ck_event_store_version_positive CHECK (version >= 1)', 'CONSTRAINT ck_event_store_version_not_negative CHECK (version >= 0)')
WHERE type = 'table' AND name = 'event_store';

UPDATE sqlite_schema SET sql = replace(sql, 'CONSTRAINT ck_stream_version_positive CHECK (version >= 1)', 'CONSTRAINT ck_stream_version_not_negative CHECK (version >= 0)')
WHERE type = 'table' AND name = 'stream';

PRAGMA writable_schema = OFF;

CREATE TEMP TABLE evstore_0014_guard (
    rewritten INTEGER NOT NULL CONSTRAINT ck_evstore_0014_version_checks_rewritten CHECK (rewritten = 2)
);

INSERT INTO evstore_0014_guard
SELECT count(*) FROM sqlite_schema
WHERE type = 'table' AND ((name = 'event_store' AND instr(sql, 'CONSTRAINT ck_event_store_version_not_negative CHECK (version >= 0)') > 0)
   OR (name = 'stream' AND instr(sql, 'CONSTRAINT ck_stream_version_not_negative CHECK (version >= 0)') > 0));

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
    WHERE NEW.version <> coalesce(
        (SELECT max(version) FROM event_store WHERE stream_id = NEW.stream_id) + 1,
        CASE WHEN NEW.version = 0 THEN 0 ELSE 1 END);
    SELECT RAISE(ABORT, 'evstore: version is beyond the stream head; append through evstore, which moves the head first')
    WHERE NEW.version > coalesce((SELECT version FROM stream WHERE stream_id = NEW.stream_id), -1);
    SELECT RAISE(ABORT, 'evstore: content_digest is missing; append through evstore')
    WHERE NEW.content_digest IS NULL;
END;

PRAGMA writable_schema = RESET;
