-- Add event_store.content_digest and event_store.chain_digest: each event's SHA-256 of its type, data and metadata, and a hash chain over the log, so `evstore verify` can prove stored events unchanged and none removed or inserted.
--
-- Both are computed by evstore when it appends (README, "Security"), as on PostgreSQL; SQLite
-- has no SHA-256, so the chain is computed by the append path in Python while it holds the
-- write lock. Events appended before this migration keep NULL in both; the trigger
-- event_store_check_insert (0010) refuses new rows without them.

ALTER TABLE event_store
    ADD COLUMN content_digest BLOB
        CONSTRAINT ck_event_store_content_digest_length CHECK (length(content_digest) = 32);

ALTER TABLE event_store
    ADD COLUMN chain_digest BLOB
        CONSTRAINT ck_event_store_chain_digest_length CHECK (length(chain_digest) = 32);
