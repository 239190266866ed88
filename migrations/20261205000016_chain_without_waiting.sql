-- A chaining pass no longer makes writers wait. Until now writers to the queue held the
-- chain's lock in shared mode until they committed, and each pass held it exclusively,
-- so every pass stopped new uploads until the uploads in flight had committed
-- (docs/benchmarks.md). Writers now hold a lock of their own in shared mode, from before
-- their row gets its id until they commit. A pass only tries that lock exclusively, for
-- the moment it reads the newest queued id, and then releases it. When it gets the lock,
-- no writer is between taking an id and committing, so every id up to that newest one is
-- final, and the cursor moves there once the pass has chained them. When it does not,
-- the pass still chains every committed event after the cursor, and the cursor stays.
--
-- An event that commits after a pass joins the next one. An effect is still never chained
-- before its cause: an approval, say, starts only after the upload it approves has
-- committed, so the upload's event is chained first.
CREATE OR REPLACE FUNCTION chain_queued_events() RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    after_id bigint;
    final_id bigint;
    moved bigint := 0;
    step bigint;
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

    LOOP
        WITH queued AS (
            DELETE FROM event_queue
            WHERE id IN (SELECT id FROM event_queue WHERE id > after_id ORDER BY id LIMIT 10000)
            RETURNING id, at, actor, request_id, kind, detail
        ),
        chained AS (
            INSERT INTO events (at, actor, request_id, kind, detail)
            SELECT at, actor, request_id, kind, detail FROM queued ORDER BY id
        )
        SELECT count(*) INTO step FROM queued;
        moved := moved + step;
        EXIT WHEN step < 10000;
    END LOOP;

    IF final_id IS NOT NULL THEN
        UPDATE event_queue_cursor SET last_id = final_id;
    END IF;
    RETURN moved;
END
$$;
