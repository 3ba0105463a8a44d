-- Drop evstore_migration_checksum.
DROP TABLE evstore_migration_checksum;
