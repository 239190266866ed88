-- Issuance through a remote CA such as Google CAS.
--
-- A request's signing round names its CAS certificate id. A round ends only when the CA
-- returned a certificate that failed our checks; an operator's retry then asks for a new
-- certificate instead of reading the rejected one back.
ALTER TABLE requests
    ADD COLUMN signing_round integer NOT NULL DEFAULT 1 CHECK (signing_round >= 1);

-- How the remote CA names each certificate, so that it can be found and revoked there.
ALTER TABLE certificates
    ADD COLUMN ca_certificate_name text,
    ADD COLUMN ca_certificate_id text,
    ADD COLUMN ca_request_id uuid,
    ADD COLUMN issuing_ca text;

CREATE UNIQUE INDEX certificates_ca_certificate_name ON certificates (ca_certificate_name)
    WHERE ca_certificate_name IS NOT NULL;
