-- Stop notifying tailing readers of inserts into event_store.
DROP TRIGGER event_store_notify ON event_store;
DROP FUNCTION event_store_notify();
