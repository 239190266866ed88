-- Tamper evidence for the event log. Each event carries the SHA-256 of its content and of
-- the previous event's hash, so the events form one chain in `seq` order; `ozo-signer
-- audit verify` recomputes it. Events may only be inserted: a trigger rejects updates,
-- deletes and truncation. Deployments also grant the service's role only SELECT and
-- INSERT on this table (deploy/database-roles.md).
ALTER TABLE events
    ADD COLUMN seq bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN hash bytea;

-- The hash of one event: SHA-256 over the previous hash followed by the UTF-8 text of its
-- fields, one per line: seq, time in Unix microseconds, actor, request id (or nothing),
-- kind, and the detail as PostgreSQL prints jsonb. ozo-domain's audit module computes the
-- same; change both together.
CREATE FUNCTION event_hash(prev bytea, seq bigint, at timestamptz, actor text, request_id uuid, kind text, detail jsonb)
RETURNS bytea
LANGUAGE sql IMMUTABLE
AS $$
    SELECT sha256(coalesce(prev, '\x'::bytea) || convert_to(
        seq::text || E'\n' ||
        ((extract(epoch FROM at) * 1000000)::bigint)::text || E'\n' ||
        actor || E'\n' ||
        coalesce(request_id::text, '') || E'\n' ||
        kind || E'\n' ||
        detail::text,
        'UTF8'))
$$;

-- Chain the events recorded before this migration, in the order they were written.
DO $$
DECLARE
    event record;
    previous bytea := NULL;
    position bigint := 0;
BEGIN
    FOR event IN SELECT * FROM events ORDER BY id LOOP
        position := position + 1;
        UPDATE events
        SET seq = position,
            prev_hash = previous,
            hash = event_hash(previous, position, event.at, event.actor, event.request_id, event.kind, event.detail)
        WHERE id = event.id
        RETURNING hash INTO previous;
    END LOOP;
END
$$;

ALTER TABLE events
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL,
    ADD CONSTRAINT events_hash_length CHECK (length(hash) = 32);
CREATE UNIQUE INDEX events_seq ON events (seq);

-- Each new event takes the next place in the chain. The advisory lock, held until the
-- inserting transaction ends, makes appends take turns, so every event links to the one
-- committed just before it.
CREATE FUNCTION events_chain() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    head_seq bigint;
    head_hash bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(7078406371);
    SELECT seq, hash INTO head_seq, head_hash FROM events ORDER BY seq DESC LIMIT 1;
    NEW.seq := coalesce(head_seq, 0) + 1;
    NEW.prev_hash := head_hash;
    NEW.hash := event_hash(head_hash, NEW.seq, NEW.at, NEW.actor, NEW.request_id, NEW.kind, NEW.detail);
    RETURN NEW;
END
$$;

CREATE TRIGGER events_chain BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_chain();

CREATE FUNCTION events_append_only() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % is not allowed', TG_OP;
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
