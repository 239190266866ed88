-- One operator's yes to one request, with the digest of exactly what was approved. A
-- request is approved once the environment's number of approvals, each from another
-- operator, is reached.
CREATE TABLE approvals (
    request_id   uuid NOT NULL REFERENCES requests (id),
    account_id   uuid NOT NULL REFERENCES accounts (id),
    digest       bytea NOT NULL CHECK (length(digest) = 32),
    approved_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, account_id)
);
