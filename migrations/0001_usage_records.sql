-- usage-tracker schema: the records the admin UI reads, and the checkpoint state that makes
-- results exactly-once across crashes (window state, dedup keys, bill lines and input offsets
-- are written in the same transaction as the records they produced).

CREATE TABLE usage_records (
    cluster_id                      text        NOT NULL,
    namespace                       text        NOT NULL,
    window_start                    timestamptz NOT NULL,
    window_end                      timestamptz NOT NULL,
    cluster_name                    text,
    status                          text        NOT NULL CHECK (status IN ('open', 'closed')),
    revision                        bigint      NOT NULL CHECK (revision >= 1),
    cpu_used_core_seconds           double precision NOT NULL DEFAULT 0,
    cpu_requested_core_seconds      double precision NOT NULL DEFAULT 0,
    cpu_limit_core_seconds          double precision NOT NULL DEFAULT 0,
    cpu_allocated_core_seconds      double precision NOT NULL DEFAULT 0,
    cpu_unused_core_seconds         double precision NOT NULL DEFAULT 0,
    memory_used_byte_seconds        double precision NOT NULL DEFAULT 0,
    memory_requested_byte_seconds   double precision NOT NULL DEFAULT 0,
    memory_limit_byte_seconds       double precision NOT NULL DEFAULT 0,
    memory_allocated_byte_seconds   double precision NOT NULL DEFAULT 0,
    memory_unused_byte_seconds      double precision NOT NULL DEFAULT 0,
    storage_used_byte_seconds       double precision NOT NULL DEFAULT 0,
    network_rx_bytes                double precision NOT NULL DEFAULT 0,
    network_tx_bytes                double precision NOT NULL DEFAULT 0,
    gpu_used_gpu_seconds            double precision NOT NULL DEFAULT 0,
    resources                       jsonb       NOT NULL,
    costs                           jsonb       NOT NULL,
    cost_total                      numeric(24, 6) NOT NULL,
    currency                        text,
    cost_status                     text        NOT NULL CHECK (cost_status IN ('unpriced', 'estimated', 'final')),
    updated_at                      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_id, namespace, window_start)
);
CREATE INDEX usage_records_window ON usage_records (window_start);

-- Checkpoint state is sharded by slot = input partition number (usage and cost topics are
-- co-partitioned by cluster id). An instance owns a slot while its consumer-group assignment
-- holds that partition; `epoch` fences a previous owner's late commits.
CREATE TABLE tracker_slots (
    slot        integer PRIMARY KEY,
    epoch       bigint  NOT NULL,
    owner       text    NOT NULL,
    watermark   bigint
);

CREATE TABLE tracker_offsets (
    topic           text    NOT NULL,
    partition       integer NOT NULL,
    next_offset     bigint  NOT NULL,
    max_event_time  bigint,
    PRIMARY KEY (topic, partition)
);

CREATE TABLE tracker_windows (
    slot            integer NOT NULL,
    cluster_id      text    NOT NULL,
    window_start    bigint  NOT NULL,
    state           jsonb   NOT NULL,
    PRIMARY KEY (slot, cluster_id, window_start)
);

CREATE TABLE tracker_seen_events (
    slot            integer NOT NULL,
    window_start    bigint  NOT NULL,
    dedup_key       bytea   NOT NULL,
    PRIMARY KEY (slot, window_start, dedup_key)
);

CREATE TABLE tracker_cost_lines (
    slot            integer NOT NULL,
    source          text    NOT NULL,
    id              text    NOT NULL,
    revision        bigint  NOT NULL,
    cluster_id      text    NOT NULL,
    namespace       text,
    category        text    NOT NULL,
    status          text    NOT NULL,
    currency        text    NOT NULL,
    period_start    bigint  NOT NULL,
    period_end      bigint  NOT NULL,
    amount_micros   bigint  NOT NULL,
    PRIMARY KEY (slot, source, id)
);
