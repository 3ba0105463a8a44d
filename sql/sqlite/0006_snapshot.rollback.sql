-- Drop snapshot.
DROP TABLE snapshot;
