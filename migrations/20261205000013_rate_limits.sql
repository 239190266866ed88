-- Rate-limit counters shared by every instance: the hits of each key in its current
-- window, which starts at the key's first hit. Keys are stored as SHA-256, because some
-- are invitation codes. The table is unlogged: after a crash PostgreSQL empties it and
-- counting starts again, which costs a client nothing.
CREATE UNLOGGED TABLE rate_limit_hits (
    scope        text NOT NULL,
    key_sha256   bytea NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL,
    PRIMARY KEY (scope, key_sha256)
);

CREATE INDEX rate_limit_hits_window_start ON rate_limit_hits (window_start);
