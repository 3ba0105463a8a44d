-- Drop event_store with its constraints, indexes and identity sequence.
DROP TABLE event_store;
