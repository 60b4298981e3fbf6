-- Groups of workloads and shared platform cost (UsageRecord schema version 2; issue #11).
--
-- * `usage_records` also holds group records: the usage and cost of one group of a namespace's
--   workloads, `group_by` = 'label:<key>' or 'workload', `group_value` = the label value
--   ('__unlabelled__' without the label) or '<kind>/<name>'. A namespace record has
--   group_by = group_value = '' (not NULL, so that both can be part of the primary key). Over a
--   namespace window's group records of one group_by, usage and cost sum exactly to its
--   namespace record, so every aggregate must pick one level: the views below read namespace
--   records (`group_by = ''`) or the records of one group_by, never both.
-- * Cost sharing: `own_cost` is the record's cost of its own usage before sharing (NULL in rows
--   written before this migration, when there was no sharing: own cost = cost_total there),
--   `shared_cost` the cost received from shared platform namespaces, `idle_cost` the idle cost
--   received, `shared` marks a shared namespace (its cost moved to the receivers). `cost_total`
--   stays what the record is charged after sharing, so summed over namespace records it is the
--   bills in scope, each exactly once.
--
-- Forward only: rows already stored are namespace records; nothing is rewritten.

ALTER TABLE usage_records
    ADD COLUMN group_by    text           NOT NULL DEFAULT '',
    ADD COLUMN group_value text           NOT NULL DEFAULT '',
    ADD COLUMN own_cost    numeric(24, 6),
    ADD COLUMN shared_cost numeric(24, 6) NOT NULL DEFAULT 0,
    ADD COLUMN idle_cost   numeric(24, 6) NOT NULL DEFAULT 0,
    ADD COLUMN shared      boolean        NOT NULL DEFAULT false,
    -- A namespace record has no group value; a group's value may be '' (an empty label value).
    ADD CONSTRAINT usage_records_group CHECK (group_by <> '' OR group_value = ''),
    DROP CONSTRAINT usage_records_pkey,
    ADD PRIMARY KEY (cluster_id, namespace, window_start, group_by, group_value);

-- The views of 0002 keep their meaning (namespace figures): they read namespace records only.
-- New columns are appended (CREATE OR REPLACE VIEW keeps existing columns as they are):
-- * per namespace: `own_cost` (before sharing; cost_total where not recorded), `shared_cost`
--   and `idle_cost` (received), `shared` (a shared namespace in any window of the row);
-- * per cluster: `shared_cost` (platform cost moved to receivers) and `shared_idle_cost` (idle
--   cost moved to namespaces; `idle_cost` stays the cost left on `__idle__`).

CREATE OR REPLACE VIEW usage_daily AS
SELECT
    (r.window_start AT TIME ZONE 'UTC')::date AS day,
    r.cluster_id,
    (array_agg(r.cluster_name ORDER BY r.window_start DESC))[1] AS cluster_name,
    r.namespace,
    coalesce(r.currency, c.only_currency) AS currency,
    count(*) AS windows,
    count(*) FILTER (WHERE r.status = 'open') AS open_windows,
    count(*) FILTER (WHERE r.cost_status = 'final') AS final_windows,
    count(*) FILTER (WHERE r.cost_status = 'estimated') AS estimated_windows,
    count(*) FILTER (WHERE r.cost_status = 'unpriced') AS unpriced_windows,
    sum(r.cpu_used_core_seconds) / 3600 AS cpu_used_core_hours,
    sum(r.cpu_requested_core_seconds) / 3600 AS cpu_requested_core_hours,
    sum(r.cpu_allocated_core_seconds) / 3600 AS cpu_allocated_core_hours,
    sum(r.memory_used_byte_seconds) / 3600 / 1073741824 AS memory_used_gib_hours,
    sum(r.memory_requested_byte_seconds) / 3600 / 1073741824 AS memory_requested_gib_hours,
    sum(r.memory_allocated_byte_seconds) / 3600 / 1073741824 AS memory_allocated_gib_hours,
    sum(r.storage_used_byte_seconds) / 3600 / 1073741824 AS storage_used_gib_hours,
    sum(r.network_rx_bytes) AS network_rx_bytes,
    sum(r.network_tx_bytes) AS network_tx_bytes,
    sum(r.gpu_used_gpu_seconds) / 3600 AS gpu_used_gpu_hours,
    sum(r.cost_total) AS cost,
    CASE WHEN bool_or(r.cost_status = 'unpriced') THEN 'unpriced'
         WHEN bool_or(r.cost_status = 'estimated') THEN 'estimated'
         ELSE 'final' END AS cost_status,
    max(r.updated_at) AS updated_at,
    sum(coalesce(r.own_cost, r.cost_total)) AS own_cost,
    sum(r.shared_cost) AS shared_cost,
    sum(r.idle_cost) AS idle_cost,
    bool_or(r.shared) AS shared
