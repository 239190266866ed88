-- The durable record that an approved request must be signed. A worker claims a job
-- with FOR UPDATE SKIP LOCKED and holds the row lock while it calls the CA, so several
-- instances can work the queue without signing a request twice at the same time.
CREATE TABLE signing_jobs (
    request_id  uuid PRIMARY KEY REFERENCES requests (id),
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_after   timestamptz NOT NULL DEFAULT now(),
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX signing_jobs_run_after ON signing_jobs (run_after);
