-- Events wait in a queue before they join the chain, so that uploads do not take turns.
-- Each state change writes its event here in its own transaction; chain_queued_events()
-- then moves the queued events into `events` in queue order, where the events_chain
-- trigger links each to the one before. Operators' actions chain in their own
-- transaction (append_event); uploads leave that to a background step of the service,
-- which runs every 200 ms, and to every reader of the log, which chains first. A move is
-- one transaction, so a queued event is never lost.
--
-- The chain's advisory lock orders the two sides. Writers to the queue hold it in shared
-- mode, taken before the row gets its id, until they commit; chaining holds it
-- exclusively. While chaining, then, no writer is between taking an id and committing,
-- so every id up to the newest is final and the next pass can start after it. The
-- cursor below keeps that place, so a pass reads only new rows through the index,
-- however many deleted rows still wait for a vacuum. The identity must stay without a
-- per-session cache, so that ids rise in the order they are taken.
CREATE TABLE event_queue (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    request_id  uuid,
    kind        text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE event_queue_cursor (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    -- Every queued event with this id or a lower one is in the chain.
    last_id   bigint NOT NULL
);
INSERT INTO event_queue_cursor (last_id) VALUES (0);

-- Chains every queued event and returns how many. It waits for the writers that hold
-- the chain's lock in shared mode to commit, and new writers wait for it.
CREATE FUNCTION chain_queued_events() RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    after_id bigint;
    moved bigint;
    newest bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7078406371);
    SELECT last_id INTO after_id FROM event_queue_cursor;
    WITH queued AS (
        DELETE FROM event_queue WHERE id > after_id
        RETURNING id, at, actor, request_id, kind, detail
    ),
    chained AS (
        INSERT INTO events (at, actor, request_id, kind, detail)
        SELECT at, actor, request_id, kind, detail FROM queued ORDER BY id
    )
    SELECT count(*), max(id) INTO moved, newest FROM queued;
    IF newest IS NOT NULL THEN
        UPDATE event_queue_cursor SET last_id = newest;
    END IF;
    RETURN moved;
END
$$;

-- Records one event and chains it at once, with every event queued before it, for the
-- actions whose event must be in the chain when their transaction commits.
CREATE FUNCTION append_event(actor text, request_id uuid, kind text, detail jsonb) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7078406371);
    INSERT INTO event_queue (actor, request_id, kind, detail) VALUES (actor, request_id, kind, detail);
    PERFORM chain_queued_events();
END
$$;
