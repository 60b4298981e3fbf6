//! Report queries over `usage_records`: usage and cost of a period per namespace, per group of
//! workloads (`label:<key>`, `workload`) or per cluster, with totals per cluster and currency and
//! per currency. `usage-tracker report` prints them; the admin UI's views
//! (`migrations/0002_ui_views.sql`, `0004_groups_and_sharing.sql`) follow the same rules.
//!
//! Read-only and apart from the record sink ([`crate::sink::postgres`] writes the table). Money
//! is summed in Postgres (`numeric`) and returned as its exact decimal text, never as `f64`, and
//! never summed across currencies.

use std::fmt;
use std::str::FromStr;

use sqlx::postgres::PgPool;
use sqlx::Row;

use crate::standard::{EpochMillis, UNLABELLED};

/// What the rows of a report are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReportBy {
    /// One row per namespace (`__idle__` and `__unallocated__` included).
    #[default]
    Namespace,
    /// No rows below the cluster: the totals per cluster and currency only.
    Cluster,
    /// One row per value of a pod label within a namespace (group records `label:<key>`).
    Label(String),
    /// One row per owning workload within a namespace (group records `workload`).
    Workload,
}

impl ReportBy {
    /// The `group_by` of the records the rows come from: `''` for namespace records.
    pub fn group_by(&self) -> String {
        match self {
            Self::Namespace | Self::Cluster => String::new(),
            Self::Label(key) => format!("label:{key}"),
            Self::Workload => "workload".into(),
        }
    }

    /// Whether rows are groups of workloads.
    pub fn is_group(&self) -> bool {
        matches!(self, Self::Label(_) | Self::Workload)
    }
}

impl fmt::Display for ReportBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Namespace => f.write_str("namespace"),
            Self::Cluster => f.write_str("cluster"),
            Self::Label(_) | Self::Workload => f.write_str(&self.group_by()),
        }
    }
}

/// `namespace`, `cluster`, `workload` or `label:<key>`.
impl FromStr for ReportBy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "namespace" => Ok(Self::Namespace),
            "cluster" => Ok(Self::Cluster),
            "workload" => Ok(Self::Workload),
            _ => match text.strip_prefix("label:") {
                Some(key) if !key.is_empty() => Ok(Self::Label(key.to_owned())),
                _ => Err(format!(
                    "{text:?}: expected namespace, cluster, workload or label:<key>"
                )),
            },
        }
    }
}

/// Which records a report reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportQuery {
    /// Windows starting at or after this time; `None`: no lower bound.
    pub from: Option<EpochMillis>,
    /// Windows starting before this time; `None`: no upper bound.
    pub to: Option<EpochMillis>,
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this namespace (totals then cover it only).
    pub namespace: Option<String>,
    /// What the rows are.
    pub by: ReportBy,
}

/// What a [`ReportRow`] sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalsLevel {
    /// One row: a namespace of one cluster (including `__idle__` and `__unallocated__`), or one
    /// group of a namespace's workloads.
    Namespace,
    /// All selected rows of one cluster, in one currency.
    Cluster,
    /// All selected clusters, in one currency.
    Grand,
}

