-- Make event_store append-only in the database: UPDATE, DELETE and TRUNCATE are rejected by triggers.

CREATE FUNCTION event_store_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'evstore: event_store is append-only'
        USING ERRCODE = 'restrict_violation',
              HINT = 'Events are never changed or removed; append a compensating event instead.';
END;
$$;

CREATE TRIGGER event_store_reject_update
    BEFORE UPDATE ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_reject_change();

CREATE TRIGGER event_store_reject_delete
    BEFORE DELETE ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_reject_change();

-- TRUNCATE bypasses row triggers, so it gets a statement trigger of its own (PostgreSQL only:
-- SQLite has no TRUNCATE; its DELETE without WHERE fires the row trigger above).
CREATE TRIGGER event_store_reject_truncate
    BEFORE TRUNCATE ON event_store
    FOR EACH STATEMENT EXECUTE FUNCTION event_store_reject_change();
