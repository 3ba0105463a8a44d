-- Undo 0014: streams start at version 1 again and evstore_append() forgets 'assigned'; refused while any event has version 0.
--
-- Adding the old CHECKs fails with "is violated by some row" while a stream starts at 0;
-- such events stay (the log is append-only), so this rollback cannot proceed past them.

ALTER TABLE event_store DROP CONSTRAINT ck_event_store_version_not_negative;
ALTER TABLE event_store
    ADD CONSTRAINT ck_event_store_version_positive CHECK (version >= 1);

ALTER TABLE stream DROP CONSTRAINT ck_stream_version_not_negative;
ALTER TABLE stream
    ADD CONSTRAINT ck_stream_version_positive CHECK (version >= 1);

DO $$ BEGIN PERFORM set_config('search_path', format('%I, pg_temp', current_schema()), true); END $$;

CREATE OR REPLACE FUNCTION evstore_append(
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
