-- Add event_store.content_digest and event_store.chain_digest: each event's SHA-256 of its type, data and metadata, and a hash chain over the log, so `evstore verify` can prove stored events unchanged and none removed or inserted.
--
-- content_digest  SHA-256 over "evstore-v1", the event type, and the canonical JSON of data
--                 and metadata (sorted keys, no whitespace, numbers as jsonb keeps them),
--                 separated by NUL; computed by evstore when it appends (README, "Security").
--                 The same event has the same digest on both dialects.
-- chain_digest    SHA-256 of the previous event's chain_digest (nothing for the first event
--                 that has one), this event's content_digest, its event_id, its version as an
--                 8-byte big-endian integer and its stream_id; computed under the append lock
--                 by evstore_append() (0010), so it covers the log in position order.
-- Events appended before this migration keep NULL in both; every later append fills both.

ALTER TABLE event_store
    ADD COLUMN content_digest bytea
        CONSTRAINT ck_event_store_content_digest_length CHECK (length(content_digest) = 32);

ALTER TABLE event_store
    ADD COLUMN chain_digest bytea
        CONSTRAINT ck_event_store_chain_digest_length CHECK (length(chain_digest) = 32);
