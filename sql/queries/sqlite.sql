-- The statements evstore runs at run time on SQLite, one named block each (not a migration).
--
-- Format, the same in sql/queries/postgres.sql (its header says more):
--   -- name: NAME          starts a block; NAME is how evstore's code asks for it
--   -- what it does        one line that describes the statement
--   the SQL               one statement, up to the next `-- name:` line
-- Parameters are named, `:stream_id`, and sqlite3 binds them natively. A list of values goes
-- as one JSON array text read with json_each (`:event_ids`), where PostgreSQL takes an array.
-- Names without a dialect prefix are in both files with the same parameters (`evstore lint`,
-- rule queries-match). A name that starts with `sqlite_` is SQLite's own: the append path's
-- statements, transactions, the tail's wake-up and connection setup.
-- One exception to "the text runs as written": sqlite_insert_event is a one-row template;
-- the append repeats its VALUES row for up to 1000 events in one statement (evstore/dialects/queries.py,
-- Query.repeated_rows), with the parameters bound by position in the order written here.

-- name: sqlite_foreign_keys
-- Connection setup: enforce foreign keys (off by default in SQLite).
PRAGMA foreign_keys = ON

-- name: sqlite_journal_wal
-- Connection setup for a file: write-ahead log, so readers never block the writer.
PRAGMA journal_mode = WAL

-- name: sqlite_synchronous_full
-- Connection setup for a file: fsync the log at every commit (durable appends).
PRAGMA synchronous = FULL

-- name: sqlite_begin
-- Open a write transaction, taking the database's write lock now rather than at first write.
BEGIN IMMEDIATE

-- name: sqlite_commit
-- Commit the write transaction.
COMMIT

-- name: sqlite_rollback
-- Roll the write transaction back.
ROLLBACK

-- name: sqlite_head_any
-- Append, any expected version or an existing stream: move the head; no row: no such stream.
UPDATE stream SET version = version + :count WHERE stream_id = :stream_id RETURNING version

-- name: sqlite_head_exact
-- Append at an expected version: move the head only from that version, else no row.
UPDATE stream SET version = version + :count
WHERE stream_id = :stream_id AND version = :expected
RETURNING version

-- name: sqlite_head_new
-- Append to a new stream: insert its head (trigger stream_check_insert refuses an existing one).
INSERT INTO stream (stream_id, version) VALUES (:stream_id, :count) RETURNING version

-- name: sqlite_insert_event
-- Append: store events (the VALUES row is repeated once per event, see the header).
INSERT INTO event_store (event_id, stream_id, version, event_type, payload, metadata,
                         content_digest, chain_digest)
VALUES (:event_id, :stream_id, :version, :event_type, :payload, :metadata, :content_digest,
        :chain_digest)

-- name: sqlite_recorded_at
-- Append: the time stored with the newest event of the INSERT just made (one per statement).
SELECT recorded_at FROM event_store WHERE position = :position

-- name: sqlite_chain_head
-- Append: the newest chain digest, read under the write lock; the chain continues from it.
SELECT chain_digest FROM event_store WHERE chain_digest IS NOT NULL
ORDER BY position DESC LIMIT 1

