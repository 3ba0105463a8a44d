-- evstore's bookkeeping statements on SQLite: migration checksums and yoyo's lock.
--
-- For DBAs reviewing what `evstore migrate`, `rollback` and `status` run besides the
-- migrations themselves, and for evstore/schema/migrations.py, which runs these blocks. They
-- touch only yoyo's bookkeeping (_yoyo_migration, yoyo_lock) and evstore's checksum tables
-- beside it (_yoyo_evstore_checksum, created here and never dropped by a rollback, and 0008's
-- evstore_migration_checksum).
-- The one statement built from a name known only at run time stays in Python, quoted by the
-- doubled-quote helper (evstore.dialects.sqlite.quote_identifier): the "does this table hold
-- rows" check before a rollback drops it.
--
-- The format is sql/queries/sqlite.sql's: `-- name: NAME`, a one-line description, one
-- statement, `:name` parameters. Names without a dialect prefix are in sql/tooling/postgres.sql
-- too, with the same parameters (`evstore lint`, rule queries-match).

-- name: list_tables
-- The tables of the database (where yoyo keeps its bookkeeping).
SELECT name FROM sqlite_schema WHERE type = 'table'

-- name: create_checksum_table
-- evstore's own table of applied files' SHA-256, beside yoyo's tables, outside any migration.
CREATE TABLE IF NOT EXISTS _yoyo_evstore_checksum (
    migration_id VARCHAR(255) NOT NULL PRIMARY KEY,
    sha256 VARCHAR(64) NOT NULL
)

-- name: applied_migrations
-- The migrations yoyo recorded as applied, with yoyo's hash of each id.
SELECT migration_id, migration_hash FROM _yoyo_migration

-- name: checksums
-- The SHA-256 of each applied migration's files, as evstore recorded it at apply time.
SELECT migration_id, sha256 FROM _yoyo_evstore_checksum

-- name: delete_checksum
-- Forget one migration's recorded SHA-256 (rolled back, or about to be recorded afresh).
DELETE FROM _yoyo_evstore_checksum WHERE migration_id = :id

-- name: insert_checksum
-- Record one applied migration's SHA-256.
INSERT INTO _yoyo_evstore_checksum (migration_id, sha256) VALUES (:id, :sha)

-- name: legacy_checksums
-- The SHA-256 recorded in migration 0008's table (databases migrated before evstore's own table).
SELECT migration_id, sha256 FROM evstore_migration_checksum

-- name: delete_legacy_checksum
-- Forget one migration's SHA-256 in migration 0008's table.
DELETE FROM evstore_migration_checksum WHERE migration_id = :id

-- name: insert_legacy_checksum
-- Record one applied migration's SHA-256 in migration 0008's table too, while it exists.
INSERT INTO evstore_migration_checksum (migration_id, sha256) VALUES (:id, :sha)

-- name: migration_lock_pid
-- The process id in yoyo's lock row, when a migration holds the lock.
SELECT pid FROM yoyo_lock