/// Usage and cost over a period: one namespace or group, one cluster's total or the grand total,
/// always in one currency.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    /// What the row sums.
    pub level: TotalsLevel,
    /// Cluster; `None` for a grand total.
    pub cluster_id: Option<String>,
    /// Namespace; `None` for cluster and grand totals.
    pub namespace: Option<String>,
    /// The records' `group_by` (`label:<key>`, `workload`) for a group; `None` for a namespace
    /// and for totals. In a group report, a namespace's windows without group records of that
    /// `group_by` (`__idle__`, say) form a row of the namespace itself, so totals stay the bills.
    pub group_by: Option<String>,
    /// The group's value (label value, `__unlabelled__`, or `<kind>/<name>`); `None` as
    /// `group_by`.
    pub group_value: Option<String>,
    /// Currency; `None` only for windows without a price that cannot be given one (see
    /// `docs/ui-integration.md`).
    pub currency: Option<String>,
    /// Windows summed: records for a namespace or group, distinct (cluster, window) for totals.
    pub windows: i64,
    /// Of these, windows still open (their figures can change).
    pub open_windows: i64,
    /// CPU used, core-hours.
    pub cpu_used_core_hours: f64,
    /// CPU requested, core-hours.
    pub cpu_requested_core_hours: f64,
    /// CPU allocated, core-hours.
    pub cpu_allocated_core_hours: f64,
    /// Memory used, GiB-hours.
    pub memory_used_gib_hours: f64,
    /// Memory requested, GiB-hours.
    pub memory_requested_gib_hours: f64,
    /// Memory allocated, GiB-hours.
    pub memory_allocated_gib_hours: f64,
    /// Cost charged after cost sharing, as an exact decimal string with 6 decimals (Postgres
    /// `numeric`, summed there).
    pub cost: String,
    /// Least certain cost status of the windows: `unpriced` if any window is unpriced, else
    /// `estimated` if any is estimated, else `final`.
    pub cost_status: String,
    /// Cost of the own usage before sharing (records written before sharing existed count their
    /// `cost_total`), exact decimal string.
    pub own_cost: String,
    /// Cost received from shared platform namespaces, exact decimal string.
    pub shared_cost: String,
    /// Idle cost received, exact decimal string.
    pub idle_cost: String,
    /// Whether a shared platform namespace (its cost moved to receivers) is among the records.
    pub shared: bool,
    /// Whether cost sharing touched any of the records: a shared namespace, or shared or idle
    /// cost received.
    pub sharing: bool,
}

/// The name of the row type before group reports existed.
pub type NamespaceTotals = ReportRow;

impl ReportRow {
    /// `namespace`, `group`, `idle`, `unallocated`, `cluster_total` or `total`.
    pub fn kind(&self) -> &'static str {
        match (self.level, self.namespace.as_deref()) {
            (TotalsLevel::Grand, _) => "total",
            (TotalsLevel::Cluster, _) => "cluster_total",
            _ if self.group_value.is_some() => "group",
            (TotalsLevel::Namespace, Some(crate::allocate::IDLE)) => "idle",
            (TotalsLevel::Namespace, Some(crate::allocate::UNALLOCATED)) => "unallocated",
            (TotalsLevel::Namespace, _) => "namespace",
        }
    }
}

