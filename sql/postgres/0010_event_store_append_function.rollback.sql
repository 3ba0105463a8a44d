-- Drop evstore_append(); the application role then has no way left to append.
DROP FUNCTION evstore_append(text, text, bigint, text[], text[], text[], text[], bytea[], integer);
