-- Revocation of a certificate, with its RFC 5280 reason.
ALTER TABLE certificates
    ADD COLUMN revoked_at timestamptz,
    ADD COLUMN revocation_reason text,
    ADD CONSTRAINT certificates_revocation_complete CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL));
