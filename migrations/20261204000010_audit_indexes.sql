-- Indexes for the auditors' searches, so that a filtered page stays fast at a million
-- certificates and millions of events (docs/benchmarks.md). pg_trgm is a trusted
-- extension, so the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX requests_organisation_trgm ON requests USING gin (lower(organisation) gin_trgm_ops);
CREATE INDEX requests_created_at_id ON requests (created_at DESC, id DESC);
CREATE INDEX requests_environment_created_at ON requests (environment, created_at DESC, id DESC);
-- Serials are compared without leading zeros, however each CA writes them.
CREATE INDEX certificates_serial_hex ON certificates (ltrim(serial_hex, '0'));
CREATE INDEX events_kind_seq ON events (kind, seq DESC);
CREATE INDEX events_actor_seq ON events (actor, seq DESC);
CREATE INDEX events_kind_actor_seq ON events (kind, actor, seq DESC);
CREATE INDEX events_at ON events (at);
