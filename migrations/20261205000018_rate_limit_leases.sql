-- An instance takes several hits of a key at once and hands them out itself, so that
-- most requests need no round trip to count. `hits` now counts the hits taken, used or
-- not, so that the instances together never let more through than the limit. `taken`
-- is how many the last take got, which its statement returns.
ALTER TABLE rate_limit_hits ADD COLUMN taken integer NOT NULL DEFAULT 0;
