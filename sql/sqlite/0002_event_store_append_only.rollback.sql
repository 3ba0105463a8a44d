-- Allow changes to event_store again by dropping the append-only triggers.
DROP TRIGGER event_store_reject_delete;
DROP TRIGGER event_store_reject_update;