FROM usage_records r
LEFT JOIN (
    SELECT (window_start AT TIME ZONE 'UTC')::date AS day, cluster_id,
           CASE WHEN min(currency) = max(currency) THEN min(currency) END AS only_currency
    FROM usage_records
    WHERE group_by = ''
    GROUP BY 1, 2
) c ON c.day = (r.window_start AT TIME ZONE 'UTC')::date AND c.cluster_id = r.cluster_id
WHERE r.group_by = ''
GROUP BY 1, r.cluster_id, r.namespace, 5;

CREATE OR REPLACE VIEW usage_monthly AS
SELECT
    date_trunc('month', r.window_start AT TIME ZONE 'UTC')::date AS month,
    r.cluster_id,
    (array_agg(r.cluster_name ORDER BY r.window_start DESC))[1] AS cluster_name,
    r.namespace,
    coalesce(r.currency, c.only_currency) AS currency,
    count(*) AS windows,
    count(*) FILTER (WHERE r.status = 'open') AS open_windows,
    count(*) FILTER (WHERE r.cost_status = 'final') AS final_windows,
    count(*) FILTER (WHERE r.cost_status = 'estimated') AS estimated_windows,
    count(*) FILTER (WHERE r.cost_status = 'unpriced') AS unpriced_windows,
    sum(r.cpu_used_core_seconds) / 3600 AS cpu_used_core_hours,
    sum(r.cpu_requested_core_seconds) / 3600 AS cpu_requested_core_hours,
    sum(r.cpu_allocated_core_seconds) / 3600 AS cpu_allocated_core_hours,
    sum(r.memory_used_byte_seconds) / 3600 / 1073741824 AS memory_used_gib_hours,
    sum(r.memory_requested_byte_seconds) / 3600 / 1073741824 AS memory_requested_gib_hours,
    sum(r.memory_allocated_byte_seconds) / 3600 / 1073741824 AS memory_allocated_gib_hours,
    sum(r.storage_used_byte_seconds) / 3600 / 1073741824 AS storage_used_gib_hours,
    sum(r.network_rx_bytes) AS network_rx_bytes,
    sum(r.network_tx_bytes) AS network_tx_bytes,
    sum(r.gpu_used_gpu_seconds) / 3600 AS gpu_used_gpu_hours,
    sum(r.cost_total) AS cost,
    CASE WHEN bool_or(r.cost_status = 'unpriced') THEN 'unpriced'
         WHEN bool_or(r.cost_status = 'estimated') THEN 'estimated'
         ELSE 'final' END AS cost_status,
    max(r.updated_at) AS updated_at,
    sum(coalesce(r.own_cost, r.cost_total)) AS own_cost,
    sum(r.shared_cost) AS shared_cost,
    sum(r.idle_cost) AS idle_cost,
    bool_or(r.shared) AS shared
FROM usage_records r
LEFT JOIN (
    SELECT date_trunc('month', window_start AT TIME ZONE 'UTC')::date AS month, cluster_id,
           CASE WHEN min(currency) = max(currency) THEN min(currency) END AS only_currency
    FROM usage_records
    WHERE group_by = ''
    GROUP BY 1, 2
) c ON c.month = date_trunc('month', r.window_start AT TIME ZONE 'UTC')::date
   AND c.cluster_id = r.cluster_id
WHERE r.group_by = ''
GROUP BY 1, r.cluster_id, r.namespace, 5;

