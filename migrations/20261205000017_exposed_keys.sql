-- The public keys that were uploaded together with their private key, which no request
-- may use. An upload looks its key up here by primary key. The partial index on requests
-- that this replaces competed with the index on status: a plan made while the table was
-- small could pick the status index, and then read every rejected request for each
-- upload.
CREATE TABLE exposed_keys (
    spki_sha256 bytea PRIMARY KEY CHECK (length(spki_sha256) = 32)
);

INSERT INTO exposed_keys (spki_sha256)
SELECT DISTINCT spki_sha256 FROM requests
WHERE status = 'rejected' AND spki_sha256 IS NOT NULL AND findings @> '[{"code": "private-key"}]';

CREATE FUNCTION requests_record_exposed_key() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO exposed_keys (spki_sha256) VALUES (NEW.spki_sha256) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

-- Only a rejected upload records findings, and its status never changes afterwards.
CREATE TRIGGER requests_exposed_key AFTER INSERT ON requests
    FOR EACH ROW
    WHEN (NEW.status = 'rejected' AND NEW.spki_sha256 IS NOT NULL AND NEW.findings @> '[{"code": "private-key"}]')
    EXECUTE FUNCTION requests_record_exposed_key();

DROP INDEX requests_exposed_keys;
