-- The statements evstore runs at run time on PostgreSQL, one named block each (not a migration).
--
-- Format, the same in sql/queries/sqlite.sql:
--   -- name: NAME          starts a block; NAME is how evstore's code asks for it
--   -- what it does        one line that describes the statement
--   the SQL               one statement, up to the next `-- name:` line
-- Parameters are named, `:stream_id`. A parameter cast to an array type (`:event_ids::text[]`)
-- is sent in psycopg's binary format (`%(event_ids)b`): lengths and bytes, where the text
-- format would escape every quote of every JSON document first. Every other parameter goes as
-- `%(name)s`. On SQLite the loader keeps `:name`, which sqlite3 binds natively.
-- Names without a dialect prefix are in both files with the same parameters (`evstore lint`,
-- rule queries-match; `evstore parity` reports one that is on one side only). A name that
-- starts with `postgres_` or `sqlite_` is that dialect's own: the append path, the tail's
-- wake-up and connection setup, where the dialects really differ.

-- name: postgres_append
-- Append events to one stream through evstore_append() (migration 0010): one round trip.
SELECT position, version, recorded_at
FROM evstore_append(:stream_id::text, :kind::text, :expected::bigint, :event_ids::text[],
                    :event_types::text[], :payloads::text[], :metadata::text[],
                    :digests::bytea[], :lock_timeout_ms::integer)

-- name: postgres_current_schema
-- The schema this connection's unqualified names resolve to (the store's schema).
SELECT current_schema()

-- name: postgres_session
-- The store's schema (as postgres_current_schema), and whether the server is a standby in recovery.
SELECT current_schema(), pg_is_in_recovery()

-- name: postgres_replay_lsn
-- How far a standby has replayed the primary's WAL; a tail on a standby polls it (no LISTEN there).
SELECT pg_last_wal_replay_lsn()::text

-- name: postgres_listen
-- Subscribe this connection to the NOTIFY of event_store_notify (migrations 0007, 0012).
LISTEN evstore_event_store

-- name: postgres_current_user
-- The role this connection runs as (evstore grant refuses to grant to itself).
SELECT current_user

-- name: postgres_role_is_superuser
-- Whether a role is a superuser (evstore grant refuses those).
SELECT rolsuper FROM pg_roles WHERE rolname = :role

-- name: event_store_exists
-- One row when the event_store table is visible in this schema (CLI commands check first).
SELECT 1 WHERE to_regclass('event_store') IS NOT NULL

-- name: find_events
-- The events with these event ids, in position order.
SELECT position, stream_id, version, event_id, event_type, payload, metadata, recorded_at,
       content_digest
FROM event_store
WHERE event_id = ANY(:event_ids::text[])
ORDER BY position

-- name: stream_version
-- The version of a stream's head, no row when the stream does not exist.
SELECT version FROM stream WHERE stream_id = :stream_id

-- name: read_stream_forward
-- A stream's events from a version on, oldest first (a NULL limit reads to the end).
SELECT position, stream_id, version, event_id, event_type, payload, metadata, recorded_at,
       content_digest
FROM event_store
WHERE stream_id = :stream_id AND version >= :from_version
ORDER BY version ASC
LIMIT :limit

-- name: read_stream_backward
-- A stream's events from a version down, newest first (a NULL limit reads to the start).
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
-- A page of the log's events of some types after a position, in position order.
SELECT position, stream_id, version, event_id, event_type, payload, metadata, recorded_at,
       content_digest
FROM event_store
WHERE position > :after AND event_type = ANY(:types::text[])
ORDER BY position
LIMIT :limit

-- name: head_position
-- The highest position in the log (NULL when it is empty).
SELECT max(position) FROM event_store

-- name: save_snapshot
-- Store a stream's state at a version, replacing one saved at the same version.
INSERT INTO snapshot (stream_id, version, state)
VALUES (:stream_id, :version, :state::jsonb)
ON CONFLICT (stream_id, version)
DO UPDATE SET state = excluded.state, created_at = excluded.created_at
RETURNING state, created_at

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
-- The same, with the subscription's row locked until the transaction ends.
SELECT position FROM subscription WHERE name = :name AND deleted_at IS NULL FOR UPDATE

