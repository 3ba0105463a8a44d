-- What `evstore parity` and `evstore drift` read from a SQLite schema, one named block each.
--
-- For DBAs reviewing what the comparison sees, and for evstore/schema/catalog/sqlite.py, which
-- runs these blocks; all of them only read. The table-valued pragma functions take the table or
-- index name as a bound parameter (`pragma_index_list(:table)`), so no name is pasted into SQL.
-- What SQLite keeps only in the stored CREATE text (constraint names, CHECK expressions, partial
-- index predicates, trigger timing) is read from sqlite_schema.sql by the Python module.
--
-- The format is sql/queries/sqlite.sql's: `-- name: NAME`, a one-line description, one
-- statement, `:name` parameters. Introspection differs wholly between the dialects, so every
-- block here is SQLite's own (sqlite_ prefix) and sql/catalog/postgres.sql holds PostgreSQL's.

-- name: sqlite_catalog_objects
-- Every table, index, trigger and view with its stored CREATE text, leaving out sqlite_* internals.
SELECT type, name, tbl_name, sql
FROM sqlite_schema
WHERE name NOT LIKE 'sqlite\_%' ESCAPE '\'
ORDER BY type, name

-- name: sqlite_catalog_columns
-- A table's columns, hidden ones included (hidden = 1 marks a virtual table's own columns).
SELECT cid, name, type, "notnull", dflt_value, pk, hidden
FROM pragma_table_xinfo(:table)
ORDER BY cid

-- name: sqlite_catalog_index_list
-- A table's indexes: origin c (CREATE INDEX), u (UNIQUE constraint) or pk, and whether partial.
SELECT seq, name, "unique", origin, partial
FROM pragma_index_list(:table)

-- name: sqlite_catalog_index_columns
-- The columns of one index, in key order (for a UNIQUE constraint's columns).
SELECT name
FROM pragma_index_info(:index)
ORDER BY seqno

-- name: sqlite_catalog_index_keys
-- The key columns of one index: column (cid -2 for an expression), DESC and collation.
SELECT seqno, cid, name, "desc", coll
FROM pragma_index_xinfo(:index)
WHERE key = 1
ORDER BY seqno

-- name: sqlite_catalog_foreign_keys
-- A table's foreign keys, one row per column pair, with their ON UPDATE and ON DELETE actions.
SELECT id, seq, "table", "from", "to", on_update, on_delete
FROM pragma_foreign_key_list(:table)
ORDER BY id, seq
