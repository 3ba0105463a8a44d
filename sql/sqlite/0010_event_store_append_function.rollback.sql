-- Drop the INSERT guards of event_store.
DROP TRIGGER event_store_check_position;
DROP TRIGGER event_store_check_insert;