CREATE OR REPLACE VIEW usage_daily_cluster AS
SELECT
    (r.window_start AT TIME ZONE 'UTC')::date AS day,
    r.cluster_id,
    (array_agg(r.cluster_name ORDER BY r.window_start DESC))[1] AS cluster_name,
    coalesce(r.currency, c.only_currency) AS currency,
    count(DISTINCT r.window_start) AS windows,
    count(DISTINCT r.window_start) FILTER (WHERE r.status = 'open') AS open_windows,
    count(DISTINCT r.window_start) FILTER (WHERE r.cost_status = 'final') AS final_windows,
    count(DISTINCT r.window_start) FILTER (WHERE r.cost_status = 'estimated') AS estimated_windows,
    count(DISTINCT r.window_start) FILTER (WHERE r.cost_status = 'unpriced') AS unpriced_windows,
    count(DISTINCT r.namespace) FILTER (WHERE r.namespace NOT IN ('__idle__', '__unallocated__'))
        AS namespaces,
    sum(r.cpu_used_core_seconds) / 3600 AS cpu_used_core_hours,
    sum(r.cpu_requested_core_seconds) / 3600 AS cpu_requested_core_hours,
    sum(r.cpu_allocated_core_seconds) / 3600 AS cpu_allocated_core_hours,
    sum(r.memory_used_byte_seconds) / 3600 / 1073741824 AS memory_used_gib_hours,
    sum(r.memory_requested_byte_seconds) / 3600 / 1073741824 AS memory_requested_gib_hours,
    sum(r.memory_allocated_byte_seconds) / 3600 / 1073741824 AS memory_allocated_gib_hours,
    sum(r.storage_used_byte_seconds) / 3600 / 1073741824 AS storage_used_gib_hours,
    sum(r.network_rx_bytes) AS network_rx_bytes,
    sum(r.network_tx_bytes) AS network_tx_bytes,
    sum(r.gpu_used_gpu_seconds) / 3600 AS gpu_used_gpu_hours,
    sum(r.cost_total) AS cost,
    coalesce(sum(r.cost_total) FILTER (WHERE r.namespace = '__idle__'), 0::numeric(24, 6))
        AS idle_cost,
    coalesce(sum(r.cost_total) FILTER (WHERE r.namespace = '__unallocated__'), 0::numeric(24, 6))
        AS unallocated_cost,
    CASE WHEN bool_or(r.cost_status = 'unpriced') THEN 'unpriced'
         WHEN bool_or(r.cost_status = 'estimated') THEN 'estimated'
         ELSE 'final' END AS cost_status,
    max(r.updated_at) AS updated_at,
    sum(r.shared_cost) AS shared_cost,
    sum(r.idle_cost) AS shared_idle_cost
FROM usage_records r
LEFT JOIN (
    SELECT (window_start AT TIME ZONE 'UTC')::date AS day, cluster_id,
           CASE WHEN min(currency) = max(currency) THEN min(currency) END AS only_currency
    FROM usage_records
    WHERE group_by = ''
    GROUP BY 1, 2
) c ON c.day = (r.window_start AT TIME ZONE 'UTC')::date AND c.cluster_id = r.cluster_id
WHERE r.group_by = ''
GROUP BY 1, r.cluster_id, 4;

CREATE OR REPLACE VIEW usage_monthly_cluster AS
SELECT
    date_trunc('month', r.window_start AT TIME ZONE 'UTC')::date AS month,
    r.cluster_id,
    (array_agg(r.cluster_name ORDER BY r.window_start DESC))[1] AS cluster_name,
    coalesce(r.currency, c.only_currency) AS currency,
    count(DISTINCT r.window_start) AS windows,
    count(DISTINCT r.window_start) FILTER (WHERE r.status = 'open') AS open_windows,
    count(DISTINCT r.window_start) FILTER (WHERE r.cost_status = 'final') AS final_windows,
    count(DISTINCT r.window_start) FILTER (WHERE r.cost_status = 'estimated') AS estimated_windows,
    count(DISTINCT r.window_start) FILTER (WHERE r.cost_status = 'unpriced') AS unpriced_windows,
    count(DISTINCT r.namespace) FILTER (WHERE r.namespace NOT IN ('__idle__', '__unallocated__'))
        AS namespaces,
    sum(r.cpu_used_core_seconds) / 3600 AS cpu_used_core_hours,
    sum(r.cpu_requested_core_seconds) / 3600 AS cpu_requested_core_hours,
    sum(r.cpu_allocated_core_seconds) / 3600 AS cpu_allocated_core_hours,
    sum(r.memory_used_byte_seconds) / 3600 / 1073741824 AS memory_used_gib_hours,
    sum(r.memory_requested_byte_seconds) / 3600 / 1073741824 AS memory_requested_gib_hours,
    sum(r.memory_allocated_byte_seconds) / 3600 / 1073741824 AS memory_allocated_gib_hours,
    sum(r.storage_used_byte_seconds) / 3600 / 1073741824 AS storage_used_gib_hours,
    sum(r.network_rx_bytes) AS network_rx_bytes,
    sum(r.network_tx_bytes) AS network_tx_bytes,
    sum(r.gpu_used_gpu_seconds) / 3600 AS gpu_used_gpu_hours,
    sum(r.cost_total) AS cost,
    coalesce(sum(r.cost_total) FILTER (WHERE r.namespace = '__idle__'), 0::numeric(24, 6))
        AS idle_cost,
    coalesce(sum(r.cost_total) FILTER (WHERE r.namespace = '__unallocated__'), 0::numeric(24, 6))
        AS unallocated_cost,
    CASE WHEN bool_or(r.cost_status = 'unpriced') THEN 'unpriced'
         WHEN bool_or(r.cost_status = 'estimated') THEN 'estimated'
         ELSE 'final' END AS cost_status,
    max(r.updated_at) AS updated_at,
    sum(r.shared_cost) AS shared_cost,
    sum(r.idle_cost) AS shared_idle_cost
