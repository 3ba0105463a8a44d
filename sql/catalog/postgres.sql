-- What `evstore parity` and `evstore drift` read from PostgreSQL's catalog, one named block each.
--
-- For DBAs reviewing what the comparison sees, and for evstore/schema/catalog/postgres.py, which
-- runs these blocks. Nothing here writes to a schema of yours: the postgres_catalog_* blocks
-- read pg_catalog; the postgres_norm_* blocks read back what PostgreSQL printed for a CHECK,
-- index or trigger that evstore created, inside a rolled-back transaction, on a temporary
-- copy of one table (CREATE TEMP TABLE evstore_norm_N (LIKE table)). Those statements are
-- built in Python from identifiers and the SQLite expression under comparison, through
-- psycopg.sql, since their names and expressions are not known in advance.
--
-- The format is sql/queries/postgres.sql's: `-- name: NAME`, a one-line description, one
-- statement, `:name` parameters. Introspection differs wholly between the dialects, so every
-- block here is PostgreSQL's own (postgres_ prefix) and sql/catalog/sqlite.sql holds SQLite's.

-- name: postgres_catalog_search_path
-- Fix the search_path to the schema for this transaction, so pg_get_*def print names unqualified.
SELECT set_config('search_path', :schema, true)

-- name: postgres_catalog_columns
-- Every column of the schema's tables: type as format_type prints it, NOT NULL, default, identity.
SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum

-- name: postgres_catalog_constraints
-- Primary keys, uniques, CHECKs and foreign keys, with their columns in key order and FK actions.
SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid),
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       f.relname,
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i),
       k.confdeltype, k.confupdtype
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class f ON f.oid = k.confrelid
WHERE n.nspname = :schema AND k.contype IN ('p', 'u', 'c', 'f')
ORDER BY c.relname, k.conname

-- name: postgres_catalog_indexes
-- Indexes that back no constraint (those are reported with the constraint): keys, order, predicate.
SELECT i.relname, t.relname, x.indisunique, am.amname, pg_get_expr(x.indpred, x.indrelid),
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true)
             FROM generate_series(1, x.indnkeyatts) k ORDER BY k),
       pg_indexam_has_property(am.oid, 'can_order'),
       ARRAY(SELECT x.indoption[k - 1] FROM generate_series(1, x.indnkeyatts) k ORDER BY k),
       ARRAY(SELECT co.collname FROM generate_series(1, x.indnkeyatts) k
             LEFT JOIN pg_collation co ON co.oid = x.indcollation[k - 1] ORDER BY k)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = i.relam
WHERE n.nspname = :schema
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
ORDER BY i.relname

-- name: postgres_catalog_triggers
-- User triggers: type bits, function, definition (for the WHEN condition) and UPDATE OF columns.
SELECT g.tgname, c.relname, g.tgtype, p.proname, pg_get_triggerdef(g.oid, true),
       ARRAY(SELECT a.attname FROM unnest(g.tgattr::int2[]) u(n)
             JOIN pg_attribute a ON a.attrelid = g.tgrelid AND a.attnum = u.n ORDER BY a.attname)
FROM pg_trigger g
JOIN pg_class c ON c.oid = g.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = g.tgfoid
WHERE n.nspname = :schema AND NOT g.tgisinternal
ORDER BY g.tgname

-- name: postgres_catalog_functions
-- Functions and procedures of the schema, with their language and source.
SELECT p.proname, l.lanname, p.prosrc
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = :schema AND p.prokind IN ('f', 'p')
ORDER BY p.proname

-- name: postgres_catalog_sequences
-- Sequences that no identity or serial column owns.
SELECT s.relname
FROM pg_class s
JOIN pg_namespace n ON n.oid = s.relnamespace
WHERE n.nspname = :schema AND s.relkind = 'S'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = s.oid AND d.deptype IN ('a', 'i'))
ORDER BY s.relname

-- name: postgres_catalog_first_column
-- A table's first live column (the key of the temporary index that prints a partial predicate).
SELECT a.attname
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relname = :table AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
LIMIT 1

-- name: postgres_norm_check
-- The CHECK evstore_norm just added to the temporary copy :copy, as PostgreSQL prints it.
SELECT pg_get_constraintdef(oid)
FROM pg_constraint
WHERE conname = 'evstore_norm' AND conrelid = quote_ident(:copy)::regclass

-- name: postgres_norm_trigger
-- The trigger evstore_norm_tg just created on the temporary copy :copy, as PostgreSQL prints it.
SELECT pg_get_triggerdef(oid, true)
FROM pg_trigger
WHERE tgname = 'evstore_norm_tg' AND tgrelid = quote_ident(:copy)::regclass

-- name: postgres_norm_index
-- The predicate and first key of the index evstore_norm_ix just created, as PostgreSQL prints them.
SELECT pg_get_expr(x.indpred, x.indrelid), pg_get_indexdef(x.indexrelid, 1, true)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
WHERE i.relname = 'evstore_norm_ix'
