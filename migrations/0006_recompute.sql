-- Recomputation of past windows (`usage-tracker recompute --from --to`): a request names a range
-- of window starts; every slot's owner re-drafts its windows in that range at its next
-- checkpoint, under the configuration it runs with now, and records that it did. Re-drafting is
-- idempotent (unchanged content keeps its revision), so a request done twice changes nothing.
CREATE TABLE tracker_recompute_requests (
    id              bigserial   PRIMARY KEY,
    from_ms         bigint      NOT NULL,
    to_ms           bigint      NOT NULL CHECK (to_ms > from_ms),
    requested_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tracker_recompute_done (
    request_id      bigint      NOT NULL REFERENCES tracker_recompute_requests (id) ON DELETE CASCADE,
    slot            integer     NOT NULL,
    windows         bigint      NOT NULL,
    done_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, slot)
);
