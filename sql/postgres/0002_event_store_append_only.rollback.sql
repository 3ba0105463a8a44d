-- Allow changes to event_store again by dropping the append-only triggers and their function.
DROP TRIGGER event_store_reject_truncate ON event_store;
DROP TRIGGER event_store_reject_delete ON event_store;
DROP TRIGGER event_store_reject_update ON event_store;
DROP FUNCTION event_store_reject_change();