/// Usage and cost of windows starting in `[from, to)` (open bounds when `None`), per (cluster,
/// currency, row), with a total per (cluster, currency) and per currency; rows as `query.by`
/// says (none with [`ReportBy::Cluster`]).
///
/// Sorted by cluster and currency; within them namespaces by name, then `__idle__`,
/// `__unallocated__` and the cluster total; the grand totals come last. In a group report a
/// namespace's groups come by value, `__unlabelled__` last, then the namespace's windows without
/// groups. Money is summed in Postgres (`numeric`), never across currencies. An unpriced window
/// (no currency) counts under its cluster's currency when the cluster's priced windows in the
/// period all have the same one, as in the `usage_daily` view.
///
/// Totals are the same whatever `by` is: a group report takes, per namespace window, its group
/// records of that `group_by` when it has any and its namespace record otherwise.
pub async fn report(pool: &PgPool, query: &ReportQuery) -> Result<Vec<ReportRow>, sqlx::Error> {
    let rows = sqlx::query(
        "WITH period AS (
             SELECT * FROM usage_records
             WHERE ($1::bigint IS NULL OR window_start >= to_timestamp($1 / 1000.0))
               AND ($2::bigint IS NULL OR window_start < to_timestamp($2 / 1000.0))
               AND ($3::text IS NULL OR cluster_id = $3)
               AND group_by IN ('', $5)
         ), cluster_currency AS (
             SELECT cluster_id,
                    CASE WHEN min(currency) = max(currency) THEN min(currency) END AS only_currency
             FROM period WHERE group_by = '' GROUP BY cluster_id
         ), selected AS (
             SELECT p.*, coalesce(p.currency, c.only_currency) AS cur,
                    CASE WHEN p.group_by <> '' THEN p.group_value END AS grp
             FROM period p LEFT JOIN cluster_currency c USING (cluster_id)
             WHERE ($4::text IS NULL OR p.namespace = $4)
               AND (p.group_by = $5
                    OR NOT EXISTS (SELECT 1 FROM usage_records g
                                   WHERE g.cluster_id = p.cluster_id AND g.namespace = p.namespace
                                     AND g.window_start = p.window_start AND g.group_by = $5))
         )
         SELECT GROUPING(cluster_id, namespace, grp)::int4, cluster_id, namespace, grp, cur,
                count(DISTINCT (cluster_id, window_start)),
                count(DISTINCT (cluster_id, window_start)) FILTER (WHERE status = 'open'),
                sum(cpu_used_core_seconds) / 3600, sum(cpu_requested_core_seconds) / 3600,
                sum(cpu_allocated_core_seconds) / 3600,
                sum(memory_used_byte_seconds) / 3600 / 1073741824,
                sum(memory_requested_byte_seconds) / 3600 / 1073741824,
                sum(memory_allocated_byte_seconds) / 3600 / 1073741824,
                sum(cost_total)::text,
                CASE WHEN bool_or(cost_status = 'unpriced') THEN 'unpriced'
                     WHEN bool_or(cost_status = 'estimated') THEN 'estimated'
                     ELSE 'final' END,
                sum(coalesce(own_cost, cost_total))::text, sum(shared_cost)::text,
                sum(idle_cost)::text, bool_or(shared),
                bool_or(shared OR shared_cost <> 0 OR idle_cost <> 0)
         FROM selected
         GROUP BY GROUPING SETS ((cluster_id, cur, namespace, grp), (cluster_id, cur), (cur))
         HAVING $6 OR GROUPING(namespace) = 1
         ORDER BY GROUPING(cluster_id), cluster_id, cur NULLS LAST, GROUPING(namespace),
                  namespace IN ('__idle__', '__unallocated__'), namespace,
                  grp IS NULL, grp = $7, grp",
    )
    .bind(query.from)
    .bind(query.to)
    .bind(query.cluster.as_deref())
    .bind(query.namespace.as_deref())
    .bind(query.by.group_by())
    .bind(query.by != ReportBy::Cluster)
    .bind(UNLABELLED)
    .fetch_all(pool)
    .await?;
    let group_by = query.by.is_group().then(|| query.by.group_by());
    Ok(rows
        .into_iter()
        .map(|r| {
            let group_value: Option<String> = r.get(3);
            ReportRow {
                level: match r.get::<i32, _>(0) {
                    0 => TotalsLevel::Namespace,
                    3 => TotalsLevel::Cluster,
                    _ => TotalsLevel::Grand,
                },
                cluster_id: r.get(1),
                namespace: r.get(2),
                group_by: group_value.as_ref().and(group_by.clone()),
                group_value,
                currency: r.get(4),
                windows: r.get(5),
                open_windows: r.get(6),
                cpu_used_core_hours: r.get(7),
                cpu_requested_core_hours: r.get(8),
                cpu_allocated_core_hours: r.get(9),
                memory_used_gib_hours: r.get(10),
                memory_requested_gib_hours: r.get(11),
                memory_allocated_gib_hours: r.get(12),
                cost: r.get(13),
                cost_status: r.get(14),
                own_cost: r.get(15),
                shared_cost: r.get(16),
                idle_cost: r.get(17),
                shared: r.get(18),
                sharing: r.get(19),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_parses_and_prints() {
        for text in ["namespace", "cluster", "workload", "label:team"] {
            assert_eq!(text.parse::<ReportBy>().unwrap().to_string(), text);
        }
        assert_eq!(
            "label:hub.jupyter.org/username".parse::<ReportBy>(),
            Ok(ReportBy::Label("hub.jupyter.org/username".into()))
        );
        assert_eq!(ReportBy::Namespace.group_by(), "");
        assert_eq!(ReportBy::Cluster.group_by(), "");
        assert_eq!(ReportBy::Workload.group_by(), "workload");
        assert!("label:".parse::<ReportBy>().is_err());
        assert!("team".parse::<ReportBy>().is_err());
    }
}
