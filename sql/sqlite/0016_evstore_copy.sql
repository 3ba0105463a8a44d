-- Create evstore_copy, the record `evstore copy` keeps in its destination: which log it copies, up to which position, and whether it has finished, so `evstore copy --resume` continues only the same copy.
--
-- One row at most (the first copy_id is 1, and only 1 is allowed): a destination receives one copy.
-- source               where the log came from, its URL without a password (for people).
-- source_position      the copy is the source as of this position: every event up to it, and
--                      the stream heads, subscriptions and snapshots of that moment.
-- source_event_id,     the event at source_position and its chain digest: a resumed copy
-- source_chain_digest  goes on only from a source that still holds exactly that event.
-- finished_at          NULL while the copy runs; set once it has verified the destination.
--
-- The switch: while a row here has no finished_at, event_store_check_insert (0010, redefined
-- below) admits rows with an explicit position, so the copy keeps the source's positions. Such
-- a position must still lie beyond the newest stored one, and every other rule of 0010 holds
-- (versions follow the stream, no event id twice). SQLite has no roles: whoever can write the
-- file is its owner and could drop the trigger as well; `evstore verify` reports what a write
-- around evstore breaks. Events without a content digest (stored before 0009) are admitted
-- during a copy too, as the source holds them.

CREATE TABLE evstore_copy (
    copy_id              INTEGER NOT NULL CONSTRAINT pk_evstore_copy PRIMARY KEY AUTOINCREMENT,
    source               TEXT    NOT NULL,
    source_position      INTEGER NOT NULL,
    source_event_id      TEXT,
    source_chain_digest  BLOB,
    started_at           TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at          TEXT,
    CONSTRAINT ck_evstore_copy_one_row CHECK (copy_id = 1),
    CONSTRAINT ck_evstore_copy_source_position_not_negative CHECK (source_position >= 0)
) STRICT;

DROP TRIGGER event_store_check_insert;

CREATE TRIGGER event_store_check_insert
    BEFORE INSERT ON event_store
    FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'evstore: event_store positions are drawn by the database; insert without a position')
    WHERE NEW.position <> -1 AND NOT (
        NEW.position > coalesce((SELECT max(position) FROM event_store), 0)
        AND EXISTS (SELECT 1 FROM evstore_copy WHERE finished_at IS NULL));
    SELECT RAISE(ABORT, 'evstore: event_id is already stored in event_store; events are never replaced')
    WHERE EXISTS (SELECT 1 FROM event_store WHERE event_id = NEW.event_id);
    SELECT RAISE(ABORT, 'evstore: version does not follow the stream''s last event; events are never replaced')
    WHERE NEW.version <> coalesce(
        (SELECT max(version) FROM event_store WHERE stream_id = NEW.stream_id) + 1,
        CASE WHEN NEW.version = 0 THEN 0 ELSE 1 END);
    SELECT RAISE(ABORT, 'evstore: version is beyond the stream head; append through evstore, which moves the head first')
    WHERE NEW.version > coalesce((SELECT version FROM stream WHERE stream_id = NEW.stream_id), -1);
    SELECT RAISE(ABORT, 'evstore: content_digest is missing; append through evstore')
    WHERE NEW.content_digest IS NULL
      AND NOT EXISTS (SELECT 1 FROM evstore_copy WHERE finished_at IS NULL);
END;
