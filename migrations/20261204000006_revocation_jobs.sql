-- Revocation goes through the signing queue like issuance: the operator's decision and a
-- revoke job commit together, and a worker calls the CA until it confirms.
ALTER TABLE signing_jobs
    ADD COLUMN action text NOT NULL DEFAULT 'issue' CHECK (action IN ('issue', 'revoke'));

-- When the CA confirmed the revocation; NULL while the revoke job waits.
ALTER TABLE certificates
    ADD COLUMN ca_revoked_at timestamptz;
