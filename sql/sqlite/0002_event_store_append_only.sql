-- Make event_store append-only in the database: UPDATE and DELETE are rejected by triggers.

CREATE TRIGGER event_store_reject_update
    BEFORE UPDATE ON event_store
    FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'evstore: event_store is append-only');
END;

CREATE TRIGGER event_store_reject_delete
    BEFORE DELETE ON event_store
    FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'evstore: event_store is append-only');
END;
