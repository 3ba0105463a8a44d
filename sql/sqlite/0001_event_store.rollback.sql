-- Drop event_store with its constraints and indexes.
DROP TABLE event_store;
