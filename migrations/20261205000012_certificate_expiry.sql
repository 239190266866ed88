-- For the gauge of certificates that expire soon, which /metrics reads on every scrape.
CREATE INDEX certificates_not_after ON certificates (not_after) WHERE revoked_at IS NULL;
