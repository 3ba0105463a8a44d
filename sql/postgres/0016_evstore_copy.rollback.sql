-- Drop evstore_copy.
DROP TABLE evstore_copy;