FROM usage_records r
LEFT JOIN (
    SELECT date_trunc('month', window_start AT TIME ZONE 'UTC')::date AS month, cluster_id,
           CASE WHEN min(currency) = max(currency) THEN min(currency) END AS only_currency
    FROM usage_records
    WHERE group_by = ''
    GROUP BY 1, 2
) c ON c.month = date_trunc('month', r.window_start AT TIME ZONE 'UTC')::date
   AND c.cluster_id = r.cluster_id
WHERE r.group_by = ''
GROUP BY 1, r.cluster_id, 4;

CREATE OR REPLACE VIEW unused_capacity_daily AS
SELECT
    (window_start AT TIME ZONE 'UTC')::date AS day,
    cluster_id,
    (array_agg(cluster_name ORDER BY window_start DESC))[1] AS cluster_name,
    namespace,
    count(*) AS windows,
    count(*) FILTER (WHERE status = 'open') AS open_windows,
    sum(cpu_requested_core_seconds) / 3600 AS cpu_requested_core_hours,
    sum(cpu_used_core_seconds) / 3600 AS cpu_used_core_hours,
    sum(cpu_unused_core_seconds) / 3600 AS cpu_unused_core_hours,
    sum(cpu_unused_core_seconds) / nullif(sum(cpu_requested_core_seconds), 0) AS cpu_unused_share,
    sum(memory_requested_byte_seconds) / 3600 / 1073741824 AS memory_requested_gib_hours,
    sum(memory_used_byte_seconds) / 3600 / 1073741824 AS memory_used_gib_hours,
    sum(memory_unused_byte_seconds) / 3600 / 1073741824 AS memory_unused_gib_hours,
    sum(memory_unused_byte_seconds) / nullif(sum(memory_requested_byte_seconds), 0)
        AS memory_unused_share,
    max(updated_at) AS updated_at
FROM usage_records
WHERE group_by = ''
GROUP BY 1, cluster_id, namespace;

