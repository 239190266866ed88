-- A chaining pass now computes each event's place and hash itself and inserts a step of
-- up to 10,000 events with one statement. Until now a row trigger looked up the head of
-- the chain and called event_hash() for each event, and the pass took 80 µs per event;
-- now it takes 53 µs (docs/benchmarks.md). The trigger that replaces it runs once per
-- statement and rejects events that do not continue the chain: a wrong hash, a gap, or
-- a link to an event other than the one before. The service adds events only through
-- chain_queued_events() and append_event(), which take the chain's lock.
--
-- event_hash() reads the server's encoding through convert_to(), so it is stable, not
-- immutable. Marked stable, PostgreSQL can inline it where it is called.
ALTER FUNCTION event_hash(bytea, bigint, timestamptz, text, uuid, text, jsonb) STABLE;

DROP TRIGGER events_chain ON events;
DROP FUNCTION events_chain();

CREATE FUNCTION events_check_chain() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    broken bigint;
BEGIN
    SELECT seq INTO broken
    FROM (
        SELECT n.seq, n.prev_hash, n.hash, n.at, n.actor, n.request_id, n.kind, n.detail,
               lag(n.seq) OVER w AS before_seq, lag(n.hash) OVER w AS before_hash, row_number() OVER w AS place
        FROM new_events n
        WINDOW w AS (ORDER BY n.seq)
    ) n
    -- Each event's hash covers its content and the hash before it.
    WHERE n.hash IS DISTINCT FROM event_hash(n.prev_hash, n.seq, n.at, n.actor, n.request_id, n.kind, n.detail)
       -- Within the statement, each event follows the one before without a gap.
       OR (n.place > 1 AND (n.seq <> n.before_seq + 1 OR n.prev_hash IS DISTINCT FROM n.before_hash))
       -- The first continues the chain's head, or starts the chain.
       OR (n.place = 1 AND n.seq = 1 AND n.prev_hash IS NOT NULL)
       -- A missing event before it gives NULL, which counts as broken. A scalar subquery
       -- keeps to the index, where NOT EXISTS was planned as a hash of every event.
       OR (n.place = 1 AND n.seq <> 1
           AND coalesce(n.prev_hash <> (SELECT e.hash FROM events e WHERE e.seq = n.seq - 1), true))
    ORDER BY n.seq
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the event at place % does not continue the event chain', broken
            USING ERRCODE = 'check_violation',
                  HINT = 'Each event needs the next place, the hash of the event before it and its own hash; add events through event_queue and chain_queued_events().';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_check_chain AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_check_chain();

CREATE OR REPLACE FUNCTION chain_queued_events() RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    after_id bigint;
    final_id bigint;
    moved bigint := 0;
    step bigint;
    head_seq bigint;
    head_hash bytea;
    event record;
    ats timestamptz[];
    actors text[];
    request_ids uuid[];
    kinds text[];
    details jsonb[];
    seqs bigint[];
    prev_hashes bytea[];
    hashes bytea[];
BEGIN
    PERFORM pg_advisory_xact_lock(7078406371);
    SELECT last_id INTO after_id FROM event_queue_cursor;

    -- A session lock outlives an error, so release it on every way out.
    IF pg_try_advisory_lock(7078406372) THEN
        BEGIN
            SELECT max(id) INTO final_id FROM event_queue WHERE id > after_id;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            PERFORM pg_advisory_unlock(7078406372);
            RAISE;
        END;
        PERFORM pg_advisory_unlock(7078406372);
    END IF;

    -- Each step takes the oldest queued events, links each to the one before and inserts
    -- them with one statement.
    SELECT seq, hash INTO head_seq, head_hash FROM events ORDER BY seq DESC LIMIT 1;
    head_seq := coalesce(head_seq, 0);
    LOOP
        ats := '{}'; actors := '{}'; request_ids := '{}'; kinds := '{}'; details := '{}';
        seqs := '{}'; prev_hashes := '{}'; hashes := '{}';
        step := 0;
        FOR event IN
            WITH queued AS (
                DELETE FROM event_queue
                WHERE id IN (SELECT id FROM event_queue WHERE id > after_id ORDER BY id LIMIT 10000)
                RETURNING id, at, actor, request_id, kind, detail
            )
            SELECT * FROM queued ORDER BY id
        LOOP
            step := step + 1;
            head_seq := head_seq + 1;
            ats := array_append(ats, event.at);
            actors := array_append(actors, event.actor);
            request_ids := array_append(request_ids, event.request_id);
            kinds := array_append(kinds, event.kind);
            details := array_append(details, event.detail);
            seqs := array_append(seqs, head_seq);
            prev_hashes := array_append(prev_hashes, head_hash);
            head_hash := event_hash(head_hash, head_seq, event.at, event.actor, event.request_id, event.kind, event.detail);
            hashes := array_append(hashes, head_hash);
        END LOOP;
        IF step > 0 THEN
            INSERT INTO events (at, actor, request_id, kind, detail, seq, prev_hash, hash)
            SELECT at, actor, request_id, kind, detail, seq, prev_hash, hash
            FROM unnest(ats, actors, request_ids, kinds, details, seqs, prev_hashes, hashes)
                AS e (at, actor, request_id, kind, detail, seq, prev_hash, hash)
            ORDER BY seq;
        END IF;
        moved := moved + step;
        EXIT WHEN step < 10000;
    END LOOP;

    IF final_id IS NOT NULL THEN
        UPDATE event_queue_cursor SET last_id = final_id;
    END IF;
    RETURN moved;
END
$$;
