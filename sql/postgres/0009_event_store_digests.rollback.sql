-- Drop event_store.chain_digest and event_store.content_digest with their length CHECKs.
ALTER TABLE event_store DROP COLUMN chain_digest;
ALTER TABLE event_store DROP COLUMN content_digest;
