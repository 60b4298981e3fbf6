-- Read-only views for the admin UI over `usage_records` (docs/ui-integration.md describes every
-- column). Each row of `usage_records` is one (cluster_id, namespace, window_start) at its latest
-- revision; the views only aggregate it.
--
-- Common rules:
-- * Periods are UTC: `day` is the UTC calendar date of `window_start`, `month` the first day of
--   its UTC month. Windows are aligned to UTC and divide 24 h, so a window never spans two days.
-- * Units: core-hours (core_seconds / 3600), GiB-hours (byte_seconds / 3600 / 2^30), bytes for
--   network; cost in currency units as exact `numeric` (sum of `cost_total`).
-- * Money is never summed across currencies: `currency` is a grouping column. An unpriced window
--   has no currency (and cost 0); it is counted under the cluster's currency of the period
--   (`day` or `month`) when the cluster's priced windows of that period all have the same one,
--   otherwise under currency NULL. So in the usual single-currency case there is one row per
--   (period, cluster[, namespace]).
-- * cost_status is the least certain status of the row's windows, ordered
--   unpriced < estimated < final: 'unpriced' if any window is unpriced, else 'estimated' if any
--   is estimated, else 'final'. The *_windows columns give the counts.

-- The UI filters by day or month; these let such filters use an index.
CREATE INDEX usage_records_day_utc ON usage_records (((window_start AT TIME ZONE 'UTC')::date));
CREATE INDEX usage_records_month_utc
    ON usage_records ((date_trunc('month', window_start AT TIME ZONE 'UTC')::date));

CREATE VIEW usage_daily AS
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
    max(r.updated_at) AS updated_at
FROM usage_records r
LEFT JOIN (
    SELECT (window_start AT TIME ZONE 'UTC')::date AS day, cluster_id,
           CASE WHEN min(currency) = max(currency) THEN min(currency) END AS only_currency
    FROM usage_records
    GROUP BY 1, 2
) c ON c.day = (r.window_start AT TIME ZONE 'UTC')::date AND c.cluster_id = r.cluster_id
GROUP BY 1, r.cluster_id, r.namespace, 5;

CREATE VIEW usage_monthly AS
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
    max(r.updated_at) AS updated_at
FROM usage_records r
LEFT JOIN (
    SELECT date_trunc('month', window_start AT TIME ZONE 'UTC')::date AS month, cluster_id,
           CASE WHEN min(currency) = max(currency) THEN min(currency) END AS only_currency
    FROM usage_records
    GROUP BY 1, 2
) c ON c.month = date_trunc('month', r.window_start AT TIME ZONE 'UTC')::date
   AND c.cluster_id = r.cluster_id
GROUP BY 1, r.cluster_id, r.namespace, 5;

-- Per cluster: all namespaces summed, `__idle__` and `__unallocated__` included, so `cost` is the
-- total of the bills (and estimates) in scope and cpu/memory allocated is the capacity reported.
-- `windows` counts cluster windows (distinct window_start), not records.
CREATE VIEW usage_daily_cluster AS
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
    max(r.updated_at) AS updated_at
FROM usage_records r
LEFT JOIN (
    SELECT (window_start AT TIME ZONE 'UTC')::date AS day, cluster_id,
           CASE WHEN min(currency) = max(currency) THEN min(currency) END AS only_currency
    FROM usage_records
    GROUP BY 1, 2
) c ON c.day = (r.window_start AT TIME ZONE 'UTC')::date AND c.cluster_id = r.cluster_id
GROUP BY 1, r.cluster_id, 4;

CREATE VIEW usage_monthly_cluster AS
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
    max(r.updated_at) AS updated_at
FROM usage_records r
LEFT JOIN (
    SELECT date_trunc('month', window_start AT TIME ZONE 'UTC')::date AS month, cluster_id,
           CASE WHEN min(currency) = max(currency) THEN min(currency) END AS only_currency
    FROM usage_records
    GROUP BY 1, 2
) c ON c.month = date_trunc('month', r.window_start AT TIME ZONE 'UTC')::date
   AND c.cluster_id = r.cluster_id
GROUP BY 1, r.cluster_id, 4;

-- Reserved but unused: per window max(requested - used, 0) as stored in the *_unused_* columns,
-- summed over the day. For `__idle__` it is the capacity nobody reserved (requested is 0 there,
-- so its shares are NULL). Shares are fractions in [0, 1], NULL when nothing was requested.
CREATE VIEW unused_capacity_daily AS
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
GROUP BY 1, cluster_id, namespace;
