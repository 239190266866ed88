-- An instance takes several hits of a key at once and hands them out itself, so that
-- most requests need no round trip to count. `hits` now counts the hits taken, used or
-- not, so that the instances together never let more through than the limit. `taken`
-- is how many the last take got, which its statement returns.
ALTER TABLE rate_limit_hits ADD COLUMN taken integer NOT NULL DEFAULT 0;

-- The size of a take, given the hits already taken in the window: half of what is left,
-- at least one and at most `max_hits`, and none at the limit. PostgreSQL inlines it.
CREATE FUNCTION rate_limit_take_size(taken_so_far integer, hit_limit integer, max_hits integer)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT greatest(0, least(max_hits, greatest(1, (hit_limit - taken_so_far) / 2), hit_limit - taken_so_far)) $$;