-- name: set_checkpoint
-- Record the position a subscription has processed, creating the subscription if need be.
INSERT INTO subscription (name, position)
VALUES (:name, :position)
ON CONFLICT (name) WHERE deleted_at IS NULL
DO UPDATE SET position = excluded.position
RETURNING position

-- name: compare_and_set_checkpoint
-- Move a live subscription from :expected to :position (a missing one counts as 0); no row: it was elsewhere, nothing changed.
INSERT INTO subscription (name, position)
SELECT :name::text, :position::bigint
WHERE :expected::bigint = 0
   OR EXISTS (SELECT 1 FROM subscription WHERE name = :name::text AND deleted_at IS NULL)
ON CONFLICT (name) WHERE deleted_at IS NULL
DO UPDATE SET position = excluded.position WHERE subscription.position = :expected::bigint
RETURNING position

-- name: delete_checkpoint
-- Mark a live subscription deleted (the row stays, for the audit trail).
UPDATE subscription SET deleted_at = now()
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
SELECT 1 WHERE to_regclass('evstore_copy') IS NOT NULL

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
-- evstore copy: the copy is complete and verified.
UPDATE evstore_copy SET finished_at = now() WHERE finished_at IS NULL

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

-- name: postgres_copy_session
-- evstore copy: let this session's COPY into event_store past event_store_check_insert (0010).
SELECT set_config('evstore.appending', 'on', false)

-- name: postgres_copy_events_in
-- evstore copy: load events with their positions and digests (COPY's text format).
COPY event_store (position, event_id, stream_id, version, event_type, payload, metadata,
                  recorded_at, content_digest, chain_digest)
FROM STDIN

-- name: postgres_copy_streams_in
-- evstore copy: load stream heads (binary COPY).
COPY stream (stream_id, version, metadata, created_at, updated_at) FROM STDIN (FORMAT BINARY)

-- name: postgres_copy_subscriptions_in
-- evstore copy: load subscriptions with their ids (binary COPY).
COPY subscription (subscription_id, name, position, created_at, updated_at, deleted_at)
FROM STDIN (FORMAT BINARY)

-- name: postgres_copy_snapshots_in
-- evstore copy: load snapshots (binary COPY).
COPY snapshot (stream_id, version, state, created_at) FROM STDIN (FORMAT BINARY)

-- name: postgres_copy_continue_positions
-- evstore copy: the next append draws the position after the highest copied one.
SELECT setval('event_store_position_seq', greatest(max(position), 1), max(position) IS NOT NULL)
FROM event_store

-- name: postgres_copy_continue_subscription_ids
-- evstore copy: the next subscription gets the id after the highest copied one.
SELECT setval('subscription_subscription_id_seq', greatest(max(subscription_id), 1),
              max(subscription_id) IS NOT NULL)
FROM subscription
-- name: postgres_lock_group
-- Serialise claims and resets of one consumer group until the transaction ends ("evgr", name).
SELECT pg_advisory_xact_lock(1702258546, hashtext(:group_name))

-- name: claim_group_member
-- Take or renew a member's lease: granted when free, expired, or already this holder's.
INSERT INTO consumer_group_lease (group_name, member, group_size, holder, expires_at)
VALUES (:group_name, :member, :group_size, :holder,
        clock_timestamp() + make_interval(secs => :ttl_seconds::double precision))
ON CONFLICT (group_name, member)
DO UPDATE SET group_size = excluded.group_size, holder = excluded.holder,
              expires_at = excluded.expires_at
WHERE consumer_group_lease.holder = excluded.holder
   OR consumer_group_lease.expires_at <= clock_timestamp()
RETURNING holder

-- name: release_group_member
-- Give a member's lease back, if this holder still has it.
DELETE FROM consumer_group_lease
WHERE group_name = :group_name AND member = :member AND holder = :holder
RETURNING member

-- name: group_leases
-- Every lease row of a group, with whether it is still live, by member.
SELECT member, group_size, holder, to_char(expires_at AT TIME ZONE 'UTC',
       'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), expires_at > clock_timestamp()
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
