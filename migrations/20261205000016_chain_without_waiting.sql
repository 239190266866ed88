-- A chaining pass no longer makes writers wait. Until now writers to the queue held the
-- chain's lock in shared mode until they committed, so that a pass could start after the
-- last id it had chained; but each pass then stopped every new upload until the uploads
-- in flight had committed (docs/benchmarks.md). Writers now take no lock. An id below the
-- newest can then still be uncommitted when a pass runs, so a pass takes every queued
-- event it can see, lowest id first, and an event that commits later joins a later pass.
-- The chain still holds every cause before its effect: an approval, say, starts only
-- after the upload it approves has committed, so the upload's event is chained first.
--
-- A pass reads the queue through its primary key, so the deleted rows that wait for a
-- vacuum cost it little.
DROP TABLE event_queue_cursor;

CREATE OR REPLACE FUNCTION chain_queued_events() RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    moved bigint := 0;
    step bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7078406371);
    LOOP
        WITH queued AS (
            DELETE FROM event_queue
            WHERE id IN (SELECT id FROM event_queue ORDER BY id LIMIT 10000)
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
    RETURN moved;
END
$$;
