-- Add GIN indexes on event_store.payload and event_store.metadata for containment queries (PostgreSQL only).
--
-- Operator class jsonb_path_ops: it supports @>, @? and @@ (what "find events whose payload
-- contains {...}" needs), and its indexes are smaller and cheaper to maintain on insert than the
-- default jsonb_ops, which also serves key-existence operators (?, ?|, ?&) that evstore does not use.
-- SQLite has no GIN; its 0003 migration is intentionally empty and sql/parity.toml declares these.

CREATE INDEX ix_event_store_payload_gin ON event_store USING gin (payload jsonb_path_ops);

CREATE INDEX ix_event_store_metadata_gin ON event_store USING gin (metadata jsonb_path_ops);
