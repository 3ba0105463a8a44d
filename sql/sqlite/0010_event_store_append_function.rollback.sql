-- Drop the INSERT guard of event_store.
DROP TRIGGER event_store_check_insert;
