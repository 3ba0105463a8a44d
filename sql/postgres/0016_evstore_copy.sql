-- Create evstore_copy, the record `evstore copy` keeps in its destination: which log it copies, up to which position, and whether it has finished, so `evstore copy --resume` continues only the same copy.
--
-- One row at most (the first copy_id is 1, and only 1 is allowed): a destination receives one copy.
-- source               where the log came from, its URL without a password (for people).
-- source_position      the copy is the source as of this position: every event up to it, and
--                      the stream heads, subscriptions and snapshots of that moment.
-- source_event_id,     the event at source_position and its chain digest: a resumed copy
-- source_chain_digest  goes on only from a source that still holds exactly that event.
-- finished_at          NULL while the copy runs; set once it has verified the destination.
-- On PostgreSQL the copy writes the log with COPY as the tables' owner, in a session that sets
-- evstore.appending (see 0010), so the application role gains nothing here; it has no
-- privilege on this table either.

CREATE TABLE evstore_copy (
    copy_id              bigint      GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME evstore_copy_copy_id_seq),
    source               text        NOT NULL,
    source_position      bigint      NOT NULL,
    source_event_id      text,
    source_chain_digest  bytea,
    started_at           timestamptz NOT NULL DEFAULT now(),
    finished_at          timestamptz,
    CONSTRAINT pk_evstore_copy PRIMARY KEY (copy_id),
    CONSTRAINT ck_evstore_copy_one_row CHECK (copy_id = 1),
    CONSTRAINT ck_evstore_copy_source_position_not_negative CHECK (source_position >= 0)
);