-- Groups: one row per (period, cluster, namespace, group_by, group_value, currency), from the
-- group records only. Columns as in usage_daily / usage_monthly, plus group_by and group_value
-- after namespace. Filter by group_by (and usually namespace): over one group_by, a namespace's
-- groups sum to its usage_daily row for the windows that have group records. The currency of an
-- unpriced window is chosen as in usage_daily (from the cluster's namespace records).
CREATE VIEW usage_groups_daily AS
SELECT
    (r.window_start AT TIME ZONE 'UTC')::date AS day,
    r.cluster_id,
    (array_agg(r.cluster_name ORDER BY r.window_start DESC))[1] AS cluster_name,
    r.namespace,
    r.group_by,
    r.group_value,
    coalesce(r.currency, c.only_currency) AS currency,
    count(*) AS windows,
    count(*) FILTER (WHERE r.status = 'open') AS open_windows,
    count(*) FILTER (WHERE r.cost_status = 'final') AS final_windows,
    count(*) FILTER (WHERE r.cost_status = 'estimated') AS estimated_windows,
    count(*) FILTER (WHERE r.cost_status = 'unpriced') AS unpriced_windows,
    sum(r.cpu_used_core_seconds) / 3600 AS cpu_used_core_hours,
    sum(r.cpu_requested_core_seconds) / 3600 AS cpu_requested_core_hours,
    sum(r.cpu_allocated_core_seconds) / 3600 AS cpu_allocated_core_hours,
    sum(r.memory_used_byte_seconds) / 3600 / 1073741824 AS memory_used_gib_hours,
    sum(r.memory_requested_byte_seconds) / 3600 / 1073741824 AS memory_requested_gib_hours,
    sum(r.memory_allocated_byte_seconds) / 3600 / 1073741824 AS memory_allocated_gib_hours,
    sum(r.storage_used_byte_seconds) / 3600 / 1073741824 AS storage_used_gib_hours,
    sum(r.network_rx_bytes) AS network_rx_bytes,
    sum(r.network_tx_bytes) AS network_tx_bytes,
    sum(r.gpu_used_gpu_seconds) / 3600 AS gpu_used_gpu_hours,
    sum(r.cost_total) AS cost,
    CASE WHEN bool_or(r.cost_status = 'unpriced') THEN 'unpriced'
         WHEN bool_or(r.cost_status = 'estimated') THEN 'estimated'
         ELSE 'final' END AS cost_status,
    max(r.updated_at) AS updated_at,
    sum(coalesce(r.own_cost, r.cost_total)) AS own_cost,
    sum(r.shared_cost) AS shared_cost,
    sum(r.idle_cost) AS idle_cost,
    bool_or(r.shared) AS shared
FROM usage_records r
LEFT JOIN (
    SELECT (window_start AT TIME ZONE 'UTC')::date AS day, cluster_id,
           CASE WHEN min(currency) = max(currency) THEN min(currency) END AS only_currency
    FROM usage_records
    WHERE group_by = ''
    GROUP BY 1, 2
) c ON c.day = (r.window_start AT TIME ZONE 'UTC')::date AND c.cluster_id = r.cluster_id
WHERE r.group_by <> ''
GROUP BY 1, r.cluster_id, r.namespace, r.group_by, r.group_value, 7;

CREATE VIEW usage_groups_monthly AS
SELECT
    date_trunc('month', r.window_start AT TIME ZONE 'UTC')::date AS month,
    r.cluster_id,
    (array_agg(r.cluster_name ORDER BY r.window_start DESC))[1] AS cluster_name,
    r.namespace,
    r.group_by,
    r.group_value,
    coalesce(r.currency, c.only_currency) AS currency,
    count(*) AS windows,
    count(*) FILTER (WHERE r.status = 'open') AS open_windows,
    count(*) FILTER (WHERE r.cost_status = 'final') AS final_windows,
    count(*) FILTER (WHERE r.cost_status = 'estimated') AS estimated_windows,
    count(*) FILTER (WHERE r.cost_status = 'unpriced') AS unpriced_windows,
    sum(r.cpu_used_core_seconds) / 3600 AS cpu_used_core_hours,
    sum(r.cpu_requested_core_seconds) / 3600 AS cpu_requested_core_hours,
    sum(r.cpu_allocated_core_seconds) / 3600 AS cpu_allocated_core_hours,
    sum(r.memory_used_byte_seconds) / 3600 / 1073741824 AS memory_used_gib_hours,
    sum(r.memory_requested_byte_seconds) / 3600 / 1073741824 AS memory_requested_gib_hours,
    sum(r.memory_allocated_byte_seconds) / 3600 / 1073741824 AS memory_allocated_gib_hours,
    sum(r.storage_used_byte_seconds) / 3600 / 1073741824 AS storage_used_gib_hours,
    sum(r.network_rx_bytes) AS network_rx_bytes,
    sum(r.network_tx_bytes) AS network_tx_bytes,
    sum(r.gpu_used_gpu_seconds) / 3600 AS gpu_used_gpu_hours,
    sum(r.cost_total) AS cost,
    CASE WHEN bool_or(r.cost_status = 'unpriced') THEN 'unpriced'
         WHEN bool_or(r.cost_status = 'estimated') THEN 'estimated'
         ELSE 'final' END AS cost_status,
    max(r.updated_at) AS updated_at,
    sum(coalesce(r.own_cost, r.cost_total)) AS own_cost,
    sum(r.shared_cost) AS shared_cost,
    sum(r.idle_cost) AS idle_cost,
    bool_or(r.shared) AS shared
FROM usage_records r
LEFT JOIN (
    SELECT date_trunc('month', window_start AT TIME ZONE 'UTC')::date AS month, cluster_id,
           CASE WHEN min(currency) = max(currency) THEN min(currency) END AS only_currency
    FROM usage_records
    WHERE group_by = ''
    GROUP BY 1, 2
) c ON c.month = date_trunc('month', r.window_start AT TIME ZONE 'UTC')::date
   AND c.cluster_id = r.cluster_id
WHERE r.group_by <> ''
GROUP BY 1, r.cluster_id, r.namespace, r.group_by, r.group_value, 7;
