-- Accounts of operators, auditors and admins, their API tokens and web sessions.
CREATE TABLE accounts (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    -- Argon2id in PHC string form; NULL for an account that only uses API tokens.
    password_hash text,
    roles         text[] NOT NULL CHECK (roles <@ ARRAY['operator', 'auditor', 'admin']::text[]),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id),
    -- SHA-256 of the token; the token itself is shown once and never stored.
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

CREATE TABLE sessions (
    -- SHA-256 of the session cookie value.
    id_sha256    bytea PRIMARY KEY CHECK (length(id_sha256) = 32),
    account_id   uuid NOT NULL REFERENCES accounts (id),
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- One uploaded CSR for one environment, with its findings and its state.
CREATE TABLE requests (
    id             uuid PRIMARY KEY,
    environment    text NOT NULL,
    organisation   text NOT NULL CHECK (length(organisation) BETWEEN 1 AND 200),
    contact        text NOT NULL CHECK (length(contact) BETWEEN 1 AND 254),
    status         text NOT NULL CHECK (status IN ('pending', 'approved', 'issued', 'rejected', 'denied', 'failed', 'revoked')),
    -- The CSR as received, in DER. NULL only for a rejected upload that was not a CSR
    -- or that contained a private key, which is never stored.
    csr_der        bytea,
    spki_sha256    bytea CHECK (length(spki_sha256) = 32),
    -- Every finding of validation: [{"code", "severity", "en", "nl"}].
    findings       jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- Why an operator denied the request, or why signing failed.
    status_reason  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (status = 'rejected' OR (csr_der IS NOT NULL AND spki_sha256 IS NOT NULL))
);

-- A public key is on at most one request across all environments. Rejected uploads do
-- not reserve their key, so a client can fix a rejected CSR's subject and keep the key.
CREATE UNIQUE INDEX requests_spki_sha256_key ON requests (spki_sha256) WHERE status <> 'rejected';
CREATE INDEX requests_status_created_at ON requests (status, created_at);

-- What the CA returned for a request, verified before it was stored.
CREATE TABLE certificates (
    id           uuid PRIMARY KEY,
    request_id   uuid NOT NULL UNIQUE REFERENCES requests (id),
    serial_hex   text NOT NULL,
    issuer       text NOT NULL,
    pem          text NOT NULL,
    chain_pem    text NOT NULL,
    not_before   timestamptz NOT NULL,
    not_after    timestamptz NOT NULL,
    sha256       bytea NOT NULL UNIQUE CHECK (length(sha256) = 32),
    spki_sha256  bytea NOT NULL UNIQUE CHECK (length(spki_sha256) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (issuer, serial_hex)
);

-- Append-only record of everything that happened to a request.
CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    -- Who acted: "account:NAME", "client" or "signer".
    actor       text NOT NULL,
    request_id  uuid REFERENCES requests (id),
    kind        text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX events_request_id ON events (request_id, id);
