-- Add event_store.content_digest: the SHA-256 of each event's type, data and metadata in canonical form, so `evstore verify` can prove stored events unchanged.
--
-- The digest is computed by evstore when it appends (see README, "What `evstore verify`
-- proves"); the same event has the same digest on both dialects. Events appended before this
-- migration keep NULL; the trigger event_store_check_insert (0010) refuses new rows without one.

ALTER TABLE event_store
    ADD COLUMN content_digest BLOB
        CONSTRAINT ck_event_store_content_digest_length CHECK (length(content_digest) = 32);
