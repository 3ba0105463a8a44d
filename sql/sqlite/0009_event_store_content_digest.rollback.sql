-- Drop event_store.content_digest and its length CHECK.
ALTER TABLE event_store DROP COLUMN content_digest;
