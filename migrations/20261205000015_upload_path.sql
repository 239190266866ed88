-- An upload looks up whether its key was ever sent together with its private key. This
-- index makes that one lookup, however many rejected uploads accumulate.
CREATE INDEX requests_exposed_keys ON requests (spki_sha256)
    WHERE status = 'rejected' AND findings @> '[{"code": "private-key"}]';

-- Every queued event is deleted within a second, and the deleted rows take space until a
-- vacuum removes them. Vacuum the queue after every thousand deleted rows rather than
-- after a fifth of the table.
ALTER TABLE event_queue SET (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0);

-- The statements that insert requests record the organisation themselves, with one index
-- lookup; the statement trigger with its transition table cost an upload a quarter of its
-- time in the database (docs/benchmarks.md).
DROP TRIGGER requests_organisations ON requests;
DROP FUNCTION requests_record_organisations();
