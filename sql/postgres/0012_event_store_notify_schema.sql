-- Name the schema in every evstore_event_store notification, so tails of stores in other schemas of the same database are not woken by this one (PostgreSQL only).
--
-- NOTIFY channels are per database, not per schema; the payload is the schema that holds the
-- event_store that changed, and a tail ignores notifications that name another schema.
-- SQLite readers poll PRAGMA data_version instead; its 0012 migration is intentionally empty.

CREATE OR REPLACE FUNCTION event_store_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('evstore_event_store', TG_TABLE_SCHEMA);
    RETURN NULL;
END;
$$;
