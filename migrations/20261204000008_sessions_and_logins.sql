-- A session also ends after a while without use.
ALTER TABLE sessions
    ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();

-- Failed sign-ins, counted per account name and per address to slow and then lock out
-- password guessing across every instance. Old rows are pruned at each failure.
CREATE TABLE login_failures (
    id           bigserial PRIMARY KEY,
    account_name text NOT NULL,
    address      text NOT NULL,
    failed_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX login_failures_account_name ON login_failures (account_name, failed_at);
CREATE INDEX login_failures_address ON login_failures (address, failed_at);
