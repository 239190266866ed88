-- An operator's permission for one organisation to upload CSRs for given environments.
CREATE TABLE invitations (
    id                 uuid PRIMARY KEY,
    -- SHA-256 of the invitation code; the code is shown once, at creation.
    code_sha256        bytea NOT NULL UNIQUE CHECK (length(code_sha256) = 32),
    organisation       text NOT NULL CHECK (length(organisation) BETWEEN 1 AND 200),
    contact            text NOT NULL CHECK (length(contact) BETWEEN 1 AND 254),
    environments       text[] NOT NULL CHECK (cardinality(environments) >= 1),
    -- The environments an accepted upload has used this invitation for.
    used_environments  text[] NOT NULL DEFAULT '{}',
    -- The account that created it, by name: "account:NAME", or "cli".
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    withdrawn_at       timestamptz,
    CHECK (used_environments <@ environments)
);

CREATE INDEX invitations_created_at ON invitations (created_at);

ALTER TABLE requests
    ADD COLUMN invitation_id uuid REFERENCES invitations (id),
    -- An upload without an invitation, where the environment allows that; the operator
    -- must check the organisation some other way.
    ADD COLUMN unverified boolean NOT NULL DEFAULT false,
    -- SHA-256 of the secret in the client's status page URL.
    ADD COLUMN status_token_sha256 bytea UNIQUE CHECK (length(status_token_sha256) = 32);

CREATE INDEX requests_invitation_id ON requests (invitation_id);
