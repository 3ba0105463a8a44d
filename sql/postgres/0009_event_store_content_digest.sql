-- Add event_store.content_digest: the SHA-256 of each event's type, data and metadata in canonical form, so `evstore verify` can prove stored events unchanged.
--
-- The digest is computed by evstore when it appends (see README, "What `evstore verify`
-- proves"): SHA-256 over "evstore-v1", the event type, and the canonical JSON of data and
-- metadata (sorted keys, no whitespace, numbers as PostgreSQL's jsonb keeps them), separated by
-- NUL. The same event has the same digest on both dialects. Events appended before this
-- migration keep NULL; every later append must carry one (the append path refuses NULL).

ALTER TABLE event_store
    ADD COLUMN content_digest bytea
        CONSTRAINT ck_event_store_content_digest_length CHECK (length(content_digest) = 32);
