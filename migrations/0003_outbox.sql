-- Transactional outbox. What a checkpoint publishes to Kafka (usage records, tombstones, dead
-- letters) is staged here in the checkpoint's own transaction and published only after it
-- commits; after a crash the slot's next owner publishes what is left, byte for byte. So a
-- (key, revision) on usage.records.v1 always carries one content, and an instance that lost its
-- slot (its commit is fenced) publishes nothing new.
CREATE TABLE tracker_outbox (
    seq      bigserial PRIMARY KEY,
    slot     integer   NOT NULL,
    topic    text      NOT NULL,
    key      bytea,
    payload  bytea,
    headers  jsonb     NOT NULL
);
CREATE INDEX tracker_outbox_slot ON tracker_outbox (slot, seq);