-- name: sqlite_data_version
-- A counter that changes when another connection commits (the tail's wake-up).
PRAGMA data_version

-- name: event_store_exists
-- One row when the event_store table exists (CLI commands check first).
SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'event_store'

-- name: find_events
-- The events with these event ids (a JSON array), in position order.
SELECT position, stream_id, version, event_id, event_type, payload, metadata, recorded_at,
       content_digest
FROM event_store
WHERE event_id IN (SELECT value FROM json_each(:event_ids))
ORDER BY position

-- name: stream_version
-- The version of a stream's head, no row when the stream does not exist.
SELECT version FROM stream WHERE stream_id = :stream_id

-- name: read_stream_forward
-- A stream's events from a version on, oldest first (a limit of -1 reads to the end).
SELECT position, stream_id, version, event_id, event_type, payload, metadata, recorded_at,
       content_digest
FROM event_store
WHERE stream_id = :stream_id AND version >= :from_version
ORDER BY version ASC
LIMIT :limit

-- name: read_stream_backward
-- A stream's events from a version down, newest first (a limit of -1 reads to the start).
SELECT position, stream_id, version, event_id, event_type, payload, metadata, recorded_at,
       content_digest
FROM event_store
WHERE stream_id = :stream_id AND version <= :from_version
ORDER BY version DESC
LIMIT :limit

-- name: read_all
-- A page of the whole log after a position, in position order.
SELECT position, stream_id, version, event_id, event_type, payload, metadata, recorded_at,
       content_digest
FROM event_store
WHERE position > :after
ORDER BY position
LIMIT :limit

-- name: read_all_of_type
-- A page of the log's events of one type after a position, in position order (one index range).
SELECT position, stream_id, version, event_id, event_type, payload, metadata, recorded_at,
       content_digest
FROM event_store
WHERE event_type = :event_type AND position > :after
ORDER BY position
LIMIT :limit

-- name: read_all_of_types
-- A page of the log's events of some types (a JSON array) after a position, in position order.
SELECT position, stream_id, version, event_id, event_type, payload, metadata, recorded_at,
       content_digest
FROM event_store
WHERE position > :after AND event_type IN (SELECT value FROM json_each(:types))
ORDER BY position
LIMIT :limit

-- name: head_position
-- The highest position in the log (NULL when it is empty).
SELECT max(position) FROM event_store

-- name: save_snapshot
-- Store a stream's state at a version, replacing one saved at the same version.
INSERT INTO snapshot (stream_id, version, state)
VALUES (:stream_id, :version, :state)
ON CONFLICT (stream_id, version)
DO UPDATE SET state = excluded.state, created_at = excluded.created_at
RETURNING created_at

-- name: load_snapshot
-- A stream's latest snapshot.
SELECT stream_id, version, state, created_at
FROM snapshot
WHERE stream_id = :stream_id
ORDER BY version DESC
LIMIT 1

-- name: load_snapshot_at
-- A stream's latest snapshot at or below a version.
SELECT stream_id, version, state, created_at
FROM snapshot
WHERE stream_id = :stream_id AND version <= :version
ORDER BY version DESC
LIMIT 1

-- name: checkpoint
-- The position a live subscription has processed (no row: it has not started).
SELECT position FROM subscription WHERE name = :name AND deleted_at IS NULL

-- name: checkpoint_for_update
-- The same; SQLite has no row locks, the write transaction (BEGIN IMMEDIATE) already serialises.
SELECT position FROM subscription WHERE name = :name AND deleted_at IS NULL

-- name: set_checkpoint
-- Record the position a subscription has processed, creating the subscription if need be.
INSERT INTO subscription (name, position)
VALUES (:name, :position)
ON CONFLICT (name) WHERE deleted_at IS NULL
DO UPDATE SET position = excluded.position

-- name: compare_and_set_checkpoint
-- Move a live subscription from :expected to :position (a missing one counts as 0); no row: it was elsewhere, nothing changed.
INSERT INTO subscription (name, position)
SELECT :name, :position
WHERE :expected = 0
   OR EXISTS (SELECT 1 FROM subscription WHERE name = :name AND deleted_at IS NULL)
ON CONFLICT (name) WHERE deleted_at IS NULL
DO UPDATE SET position = excluded.position WHERE subscription.position = :expected
RETURNING position

-- name: delete_checkpoint
-- Mark a live subscription deleted (the row stays, for the audit trail).
UPDATE subscription SET deleted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
WHERE name = :name AND deleted_at IS NULL
RETURNING subscription_id

-- name: verify_version_gaps
-- evstore verify: streams whose versions do not run from 0 or 1 without gaps.
SELECT stream_id, count(*), min(version), max(version)
FROM event_store
GROUP BY stream_id
HAVING min(version) NOT IN (0, 1) OR max(version) - min(version) + 1 <> count(*)
ORDER BY stream_id
LIMIT :limit

-- name: verify_position_order
-- evstore verify: events at a lower position than their stream's previous version.
SELECT stream_id, version, position, previous_position
FROM (SELECT stream_id, version, position,
             lag(position) OVER (PARTITION BY stream_id ORDER BY version) AS previous_position
      FROM event_store) AS ordered
WHERE previous_position > position
ORDER BY stream_id, version
LIMIT :limit

-- name: verify_heads
-- evstore verify: stream heads that do not equal their stream's last event.
SELECT s.stream_id, s.version, e.last_version
FROM stream AS s
LEFT JOIN (SELECT stream_id, max(version) AS last_version
           FROM event_store GROUP BY stream_id) AS e ON e.stream_id = s.stream_id
WHERE e.last_version IS NULL OR e.last_version <> s.version
ORDER BY s.stream_id
LIMIT :limit

-- name: verify_headless
-- evstore verify: streams that have events but no head.
SELECT e.stream_id, max(e.version)
FROM event_store AS e
WHERE NOT EXISTS (SELECT 1 FROM stream AS s WHERE s.stream_id = e.stream_id)
GROUP BY e.stream_id
ORDER BY e.stream_id
LIMIT :limit

-- name: verify_stream_count
-- evstore verify: how many streams there are.
SELECT count(*) FROM stream

-- name: verify_below_one
-- evstore verify: rows at a position below 1, which readers and tails never see.
SELECT position, stream_id, version, event_id, event_type, payload, metadata, content_digest
FROM event_store
WHERE position < 1
ORDER BY position
LIMIT :limit

-- name: verify_chain_page
-- evstore verify: the hash chain, one page in position order, without the documents.
SELECT position, event_id, stream_id, version, content_digest, chain_digest
FROM event_store
WHERE position > :after
ORDER BY position
LIMIT :limit

-- name: copy_table_exists
-- evstore copy: one row when the destination has evstore_copy (migration 0016).
SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'evstore_copy'

-- name: copy_contents
-- evstore copy: what a destination holds (streams, the highest position, subscriptions, snapshots).
SELECT (SELECT count(*) FROM stream), (SELECT max(position) FROM event_store),
       (SELECT count(*) FROM subscription), (SELECT count(*) FROM snapshot)

-- name: copy_marker
-- evstore copy: the copy this destination receives, if any (migration 0016).
SELECT source, source_position, source_event_id, source_chain_digest, finished_at
FROM evstore_copy

-- name: copy_marker_start
-- evstore copy: record which log this destination receives, and up to which position.
INSERT INTO evstore_copy (source, source_position, source_event_id, source_chain_digest)
VALUES (:source, :source_position, :source_event_id, :source_chain_digest)

-- name: copy_marker_finish
-- evstore copy: the copy is complete and verified; explicit positions are refused again.
UPDATE evstore_copy SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
WHERE finished_at IS NULL

-- name: copy_head
-- evstore copy: the newest event's position, id and chain digest (no row for an empty log).
SELECT position, event_id, chain_digest FROM event_store
WHERE position = (SELECT max(position) FROM event_store)

-- name: copy_event_at
-- evstore copy: the id and chain digest of the event at a position.
SELECT position, event_id, chain_digest FROM event_store WHERE position = :position

-- name: copy_read_events
-- evstore copy: a page of whole events in a position range, in position order.
SELECT position, event_id, stream_id, version, event_type, payload, metadata, recorded_at,
       content_digest, chain_digest
FROM event_store
WHERE position > :after AND position <= :through
ORDER BY position
LIMIT :limit

-- name: copy_read_event_keys
-- evstore copy: the same page without the documents, to compare source and destination.
SELECT position, event_id, stream_id, version, event_type, recorded_at, content_digest,
       chain_digest
FROM event_store
WHERE position > :after AND position <= :through
ORDER BY position
LIMIT :limit

-- name: copy_read_streams
-- evstore copy: every stream head, in stream order.
SELECT stream_id, version, metadata, created_at, updated_at FROM stream ORDER BY stream_id

-- name: copy_read_subscriptions
-- evstore copy: every subscription, soft-deleted ones included, in id order.
SELECT subscription_id, name, position, created_at, updated_at, deleted_at
FROM subscription
ORDER BY subscription_id

-- name: copy_read_snapshots
-- evstore copy: every snapshot, in stream and version order.
SELECT stream_id, version, state, created_at FROM snapshot ORDER BY stream_id, version

-- name: sqlite_copy_read_begin
-- evstore copy: a read transaction on the source, so every read sees one moment of the file.
BEGIN DEFERRED

-- name: sqlite_copy_insert_event
-- evstore copy: store an event with its position, admitted while evstore_copy is unfinished (0016).
INSERT INTO event_store (position, event_id, stream_id, version, event_type, payload, metadata,
                         recorded_at, content_digest, chain_digest)
VALUES (:position, :event_id, :stream_id, :version, :event_type, :payload, :metadata,
        :recorded_at, :content_digest, :chain_digest)

-- name: sqlite_copy_insert_stream
-- evstore copy: store a stream head as the source has it.
INSERT INTO stream (stream_id, version, metadata, created_at, updated_at)
VALUES (:stream_id, :version, :metadata, :created_at, :updated_at)

-- name: sqlite_copy_insert_subscription
-- evstore copy: store a subscription with its id (AUTOINCREMENT goes on after the highest).
INSERT INTO subscription (subscription_id, name, position, created_at, updated_at, deleted_at)
VALUES (:subscription_id, :name, :position, :created_at, :updated_at, :deleted_at)

-- name: sqlite_copy_insert_snapshot
-- evstore copy: store a snapshot as the source has it.
INSERT INTO snapshot (stream_id, version, state, created_at)
VALUES (:stream_id, :version, :state, :created_at)
-- name: claim_group_member
-- Take or renew a member's lease: granted when free, expired, or already this holder's.
INSERT INTO consumer_group_lease (group_name, member, group_size, holder, expires_at)
VALUES (:group_name, :member, :group_size, :holder,
        strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || :ttl_seconds || ' seconds'))
ON CONFLICT (group_name, member)
DO UPDATE SET group_size = excluded.group_size, holder = excluded.holder,
              expires_at = excluded.expires_at
WHERE consumer_group_lease.holder = excluded.holder
   OR consumer_group_lease.expires_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
RETURNING holder

-- name: release_group_member
-- Give a member's lease back, if this holder still has it.
DELETE FROM consumer_group_lease
WHERE group_name = :group_name AND member = :member AND holder = :holder
RETURNING member

-- name: group_leases
-- Every lease row of a group, with whether it is still live, by member.
SELECT member, group_size, holder, expires_at,
       expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM consumer_group_lease
WHERE group_name = :group_name
ORDER BY member

-- name: delete_group_leases
-- Remove every lease row of a group (a reset, once no other process holds a member).
DELETE FROM consumer_group_lease WHERE group_name = :group_name RETURNING member

-- name: group_checkpoints
-- A group's live checkpoints: the plain name, and names that start with its member prefix.
SELECT name, position
FROM subscription
WHERE deleted_at IS NULL
  AND (name = :group_name OR substr(name, 1, :prefix_length) = :member_prefix)
ORDER BY name
