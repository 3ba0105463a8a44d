-- Wake tailing readers: every INSERT into event_store sends NOTIFY evstore_event_store at commit (PostgreSQL only).
--
-- A statement trigger, so a batch of 100 events sends one notification; PostgreSQL folds
-- identical notifications of one transaction into one and delivers them only at COMMIT, so a
-- woken reader always finds the events committed. SQLite readers poll PRAGMA data_version
-- instead; its 0007 migration is intentionally empty.

CREATE FUNCTION event_store_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('evstore_event_store', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER event_store_notify
    AFTER INSERT ON event_store
    FOR EACH STATEMENT EXECUTE FUNCTION event_store_notify();
