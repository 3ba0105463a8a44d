-- Send evstore_event_store notifications without a payload again, as 0007 did.
CREATE OR REPLACE FUNCTION event_store_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('evstore_event_store', '');
    RETURN NULL;
END;
$$;
