-- Drop the GIN indexes on event_store.payload and event_store.metadata.
DROP INDEX ix_event_store_metadata_gin;
DROP INDEX ix_event_store_payload_gin;
