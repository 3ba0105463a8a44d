-- Drop evstore_append() and the INSERT guard; the application role then has no way left to append.
DROP TRIGGER event_store_check_insert ON event_store;
DROP FUNCTION event_store_check_insert();
DROP FUNCTION evstore_append(text, text, bigint, text[], text[], text[], text[], bytea[], integer);
