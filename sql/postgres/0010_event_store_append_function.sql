-- Create evstore_append(), the only way an application role writes the log: it checks the expected version, takes the append lock, draws positions and keeps the stream head, as one unit.
--
-- The application role gets EXECUTE on this function and SELECT on event_store and stream,
-- but no INSERT or UPDATE on either (see `evstore grant` and the README's "Security" section).
-- The function runs with its owner's rights (SECURITY DEFINER), so whatever the role does:
--   * positions are drawn from the identity sequence while the advisory lock 1702261620
--     ("evst") is held, so readers see them in commit order and never skip one;
--   * versions follow the stream head, which moves in the same statement;
--   * every event has a content digest, and its chain digest links it to the event before
--     it (0009); the chain head is read under the lock, so appends extend one chain. That
--     needs READ COMMITTED, where each statement sees what committed before it: under a
--     snapshot taken earlier the chain head could be stale, so other levels are refused.
-- search_path is pinned to this schema with pg_temp last, so a role cannot shadow the tables
-- with temporary ones; set_config(..., true) below lasts only for this migration's transaction.
--
-- Its arguments: the stream, what the append expects of it ('any', 'no_stream', 'exists' or
-- 'exact' with p_expected_version), one array element per event, and the longest time to wait
-- for the stream row and the append lock (lock_timeout, in milliseconds; 0 waits forever).
-- Returns one row per event; no row at all when the expected version does not hold, in which
-- case nothing was written.

DO $$ BEGIN PERFORM set_config('search_path', format('%I, pg_temp', current_schema()), true); END $$;

CREATE FUNCTION evstore_append(
    p_stream_id        text,
    p_expected_kind    text,
    p_expected_version bigint,
    p_event_ids        text[],
    p_event_types      text[],
    p_payloads         text[],
    p_metadatas        text[],
    p_content_digests  bytea[],
    p_lock_timeout_ms  integer
) RETURNS TABLE ("position" bigint, version bigint, recorded_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
    n        integer := cardinality(p_event_ids);
    chain    bytea;
    chains   bytea[];
    new_head bigint;
    saved    text := current_setting('lock_timeout');
BEGIN
    IF n IS NULL OR n = 0
       OR cardinality(p_event_types) IS DISTINCT FROM n
       OR cardinality(p_payloads) IS DISTINCT FROM n
       OR cardinality(p_metadatas) IS DISTINCT FROM n
       OR cardinality(p_content_digests) IS DISTINCT FROM n
       OR array_position(p_content_digests, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'evstore: evstore_append needs one event id, type, payload, metadata and content digest per event, and at least one event'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'evstore: evstore_append() runs only at READ COMMITTED, not %',
            current_setting('transaction_isolation')
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'The chain head is read under the append lock; an older snapshot would fork the chain.';
    END IF;
    PERFORM set_config('lock_timeout', greatest(p_lock_timeout_ms, 0) || 'ms', true);

    -- The stream row is the per-stream serialisation point: lock it, check it, move it.
    IF p_expected_kind = 'any' THEN
        INSERT INTO stream AS s (stream_id, version) VALUES (p_stream_id, n)
        ON CONFLICT (stream_id) DO UPDATE SET version = s.version + n
        RETURNING s.version INTO new_head;
    ELSIF p_expected_kind = 'no_stream' THEN
        INSERT INTO stream (stream_id, version) VALUES (p_stream_id, n)
        ON CONFLICT (stream_id) DO NOTHING
        RETURNING stream.version INTO new_head;
    ELSIF p_expected_kind = 'exists' THEN
        UPDATE stream SET version = stream.version + n WHERE stream_id = p_stream_id
        RETURNING stream.version INTO new_head;
    ELSIF p_expected_kind = 'exact' THEN
        UPDATE stream SET version = stream.version + n
        WHERE stream_id = p_stream_id AND stream.version = p_expected_version
        RETURNING stream.version INTO new_head;
    ELSE
        RAISE EXCEPTION 'evstore: unknown expected-version kind %', p_expected_kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use any, no_stream, exists or exact.';
    END IF;
    IF new_head IS NULL THEN
        PERFORM set_config('lock_timeout', saved, true);
        RETURN;  -- the expected version does not hold; nothing was written
    END IF;

    -- Positions are drawn only after this lock is held, and it is held until COMMIT.
    PERFORM pg_advisory_xact_lock(1702261620);
    PERFORM set_config('lock_timeout', saved, true);

    -- The chain continues from the newest event that has a chain digest.
    SELECT e.chain_digest INTO chain FROM event_store AS e
    WHERE e.chain_digest IS NOT NULL ORDER BY e.position DESC LIMIT 1;
    chain := coalesce(chain, ''::bytea);
    FOR i IN 1..n LOOP
        chain := sha256(chain || p_content_digests[i] || convert_to(p_event_ids[i], 'UTF8')
                        || int8send(new_head - n + i) || convert_to(p_stream_id, 'UTF8'));
        chains[i] := chain;
    END LOOP;

    -- Lets this INSERT past event_store_check_insert, and only this one.
    PERFORM set_config('evstore.appending', 'on', true);
    RETURN QUERY
    INSERT INTO event_store AS e
        (event_id, stream_id, version, event_type, payload, metadata, content_digest,
         chain_digest)
    SELECT u.event_id, p_stream_id, new_head - n + u.ord, u.event_type,
           u.payload::jsonb, u.metadata::jsonb, u.content_digest, u.chain_digest
    FROM unnest(p_event_ids, p_event_types, p_payloads, p_metadatas, p_content_digests, chains)
         WITH ORDINALITY AS u(event_id, event_type, payload, metadata, content_digest,
                              chain_digest, ord)
    RETURNING e.position, e.version, e.recorded_at;
    PERFORM set_config('evstore.appending', 'off', true);
END;
$$;

-- Functions are executable by PUBLIC by default; only roles granted EXECUTE may append.
REVOKE EXECUTE ON FUNCTION evstore_append(text, text, bigint, text[], text[], text[], text[], bytea[], integer) FROM PUBLIC;

-- Every INSERT into event_store goes through evstore_append(), the table owner's included: a
-- statement trigger (once per INSERT, not per row) refuses the others. The application role has
-- no INSERT privilege anyway; this stops a hand-written INSERT by the owner, which would skip
-- the append lock, the stream head and the digest. SQLite's trigger of the same name checks
-- each row's rules instead, since SQLite has no stored functions. An owner who sets
-- evstore.appending by hand is deliberately going around it, like one who disables triggers;
-- `evstore verify` reports what such an insert breaks.
CREATE FUNCTION event_store_check_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('evstore.appending', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'evstore: events are inserted only by evstore_append()'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Append through evstore, or call evstore_append(); it checks the expected version, takes the append lock and keeps the stream head.';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER event_store_check_insert
    BEFORE INSERT ON event_store
    FOR EACH STATEMENT EXECUTE FUNCTION event_store_check_insert();
