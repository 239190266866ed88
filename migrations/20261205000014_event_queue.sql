-- Events wait in a queue before they join the chain, so that uploads do not take turns.
-- Each state change writes its event here in its own transaction; chain_queued_events()
-- then moves every committed queued event into `events` in queue order, under the
-- chain's lock, where the events_chain trigger links each to the one before. Operators'
-- actions chain in their own transaction; uploads leave that to a background step of
-- the service, which runs every few hundred milliseconds, and to every reader of the log,
-- which chains first. The move is one transaction, so a queued event is never lost.
CREATE TABLE event_queue (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    request_id  uuid,
    kind        text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- Chains the queued events that this transaction can see and returns how many. With
-- `wait` false it returns NULL at once when another transaction holds the chain's lock,
-- which then chains them itself.
CREATE FUNCTION chain_queued_events(wait boolean DEFAULT true) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    moved bigint;
BEGIN
    IF wait THEN
        PERFORM pg_advisory_xact_lock(7078406371);
    ELSIF NOT pg_try_advisory_xact_lock(7078406371) THEN
        RETURN NULL;
    END IF;
    WITH queued AS (
        DELETE FROM event_queue RETURNING id, at, actor, request_id, kind, detail
    )
    INSERT INTO events (at, actor, request_id, kind, detail)
        SELECT at, actor, request_id, kind, detail FROM queued ORDER BY id;
    GET DIAGNOSTICS moved = ROW_COUNT;
    RETURN moved;
END
$$;
