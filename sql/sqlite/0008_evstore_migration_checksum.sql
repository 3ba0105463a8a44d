-- Create evstore_migration_checksum: the SHA-256 of each migration file when it was applied, so edits to applied migrations are caught.

CREATE TABLE evstore_migration_checksum (
    migration_id  TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    applied_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT pk_evstore_migration_checksum PRIMARY KEY (migration_id),
    CONSTRAINT ck_evstore_migration_checksum_sha256_length CHECK (length(sha256) = 64)
) STRICT;
