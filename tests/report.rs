//! The admin UI's views (migrations/0002_ui_views.sql, 0004_groups_and_sharing.sql) and
//! `usage-tracker report`, on known rows of `usage_records` in a fresh database, and the sink's
//! upsert and delete of namespace and group records.
//!
//! Usage figures are chosen to be exact in binary floating point (halves of core-hours and
//! GiB-hours), so they are compared exactly; costs are compared as Postgres decimal text.

mod common;

use serde_json::{json, Value};
use sqlx::PgPool;
use usage_tracker::sink::postgres::PostgresSink;

const D1: &str = "2024-03-01";
const D2: &str = "2024-03-02";
const GIB: f64 = 1_073_741_824.0;

/// used, requested, allocated, unused, in hours (core-hours or GiB-hours).
type Figures = [f64; 4];

/// A namespace's figures: allocated `max(req, used)`, unused `max(req - used, 0)`.
fn ns(used: f64, requested: f64) -> Figures {
    [
        used,
        requested,
        used.max(requested),
        (requested - used).max(0.0),
    ]
}

/// `__idle__`: capacity nobody allocated, shown as allocated and unused.
fn idle(capacity: f64) -> Figures {
    [0.0, 0.0, capacity, capacity]
}

const NONE: Figures = [0.0; 4];

struct Rec {
    cluster: &'static str,
    namespace: &'static str,
    /// `YYYY-MM-DD HH:MM` UTC; windows are one hour.
    start: String,
    status: &'static str,
    cpu: Figures,
    memory: Figures,
    cost: &'static str,
    currency: Option<&'static str>,
    cost_status: &'static str,
}

#[allow(clippy::too_many_arguments)]
fn rec(
    cluster: &'static str,
    namespace: &'static str,
    day: &str,
    hour: &str,
    status: &'static str,
    cpu: Figures,
    memory: Figures,
    cost: &'static str,
    currency: Option<&'static str>,
    cost_status: &'static str,
) -> Rec {
    Rec {
        cluster,
        namespace,
        start: format!("{day} {hour}"),
        status,
        cpu,
        memory,
        cost,
        currency,
        cost_status,
    }
}

/// Three clusters over two days:
/// - c1: day 1 two closed, final hours (alpha, beta, idle, unallocated); day 2 one open,
///   estimated hour.
/// - c2: day 1 one final hour; day 2 one final hour and one open, unpriced hour (no currency:
///   it counts under c2's only currency, EUR).
/// - c3: day 1 one hour in USD, one in EUR and one unpriced (two currencies: the unpriced hour
///   stays without currency).
#[rustfmt::skip]
fn records() -> Vec<Rec> {
    let eur = Some("EUR");
    vec![
        rec("c1", "alpha", D1, "10:00", "closed", ns(1.0, 2.0), ns(2.0, 4.0), "0.100000", eur, "final"),
        rec("c1", "beta", D1, "10:00", "closed", ns(3.0, 2.0), ns(4.0, 2.0), "0.200000", eur, "final"),
        rec("c1", "__idle__", D1, "10:00", "closed", idle(3.0), idle(10.0), "0.300001", eur, "final"),
        rec("c1", "__unallocated__", D1, "10:00", "closed", NONE, NONE, "0.050000", eur, "final"),
        rec("c1", "alpha", D1, "11:00", "closed", ns(0.5, 2.0), ns(1.0, 4.0), "0.100000", eur, "final"),
        rec("c1", "beta", D1, "11:00", "closed", ns(1.5, 2.0), ns(2.0, 2.0), "0.150000", eur, "final"),
        rec("c1", "__idle__", D1, "11:00", "closed", idle(4.0), idle(10.0), "0.300000", eur, "final"),
        rec("c1", "alpha", D2, "10:00", "open", ns(2.0, 2.0), ns(4.0, 4.0), "0.123456", eur, "estimated"),
        rec("c1", "__idle__", D2, "10:00", "open", idle(6.0), idle(12.0), "0.333333", eur, "estimated"),
        rec("c2", "alpha", D1, "10:00", "closed", ns(1.0, 1.0), ns(1.0, 1.0), "1.000000", eur, "final"),
        rec("c2", "__idle__", D1, "10:00", "closed", idle(1.0), idle(1.0), "0.999999", eur, "final"),
        rec("c2", "alpha", D2, "10:00", "closed", ns(1.0, 1.0), ns(1.0, 1.0), "2.000000", eur, "final"),
        rec("c2", "alpha", D2, "11:00", "open", ns(0.5, 1.0), ns(0.5, 1.0), "0", None, "unpriced"),
        rec("c2", "__idle__", D2, "11:00", "open", idle(1.0), idle(1.0), "0", None, "unpriced"),
        rec("c3", "gamma", D1, "10:00", "closed", ns(1.0, 1.0), ns(1.0, 1.0), "5.000000", Some("USD"), "final"),
        rec("c3", "gamma", D1, "11:00", "closed", ns(1.0, 1.0), ns(1.0, 1.0), "1.000000", eur, "final"),
        rec("c3", "gamma", D1, "12:00", "closed", ns(1.0, 1.0), ns(1.0, 1.0), "0", None, "unpriced"),
    ]
}

/// Group and sharing columns of a row.
struct Extra {
    group_by: &'static str,
    group_value: &'static str,
    /// `None`: NULL (a row written before cost sharing existed).
    own_cost: Option<&'static str>,
    shared_cost: &'static str,
    idle_cost: &'static str,
    shared: bool,
}

/// A namespace record as written before groups and sharing: the columns' defaults.
const NAMESPACE_RECORD: Extra = Extra {
    group_by: "",
    group_value: "",
    own_cost: None,
    shared_cost: "0",
    idle_cost: "0",
    shared: false,
};

async fn insert(pool: &PgPool, r: &Rec, extra: &Extra) {
    sqlx::query(
        "INSERT INTO usage_records (cluster_id, namespace, window_start, window_end,
             cluster_name, status, revision,
             cpu_used_core_seconds, cpu_requested_core_seconds, cpu_allocated_core_seconds,
             cpu_unused_core_seconds, memory_used_byte_seconds, memory_requested_byte_seconds,
             memory_allocated_byte_seconds, memory_unused_byte_seconds,
             resources, costs, cost_total, currency, cost_status,
             group_by, group_value, own_cost, shared_cost, idle_cost, shared)
         VALUES ($1, $2, ($3 || ':00Z')::timestamptz, ($3 || ':00Z')::timestamptz + interval '1 hour',
             'name of ' || $1, $4, 1, $5, $6, $7, $8, $9, $10, $11, $12,
             '[]', '[]', $13::numeric, $14, $15, $16, $17, $18::numeric, $19::numeric, $20::numeric,
             $21)",
    )
    .bind(r.cluster)
    .bind(r.namespace)
    .bind(&r.start)
    .bind(r.status)
    .bind(r.cpu[0] * 3600.0)
    .bind(r.cpu[1] * 3600.0)
    .bind(r.cpu[2] * 3600.0)
    .bind(r.cpu[3] * 3600.0)
    .bind(r.memory[0] * 3600.0 * GIB)
    .bind(r.memory[1] * 3600.0 * GIB)
    .bind(r.memory[2] * 3600.0 * GIB)
    .bind(r.memory[3] * 3600.0 * GIB)
    .bind(r.cost)
    .bind(r.currency)
    .bind(r.cost_status)
    .bind(extra.group_by)
    .bind(extra.group_value)
    .bind(extra.own_cost)
    .bind(extra.shared_cost)
    .bind(extra.idle_cost)
    .bind(extra.shared)
    .execute(pool)
    .await
    .unwrap();
}

/// Adds group records of `group_by` to the namespace record (cluster, namespace, `YYYY-MM-DD
/// HH:MM`): each `(value, fraction, cost)` gets `fraction` of every usage figure and `cost`.
async fn split_into_groups(
    pool: &PgPool,
    (cluster, namespace, start): (&str, &str, &str),
    group_by: &str,
    groups: &[(&str, f64, &str)],
) {
    for (value, fraction, cost) in groups {
        let inserted = sqlx::query(
            "INSERT INTO usage_records (cluster_id, namespace, window_start, window_end,
                 cluster_name, status, revision,
                 cpu_used_core_seconds, cpu_requested_core_seconds, cpu_allocated_core_seconds,
                 cpu_unused_core_seconds, memory_used_byte_seconds, memory_requested_byte_seconds,
                 memory_allocated_byte_seconds, memory_unused_byte_seconds,
                 resources, costs, cost_total, currency, cost_status, group_by, group_value)
             SELECT cluster_id, namespace, window_start, window_end, cluster_name, status, revision,
                 cpu_used_core_seconds * $6, cpu_requested_core_seconds * $6,
                 cpu_allocated_core_seconds * $6, cpu_unused_core_seconds * $6,
                 memory_used_byte_seconds * $6, memory_requested_byte_seconds * $6,
                 memory_allocated_byte_seconds * $6, memory_unused_byte_seconds * $6,
                 resources, costs, $7::numeric, currency, cost_status, $4, $5
             FROM usage_records
             WHERE cluster_id = $1 AND namespace = $2 AND window_start = ($3 || ':00Z')::timestamptz
               AND group_by = ''",
        )
        .bind(cluster)
        .bind(namespace)
        .bind(start)
        .bind(group_by)
        .bind(value)
        .bind(fraction)
        .bind(cost)
        .execute(pool)
        .await
        .unwrap();
        assert_eq!(inserted.rows_affected(), 1);
    }
}

/// A fresh database with the migrations applied and [`records`] inserted; returns its URL.
async fn seeded_database() -> (String, PgPool) {
    let url = common::fresh_database().await;
    let sink = PostgresSink::connect(&url)
        .await
        .expect("connect and migrate");
    let pool = sink.pool().clone();
    for r in records() {
        insert(&pool, &r, &NAMESPACE_RECORD).await;
    }
    // Groups that sum to their namespace records, which the namespace views must leave out:
    // c1/alpha's first hour by team, c2/alpha's day 2 hours by workload.
    let team = [("red", 0.75, "0.075000"), ("blue", 0.25, "0.025000")];
    split_into_groups(
        &pool,
        ("c1", "alpha", "2024-03-01 10:00"),
        "label:team",
        &team,
    )
    .await;
    let workloads = [
        ("Deployment/web", 0.5, "1.000000"),
        ("StatefulSet/db", 0.5, "1.000000"),
    ];
    split_into_groups(
        &pool,
        ("c2", "alpha", "2024-03-02 10:00"),
        "workload",
        &workloads,
    )
    .await;
    let web = [("Deployment/web", 1.0, "0")];
    split_into_groups(&pool, ("c2", "alpha", "2024-03-02 11:00"), "workload", &web).await;
    // Storage and network on one record: 10 GiB for the hour, 1000 bytes in, 500 out.
    sqlx::query(
        "UPDATE usage_records SET storage_used_byte_seconds = 10 * 3600 * 1073741824.0,
             network_rx_bytes = 1000, network_tx_bytes = 500
         WHERE cluster_id = 'c1' AND namespace = 'alpha' AND window_start = '2024-03-01T11:00:00Z'
           AND group_by = ''",
    )
    .execute(&pool)
    .await
    .unwrap();
    (url, pool)
}

/// The columns of `view`, one line per row in `order`, values separated by spaces (`NULL` for
/// null; doubles and numerics in Postgres's exact text form).
async fn render(pool: &PgPool, view: &str, columns: &[&str], order: &str) -> Vec<String> {
    let values: Vec<String> = columns
        .iter()
        .map(|c| format!("coalesce({c}::text, 'NULL')"))
        .collect();
    let sql = format!(
        "SELECT concat_ws(' ', {}) FROM {view} ORDER BY {order}",
        values.join(", ")
    );
    sqlx::query_scalar(&sql).fetch_all(pool).await.unwrap()
}

/// Namespaces by name, reserved ones last, as the report sorts them.
fn by_namespace(period: &str) -> String {
    format!("{period}, cluster_id, namespace LIKE '\\_\\_%', namespace, currency NULLS LAST")
}

fn by_cluster(period: &str) -> String {
    format!("{period}, cluster_id, currency NULLS LAST")
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

const PER_NAMESPACE: &[&str] = &[
    "cluster_id",
    "namespace",
    "currency",
    "windows",
    "open_windows",
    "final_windows",
    "estimated_windows",
    "unpriced_windows",
    "cpu_used_core_hours",
    "cpu_requested_core_hours",
    "cpu_allocated_core_hours",
    "memory_used_gib_hours",
    "memory_requested_gib_hours",
    "memory_allocated_gib_hours",
    "storage_used_gib_hours",
    "network_rx_bytes",
    "network_tx_bytes",
    "cost",
    "cost_status",
    "cluster_name",
];

const PER_CLUSTER: &[&str] = &[
    "cluster_id",
    "currency",
    "windows",
    "open_windows",
    "final_windows",
    "estimated_windows",
    "unpriced_windows",
    "namespaces",
    "cpu_used_core_hours",
    "cpu_requested_core_hours",
    "cpu_allocated_core_hours",
    "memory_used_gib_hours",
    "memory_requested_gib_hours",
    "memory_allocated_gib_hours",
    "storage_used_gib_hours",
    "cost",
    "idle_cost",
    "unallocated_cost",
    "cost_status",
];

fn with_period<'a>(period: &'a str, columns: &[&'a str]) -> Vec<&'a str> {
    std::iter::once(period)
        .chain(columns.iter().copied())
        .collect()
}

#[tokio::test]
async fn views_give_exact_figures() {
    let (_url, pool) = seeded_database().await;

    // day cluster namespace currency | windows open final estimated unpriced | cpu used req alloc
    // | mem used req alloc | storage rx tx | cost status | cluster_name
    assert_eq!(
        render(
            &pool,
            "usage_daily",
            &with_period("day", PER_NAMESPACE),
            &by_namespace("day")
        )
        .await,
        lines(
            "
            2024-03-01 c1 alpha EUR 2 0 2 0 0 1.5 4 4 3 8 8 10 1000 500 0.200000 final name of c1
            2024-03-01 c1 beta EUR 2 0 2 0 0 4.5 4 5 6 4 6 0 0 0 0.350000 final name of c1
            2024-03-01 c1 __idle__ EUR 2 0 2 0 0 0 0 7 0 0 20 0 0 0 0.600001 final name of c1
            2024-03-01 c1 __unallocated__ EUR 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0.050000 final name of c1
            2024-03-01 c2 alpha EUR 1 0 1 0 0 1 1 1 1 1 1 0 0 0 1.000000 final name of c2
            2024-03-01 c2 __idle__ EUR 1 0 1 0 0 0 0 1 0 0 1 0 0 0 0.999999 final name of c2
            2024-03-01 c3 gamma EUR 1 0 1 0 0 1 1 1 1 1 1 0 0 0 1.000000 final name of c3
            2024-03-01 c3 gamma USD 1 0 1 0 0 1 1 1 1 1 1 0 0 0 5.000000 final name of c3
            2024-03-01 c3 gamma NULL 1 0 0 0 1 1 1 1 1 1 1 0 0 0 0.000000 unpriced name of c3
            2024-03-02 c1 alpha EUR 1 1 0 1 0 2 2 2 4 4 4 0 0 0 0.123456 estimated name of c1
            2024-03-02 c1 __idle__ EUR 1 1 0 1 0 0 0 6 0 0 12 0 0 0 0.333333 estimated name of c1
            2024-03-02 c2 alpha EUR 2 1 1 0 1 1.5 2 2 1.5 2 2 0 0 0 2.000000 unpriced name of c2
            2024-03-02 c2 __idle__ EUR 1 1 0 0 1 0 0 1 0 0 1 0 0 0 0.000000 unpriced name of c2
            "
        )
    );

    assert_eq!(
        render(&pool, "usage_monthly", &with_period("month", PER_NAMESPACE), &by_namespace("month")).await,
        lines(
            "
            2024-03-01 c1 alpha EUR 3 1 2 1 0 3.5 6 6 7 12 12 10 1000 500 0.323456 estimated name of c1
            2024-03-01 c1 beta EUR 2 0 2 0 0 4.5 4 5 6 4 6 0 0 0 0.350000 final name of c1
            2024-03-01 c1 __idle__ EUR 3 1 2 1 0 0 0 13 0 0 32 0 0 0 0.933334 estimated name of c1
            2024-03-01 c1 __unallocated__ EUR 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0.050000 final name of c1
            2024-03-01 c2 alpha EUR 3 1 2 0 1 2.5 3 3 2.5 3 3 0 0 0 3.000000 unpriced name of c2
            2024-03-01 c2 __idle__ EUR 2 1 1 0 1 0 0 2 0 0 2 0 0 0 0.999999 unpriced name of c2
            2024-03-01 c3 gamma EUR 1 0 1 0 0 1 1 1 1 1 1 0 0 0 1.000000 final name of c3
            2024-03-01 c3 gamma USD 1 0 1 0 0 1 1 1 1 1 1 0 0 0 5.000000 final name of c3
            2024-03-01 c3 gamma NULL 1 0 0 0 1 1 1 1 1 1 1 0 0 0 0.000000 unpriced name of c3
            "
        )
    );

    // day cluster currency | windows open final estimated unpriced namespaces | cpu used req alloc
    // | mem used req alloc | storage | cost idle_cost unallocated_cost status
    assert_eq!(
        render(
            &pool,
            "usage_daily_cluster",
            &with_period("day", PER_CLUSTER),
            &by_cluster("day")
        )
        .await,
        lines(
            "
            2024-03-01 c1 EUR 2 0 2 0 0 2 6 8 16 9 12 34 10 1.200001 0.600001 0.050000 final
            2024-03-01 c2 EUR 1 0 1 0 0 1 1 1 2 1 1 2 0 1.999999 0.999999 0.000000 final
            2024-03-01 c3 EUR 1 0 1 0 0 1 1 1 1 1 1 1 0 1.000000 0.000000 0.000000 final
            2024-03-01 c3 USD 1 0 1 0 0 1 1 1 1 1 1 1 0 5.000000 0.000000 0.000000 final
            2024-03-01 c3 NULL 1 0 0 0 1 1 1 1 1 1 1 1 0 0.000000 0.000000 0.000000 unpriced
            2024-03-02 c1 EUR 1 1 0 1 0 1 2 2 8 4 4 16 0 0.456789 0.333333 0.000000 estimated
            2024-03-02 c2 EUR 2 1 1 0 1 1 1.5 2 3 1.5 2 3 0 2.000000 0.000000 0.000000 unpriced
            "
        )
    );

    assert_eq!(
        render(
            &pool,
            "usage_monthly_cluster",
            &with_period("month", PER_CLUSTER),
            &by_cluster("month")
        )
        .await,
        lines(
            "
            2024-03-01 c1 EUR 3 1 2 1 0 2 8 10 24 13 16 50 10 1.656790 0.933334 0.050000 estimated
            2024-03-01 c2 EUR 3 1 2 0 1 1 2.5 3 5 2.5 3 5 0 3.999999 0.999999 0.000000 unpriced
            2024-03-01 c3 EUR 1 0 1 0 0 1 1 1 1 1 1 1 0 1.000000 0.000000 0.000000 final
            2024-03-01 c3 USD 1 0 1 0 0 1 1 1 1 1 1 1 0 5.000000 0.000000 0.000000 final
            2024-03-01 c3 NULL 1 0 0 0 1 1 1 1 1 1 1 1 0 0.000000 0.000000 0.000000 unpriced
            "
        )
    );

    // The cluster rows are the sums of the namespace rows, per currency.
    let mismatches: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM usage_daily_cluster c
         FULL JOIN (SELECT day, cluster_id, currency, sum(cost) AS cost,
                           sum(cpu_allocated_core_hours) AS cpu
                    FROM usage_daily GROUP BY 1, 2, 3) n
           ON (c.day, c.cluster_id) = (n.day, n.cluster_id)
          AND c.currency IS NOT DISTINCT FROM n.currency
         WHERE c.cost IS DISTINCT FROM n.cost OR c.cpu_allocated_core_hours IS DISTINCT FROM n.cpu",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(mismatches, 0);

    // day cluster namespace | windows open | cpu req used unused share | mem req used unused share
    assert_eq!(
        render(
            &pool,
            "unused_capacity_daily",
            &[
                "day",
                "cluster_id",
                "namespace",
                "windows",
                "open_windows",
                "cpu_requested_core_hours",
                "cpu_used_core_hours",
                "cpu_unused_core_hours",
                "cpu_unused_share",
                "memory_requested_gib_hours",
                "memory_used_gib_hours",
                "memory_unused_gib_hours",
                "memory_unused_share",
            ],
            "day, cluster_id, namespace LIKE '\\_\\_%', namespace",
        )
        .await,
        lines(
            "
            2024-03-01 c1 alpha 2 0 4 1.5 2.5 0.625 8 3 5 0.625
            2024-03-01 c1 beta 2 0 4 4.5 0.5 0.125 4 6 0 0
            2024-03-01 c1 __idle__ 2 0 0 0 7 NULL 0 0 20 NULL
            2024-03-01 c1 __unallocated__ 1 0 0 0 0 NULL 0 0 0 NULL
            2024-03-01 c2 alpha 1 0 1 1 0 0 1 1 0 0
            2024-03-01 c2 __idle__ 1 0 0 0 1 NULL 0 0 1 NULL
            2024-03-01 c3 gamma 3 0 3 3 0 0 3 3 0 0
            2024-03-02 c1 alpha 1 1 2 2 0 0 4 4 0 0
            2024-03-02 c1 __idle__ 1 1 0 0 6 NULL 0 0 12 NULL
            2024-03-02 c2 alpha 2 1 2 1.5 0.5 0.25 2 1.5 0.5 0.25
            2024-03-02 c2 __idle__ 1 1 0 0 1 NULL 0 0 1 NULL
            "
        )
    );

    // Rows written before cost sharing: own cost is the cost, nothing shared or received.
    let sharing: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT concat_ws(' ', (own_cost = cost)::text, shared_cost, idle_cost, shared::text)
         FROM usage_monthly",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(sharing, ["true 0.000000 0.000000 false"]);

    // Groups: their own views. day cluster namespace group_by group_value currency | windows open
    // final estimated unpriced | cpu used req alloc | mem used req alloc | storage rx tx | cost
    // status | cluster_name. c2's unpriced hour counts under EUR, as in usage_daily.
    let groups = "
        2024-03-01 c1 alpha label:team blue EUR 1 0 1 0 0 0.25 0.5 0.5 0.5 1 1 0 0 0 0.025000 final name of c1
        2024-03-01 c1 alpha label:team red EUR 1 0 1 0 0 0.75 1.5 1.5 1.5 3 3 0 0 0 0.075000 final name of c1
        2024-03-02 c2 alpha workload Deployment/web EUR 2 1 1 0 1 1 1.5 1.5 1 1.5 1.5 0 0 0 1.000000 unpriced name of c2
        2024-03-02 c2 alpha workload StatefulSet/db EUR 1 0 1 0 0 0.5 0.5 0.5 0.5 0.5 0.5 0 0 0 1.000000 final name of c2
    ";
    let by_group = |period: &str| {
        format!("{period}, cluster_id, namespace, group_by, group_value COLLATE \"C\", currency")
    };
    assert_eq!(
        render(
            &pool,
            "usage_groups_daily",
            &with_period("day", PER_GROUP),
            &by_group("day")
        )
        .await,
        lines(groups)
    );
    // One month: the same rows.
    assert_eq!(
        render(
            &pool,
            "usage_groups_monthly",
            &with_period("month", PER_GROUP),
            &by_group("month")
        )
        .await,
        lines(&groups.replace("2024-03-02", "2024-03-01"))
    );
}

const PER_GROUP: &[&str] = &[
    "cluster_id",
    "namespace",
    "group_by",
    "group_value",
    "currency",
    "windows",
    "open_windows",
    "final_windows",
    "estimated_windows",
    "unpriced_windows",
    "cpu_used_core_hours",
    "cpu_requested_core_hours",
    "cpu_allocated_core_hours",
    "memory_used_gib_hours",
    "memory_requested_gib_hours",
    "memory_allocated_gib_hours",
    "storage_used_gib_hours",
    "network_rx_bytes",
    "network_tx_bytes",
    "cost",
    "cost_status",
    "cluster_name",
];

/// Runs `usage-tracker report` against `url` with the stack's other settings.
async fn report(url: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"))
        .arg("report")
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A report object: usage figures as numbers, cost as a decimal string.
#[allow(clippy::too_many_arguments)]
fn row(
    kind: &str,
    cluster: Option<&str>,
    namespace: Option<&str>,
    currency: Option<&str>,
    windows: i64,
    open_windows: i64,
    cpu: [f64; 3],
    memory: [f64; 3],
    cost: &str,
    cost_status: &str,
) -> Value {
    json!({
        "kind": kind,
        "cluster_id": cluster,
        "namespace": namespace,
        "currency": currency,
        "windows": windows,
        "open_windows": open_windows,
        "cpu_used_core_hours": cpu[0],
        "cpu_requested_core_hours": cpu[1],
        "cpu_allocated_core_hours": cpu[2],
        "memory_used_gib_hours": memory[0],
        "memory_requested_gib_hours": memory[1],
        "memory_allocated_gib_hours": memory[2],
        "cost": cost,
        "cost_status": cost_status,
    })
}

#[tokio::test]
async fn report_json_has_rows_and_totals() {
    let (url, _pool) = seeded_database().await;
    let got: Value = serde_json::from_str(&report(&url, &["--format", "json"]).await).unwrap();
    let (eur, usd) = (Some("EUR"), Some("USD"));
    let ns = |cluster, namespace, currency, w, o, cpu, mem, cost, status| {
        let kind = match namespace {
            "__idle__" => "idle",
            "__unallocated__" => "unallocated",
            _ => "namespace",
        };
        row(
            kind,
            Some(cluster),
            Some(namespace),
            currency,
            w,
            o,
            cpu,
            mem,
            cost,
            status,
        )
    };
    #[rustfmt::skip]
    let expected = json!({
        "from": null,
        "to": null,
        "cluster": null,
        "namespace": null,
        // Per cluster and currency: namespaces by name, then __idle__, __unallocated__.
        "rows": [
            ns("c1", "alpha", eur, 3, 1, [3.5, 6.0, 6.0], [7.0, 12.0, 12.0], "0.323456", "estimated"),
            ns("c1", "beta", eur, 2, 0, [4.5, 4.0, 5.0], [6.0, 4.0, 6.0], "0.350000", "final"),
            ns("c1", "__idle__", eur, 3, 1, [0.0, 0.0, 13.0], [0.0, 0.0, 32.0], "0.933334", "estimated"),
            ns("c1", "__unallocated__", eur, 1, 0, [0.0; 3], [0.0; 3], "0.050000", "final"),
            ns("c2", "alpha", eur, 3, 1, [2.5, 3.0, 3.0], [2.5, 3.0, 3.0], "3.000000", "unpriced"),
            ns("c2", "__idle__", eur, 2, 1, [0.0, 0.0, 2.0], [0.0, 0.0, 2.0], "0.999999", "unpriced"),
            ns("c3", "gamma", eur, 1, 0, [1.0; 3], [1.0; 3], "1.000000", "final"),
            ns("c3", "gamma", usd, 1, 0, [1.0; 3], [1.0; 3], "5.000000", "final"),
            ns("c3", "gamma", None, 1, 0, [1.0; 3], [1.0; 3], "0.000000", "unpriced"),
        ],
        "cluster_totals": [
            row("cluster_total", Some("c1"), None, eur, 3, 1, [8.0, 10.0, 24.0], [13.0, 16.0, 50.0], "1.656790", "estimated"),
            row("cluster_total", Some("c2"), None, eur, 3, 1, [2.5, 3.0, 5.0], [2.5, 3.0, 5.0], "3.999999", "unpriced"),
            row("cluster_total", Some("c3"), None, eur, 1, 0, [1.0; 3], [1.0; 3], "1.000000", "final"),
            row("cluster_total", Some("c3"), None, usd, 1, 0, [1.0; 3], [1.0; 3], "5.000000", "final"),
            row("cluster_total", Some("c3"), None, None, 1, 0, [1.0; 3], [1.0; 3], "0.000000", "unpriced"),
        ],
        // Never summed across currencies.
        "totals": [
            row("total", None, None, eur, 7, 2, [11.5, 14.0, 30.0], [16.5, 20.0, 56.0], "6.656789", "unpriced"),
            row("total", None, None, usd, 1, 0, [1.0; 3], [1.0; 3], "5.000000", "final"),
            row("total", None, None, None, 1, 0, [1.0; 3], [1.0; 3], "0.000000", "unpriced"),
        ],
    });
    assert_eq!(got, expected, "{got:#}");

    // A period and a cluster: day 2 of c1 only.
    let got: Value = serde_json::from_str(
        &report_of(
            &url,
            &[
                "--from",
                D2,
                "--to",
                "2024-03-03T00:00:00Z",
                "--cluster",
                "c1",
            ],
        )
        .await,
    )
    .unwrap();
    #[rustfmt::skip]
    let expected = json!({
        "from": "2024-03-02T00:00:00Z",
        "to": "2024-03-03T00:00:00Z",
        "cluster": "c1",
        "namespace": null,
        "rows": [
            ns("c1", "alpha", eur, 1, 1, [2.0; 3], [4.0; 3], "0.123456", "estimated"),
            ns("c1", "__idle__", eur, 1, 1, [0.0, 0.0, 6.0], [0.0, 0.0, 12.0], "0.333333", "estimated"),
        ],
        "cluster_totals": [
            row("cluster_total", Some("c1"), None, eur, 1, 1, [2.0, 2.0, 8.0], [4.0, 4.0, 16.0], "0.456789", "estimated"),
        ],
        "totals": [
            row("total", None, None, eur, 1, 1, [2.0, 2.0, 8.0], [4.0, 4.0, 16.0], "0.456789", "estimated"),
        ],
    });
    assert_eq!(got, expected, "{got:#}");
}

async fn report_of(url: &str, args: &[&str]) -> String {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    report(url, &all).await
}

#[tokio::test]
async fn report_csv_has_header_rows_and_totals() {
    let (url, _pool) = seeded_database().await;
    let csv = report(&url, &["--format", "csv"]).await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "cluster,namespace,windows,cpu_used_h,cpu_req_h,cpu_alloc_h,mem_used_GiBh,mem_alloc_GiBh,cost,currency,cost_status,kind"
    );
    assert_eq!(
        lines[1],
        "c1,alpha,3,3.500,6.000,6.000,7.000,12.000,0.323456,EUR,estimated,namespace"
    );
    assert_eq!(
        &lines[3..6],
        [
            "c1,__idle__,3,0.000,0.000,13.000,0.000,32.000,0.933334,EUR,estimated,idle",
            "c1,__unallocated__,1,0.000,0.000,0.000,0.000,0.000,0.05,EUR,final,unallocated",
            "c1,TOTAL,3,8.000,10.000,24.000,13.000,50.000,1.65679,EUR,estimated,cluster_total",
        ]
    );
    assert_eq!(
        &lines[lines.len() - 3..],
        [
            "TOTAL,,7,11.500,14.000,30.000,16.500,56.000,6.656789,EUR,unpriced,total",
            "TOTAL,,1,1.000,1.000,1.000,1.000,1.000,5,USD,final,total",
            "TOTAL,,1,1.000,1.000,1.000,1.000,1.000,0,,unpriced,total",
        ]
    );
    // 9 namespace rows, 5 cluster totals, 3 grand totals.
    assert_eq!(lines.len(), 1 + 9 + 5 + 3);

    // The table has the same rows, labelled.
    let table = report(&url, &[]).await;
    assert!(table
        .lines()
        .any(|l| l.starts_with("c1 ") && l.contains(" TOTAL ") && l.ends_with("cluster_total")));
}

/// `value` (a JSON object) with `fields` added.
fn with(mut value: Value, fields: &[(&str, Value)]) -> Value {
    let object = value.as_object_mut().unwrap();
    for (key, field) in fields {
        object.insert((*key).to_owned(), field.clone());
    }
    value
}

/// Group fields of a report row (both null for a namespace row and for totals).
fn group(group_by: Option<&str>, value: Option<&str>) -> [(&'static str, Value); 2] {
    [("group_by", json!(group_by)), ("group_value", json!(value))]
}

#[tokio::test]
async fn report_by_workload_has_groups_and_the_same_totals() {
    let (url, _pool) = seeded_database().await;
    let got: Value =
        serde_json::from_str(&report_of(&url, &["--by", "workload", "--cluster", "c2"]).await)
            .unwrap();
    let eur = Some("EUR");
    let none = group(None, None);
    let workload = |name| group(Some("workload"), Some(name));
    #[rustfmt::skip]
    let expected = json!({
        "from": null,
        "to": null,
        "cluster": "c2",
        "namespace": null,
        "by": "workload",
        // alpha's day 2 hours by workload (web in both, db in the first), its day 1 hour has no
        // groups and stays a namespace row; __idle__ has none either.
        "rows": [
            with(row("group", Some("c2"), Some("alpha"), eur, 2, 1, [1.0, 1.5, 1.5], [1.0, 1.5, 1.5], "1.000000", "unpriced"), &workload("Deployment/web")),
            with(row("group", Some("c2"), Some("alpha"), eur, 1, 0, [0.5; 3], [0.5; 3], "1.000000", "final"), &workload("StatefulSet/db")),
            with(row("namespace", Some("c2"), Some("alpha"), eur, 1, 0, [1.0; 3], [1.0; 3], "1.000000", "final"), &none),
            with(row("idle", Some("c2"), Some("__idle__"), eur, 2, 1, [0.0, 0.0, 2.0], [0.0, 0.0, 2.0], "0.999999", "unpriced"), &none),
        ],
        // As by namespace.
        "cluster_totals": [
            with(row("cluster_total", Some("c2"), None, eur, 3, 1, [2.5, 3.0, 5.0], [2.5, 3.0, 5.0], "3.999999", "unpriced"), &none),
        ],
        "totals": [
            with(row("total", None, None, eur, 3, 1, [2.5, 3.0, 5.0], [2.5, 3.0, 5.0], "3.999999", "unpriced"), &none),
        ],
    });
    assert_eq!(got, expected, "{got:#}");

    // A label nobody groups by: the namespace rows.
    let by_label: Value =
        serde_json::from_str(&report_of(&url, &["--by", "label:nobody", "--cluster", "c2"]).await)
            .unwrap();
    let by_namespace: Value =
        serde_json::from_str(&report_of(&url, &["--cluster", "c2"]).await).unwrap();
    let strip = |rows: &Value| -> Vec<Value> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("group_by");
                r.as_object_mut().unwrap().remove("group_value");
                r
            })
            .collect()
    };
    for key in ["rows", "cluster_totals", "totals"] {
        assert_eq!(strip(&by_label[key]), strip(&by_namespace[key]), "{key}");
    }

    // The table has a group column.
    let table = report(&url, &["--by", "workload", "--cluster", "c2"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(&header[..4], ["cluster", "namespace", "group", "windows"]);
    assert!(table
        .lines()
        .any(|l| l.starts_with("c2 ") && l.contains(" StatefulSet/db ") && l.ends_with(" group")));

    // An unknown --by is refused.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"))
        .args(["report", "--by", "team"])
        .env("DATABASE_URL", &url)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("label:<key>"));
}

/// Cluster k1, day 1, EUR, all final. 09:00 was written before cost sharing (own cost NULL).
/// At 10:00 the bill is 10: own shares platform 2, proj-a 3, proj-b 1, __idle__ 4; platform is
/// shared and idle cost is shared, both proportionally to own cost (3:1), so proj-a gets 1.5 +
/// 3 and proj-b 0.5 + 1. proj-a has groups by team and by workload, proj-b by team.
async fn sharing_database() -> String {
    let url = common::fresh_database().await;
    let sink = PostgresSink::connect(&url)
        .await
        .expect("connect and migrate");
    let pool = sink.pool().clone();
    let eur = Some("EUR");
    let at = |hour| format!("{D1} {hour}");
    let r = |namespace, hour, cpu, memory, cost| Rec {
        cluster: "k1",
        namespace,
        start: at(hour),
        status: "closed",
        cpu,
        memory,
        cost,
        currency: eur,
        cost_status: "final",
    };
    let shared = |group: (&'static str, &'static str), own, shared_cost, idle_cost| Extra {
        group_by: group.0,
        group_value: group.1,
        own_cost: Some(own),
        shared_cost,
        idle_cost,
        shared: false,
    };
    let ns_ = ("", "");
    let team = |value| ("label:team", value);
    let workload = |value| ("workload", value);
    #[rustfmt::skip]
    let rows = [
        (r("proj-a", "09:00", ns(1.0, 1.0), ns(1.0, 1.0), "1.000000"), NAMESPACE_RECORD),
        (r("__idle__", "09:00", idle(1.0), idle(1.0), "0.500000"), NAMESPACE_RECORD),
        (r("platform", "10:00", ns(1.0, 1.0), ns(2.0, 2.0), "0"), Extra { shared: true, ..shared(ns_, "2", "0", "0") }),
        (r("proj-a", "10:00", ns(2.0, 3.0), ns(4.0, 4.0), "7.5"), shared(ns_, "3", "1.5", "3")),
        (r("proj-b", "10:00", ns(1.0, 0.5), ns(1.0, 1.0), "2.5"), shared(ns_, "1", "0.5", "1")),
        (r("__idle__", "10:00", idle(2.0), idle(3.0), "0"), shared(ns_, "4", "0", "0")),
        (r("proj-a", "10:00", ns(1.5, 2.0), ns(3.0, 3.0), "5"), shared(team("red"), "2", "1", "2")),
        (r("proj-a", "10:00", ns(0.5, 1.0), ns(1.0, 1.0), "2.5"), shared(team("__unlabelled__"), "1", "0.5", "1")),
        (r("proj-a", "10:00", ns(2.0, 2.0), ns(2.0, 2.0), "5.5"), shared(workload("Deployment/web"), "2", "1", "2.5")),
        (r("proj-a", "10:00", ns(0.0, 1.0), ns(2.0, 2.0), "2"), shared(workload("StatefulSet/db"), "1", "0.5", "0.5")),
        (r("proj-b", "10:00", ns(1.0, 0.5), ns(1.0, 1.0), "2.5"), shared(team("blue"), "1", "0.5", "1")),
    ];
    for (rec, extra) in &rows {
        insert(&pool, rec, extra).await;
    }
    url
}

/// A report row with cost sharing figures.
#[allow(clippy::too_many_arguments)]
fn shared_row(
    kind: &str,
    cluster: Option<&str>,
    namespace: Option<&str>,
    windows: i64,
    cpu: [f64; 3],
    memory: [f64; 3],
    [cost, own, shared_cost, idle_cost]: [&str; 4],
    shared: bool,
) -> Value {
    with(
        row(
            kind,
            cluster,
            namespace,
            Some("EUR"),
            windows,
            0,
            cpu,
            memory,
            cost,
            "final",
        ),
        &[
            ("own_cost", json!(own)),
            ("shared_cost", json!(shared_cost)),
            ("idle_cost", json!(idle_cost)),
            ("shared", json!(shared)),
        ],
    )
}

#[tokio::test]
async fn views_and_report_show_shared_cost() {
    let url = sharing_database().await;
    let pool = PgPool::connect(&url).await.unwrap();

    // Namespace views: own, shared and idle cost appended; group records left out.
    assert_eq!(
        render(
            &pool,
            "usage_daily",
            &[
                "namespace",
                "windows",
                "cpu_allocated_core_hours",
                "cost",
                "own_cost",
                "shared_cost",
                "idle_cost",
                "shared"
            ],
            &by_namespace("day"),
        )
        .await,
        lines(
            "
            platform 1 1 0.000000 2.000000 0.000000 0.000000 true
            proj-a 2 4 8.500000 4.000000 1.500000 3.000000 false
            proj-b 1 1 2.500000 1.000000 0.500000 1.000000 false
            __idle__ 2 3 0.500000 4.500000 0.000000 0.000000 false
            "
        )
    );
    // The cluster: the bills once (09:00: 1.5, 10:00: 10); 2 of them moved from platform, 4
    // from __idle__ (0.5 stayed there, from 09:00).
    assert_eq!(
        render(
            &pool,
            "usage_monthly_cluster",
            &[
                "cluster_id",
                "windows",
                "namespaces",
                "cost",
                "idle_cost",
                "unallocated_cost",
                "shared_cost",
                "shared_idle_cost"
            ],
            "cluster_id",
        )
        .await,
        lines("k1 2 3 11.500000 0.500000 0.000000 2.000000 4.000000")
    );
    assert_eq!(
        render(
            &pool,
            "usage_groups_monthly",
            &[
                "namespace",
                "group_by",
                "group_value",
                "windows",
                "cpu_used_core_hours",
                "cost",
                "own_cost",
                "shared_cost",
                "idle_cost",
                "shared"
            ],
            "namespace, group_by, group_value COLLATE \"C\"",
        )
        .await,
        lines(
            "
            proj-a label:team __unlabelled__ 1 0.5 2.500000 1.000000 0.500000 1.000000 false
            proj-a label:team red 1 1.5 5.000000 2.000000 1.000000 2.000000 false
            proj-a workload Deployment/web 1 2 5.500000 2.000000 1.000000 2.500000 false
            proj-a workload StatefulSet/db 1 0 2.000000 1.000000 0.500000 0.500000 false
            proj-b label:team blue 1 1 2.500000 1.000000 0.500000 1.000000 false
            "
        )
    );

    // The report by namespace: the sharing columns appear.
    let k1 = Some("k1");
    let cluster_total = [5.0, 5.5, 9.0];
    let cluster_memory = [8.0, 8.0, 12.0];
    let total_money = ["11.500000", "11.500000", "2.000000", "4.000000"];
    let platform = shared_row(
        "namespace",
        k1,
        Some("platform"),
        1,
        [1.0; 3],
        [2.0; 3],
        ["0.000000", "2.000000", "0.000000", "0.000000"],
        true,
    );
    let proj_b = |kind| {
        shared_row(
            kind,
            k1,
            Some("proj-b"),
            1,
            [1.0, 0.5, 1.0],
            [1.0; 3],
            ["2.500000", "1.000000", "0.500000", "1.000000"],
            false,
        )
    };
    let idle_row = shared_row(
        "idle",
        k1,
        Some("__idle__"),
        2,
        [0.0, 0.0, 3.0],
        [0.0, 0.0, 4.0],
        ["0.500000", "4.500000", "0.000000", "0.000000"],
        false,
    );
    let totals = |groups: bool| {
        let extra = |v: Value| {
            if groups {
                with(v, &group(None, None))
            } else {
                v
            }
        };
        (
            vec![extra(shared_row(
                "cluster_total",
                k1,
                None,
                2,
                cluster_total,
                cluster_memory,
                total_money,
                true,
            ))],
            vec![extra(shared_row(
                "total",
                None,
                None,
                2,
                cluster_total,
                cluster_memory,
                total_money,
                true,
            ))],
        )
    };
    let got: Value = serde_json::from_str(&report_of(&url, &[]).await).unwrap();
    let (cluster_totals, grand) = totals(false);
    #[rustfmt::skip]
    let expected = json!({
        "from": null, "to": null, "cluster": null, "namespace": null,
        "rows": [
            platform,
            shared_row("namespace", k1, Some("proj-a"), 2, [3.0, 4.0, 4.0], [5.0; 3], ["8.500000", "4.000000", "1.500000", "3.000000"], false),
            proj_b("namespace"),
            idle_row,
        ],
        "cluster_totals": cluster_totals,
        "totals": grand,
    });
    assert_eq!(got, expected, "{got:#}");

    // By team: proj-a's 10:00 by team, its 09:00 (no groups) as a namespace row; same totals.
    let got: Value = serde_json::from_str(&report_of(&url, &["--by", "label:team"]).await).unwrap();
    let none = group(None, None);
    let team = |value| group(Some("label:team"), Some(value));
    let (cluster_totals, grand) = totals(true);
    #[rustfmt::skip]
    let expected = json!({
        "from": null, "to": null, "cluster": null, "namespace": null, "by": "label:team",
        "rows": [
            with(platform, &none),
            with(shared_row("group", k1, Some("proj-a"), 1, [1.5, 2.0, 2.0], [3.0; 3], ["5.000000", "2.000000", "1.000000", "2.000000"], false), &team("red")),
            with(shared_row("group", k1, Some("proj-a"), 1, [0.5, 1.0, 1.0], [1.0; 3], ["2.500000", "1.000000", "0.500000", "1.000000"], false), &team("__unlabelled__")),
            with(shared_row("namespace", k1, Some("proj-a"), 1, [1.0; 3], [1.0; 3], ["1.000000", "1.000000", "0.000000", "0.000000"], false), &none),
            with(proj_b("group"), &team("blue")),
            with(idle_row, &none),
        ],
        "cluster_totals": cluster_totals,
        "totals": grand,
    });
    assert_eq!(got, expected, "{got:#}");

    // By cluster: the totals only.
    let got: Value = serde_json::from_str(&report_of(&url, &["--by", "cluster"]).await).unwrap();
    let (cluster_totals, grand) = totals(false);
    let expected = json!({
        "from": null, "to": null, "cluster": null, "namespace": null, "by": "cluster",
        "cluster_totals": cluster_totals,
        "totals": grand,
    });
    assert_eq!(got, expected, "{got:#}");

    // CSV by workload of proj-a: the groups and the 09:00 namespace row sum to proj-a.
    let csv = report(
        &url,
        &[
            "--by",
            "workload",
            "--namespace",
            "proj-a",
            "--format",
            "csv",
        ],
    )
    .await;
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "cluster,namespace,group,windows,cpu_used_h,cpu_req_h,cpu_alloc_h,mem_used_GiBh,mem_alloc_GiBh,cost,own_cost,shared_cost,idle_cost,currency,cost_status,kind",
            "k1,proj-a,Deployment/web,1,2.000,2.000,2.000,2.000,2.000,5.5,2,1,2.5,EUR,final,group",
            "k1,proj-a,StatefulSet/db,1,0.000,1.000,1.000,2.000,2.000,2,1,0.5,0.5,EUR,final,group",
            "k1,proj-a,,1,1.000,1.000,1.000,1.000,1.000,1,1,0,0,EUR,final,namespace",
            "k1,TOTAL,,2,3.000,4.000,4.000,5.000,5.000,8.5,4,1.5,3,EUR,final,cluster_total",
            "TOTAL,,,2,3.000,4.000,4.000,5.000,5.000,8.5,4,1.5,3,EUR,final,total",
        ]
    );

    // The table by cluster: no namespace column.
    let table = report(&url, &["--by", "cluster"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "cluster",
            "windows",
            "cpu_used_h",
            "cpu_req_h",
            "cpu_alloc_h",
            "mem_used_GiBh",
            "mem_alloc_GiBh",
            "cost",
            "own_cost",
            "shared_cost",
            "idle_cost",
            "currency",
            "cost_status",
            "kind"
        ]
    );
    let k1_line: Vec<&str> = table.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(
        k1_line,
        [
            "k1",
            "2",
            "5.000",
            "5.500",
            "9.000",
            "8.000",
            "12.000",
            "11.5",
            "11.5",
            "2",
            "4",
            "EUR",
            "final",
            "cluster_total"
        ]
    );
}

/// A usage record of k1 at 2024-03-01 10:00, built from JSON so that fields added later with a
/// default do not break the test.
fn usage_record(
    namespace: &str,
    group: Option<(&str, &str)>,
    revision: i64,
    cost: i64,
    [own, shared_cost, idle_cost]: [i64; 3],
) -> usage_tracker::standard::UsageRecord {
    let start = 1_709_287_200_000_i64;
    serde_json::from_value(json!({
        "cluster_id": "k1",
        "cluster_name": "Cluster k1",
        "namespace": namespace,
        "window_start": start,
        "window_end": start + 3_600_000,
        "window_status": "closed",
        "revision": revision,
        "resources": [{
            "resource": "cpu", "unit": "core_seconds", "used": 1800.0, "requested": 3600.0,
            "limit": 0.0, "allocated": 3600.0, "unused": 1800.0,
        }],
        "costs": [],
        "cost_total_micros": cost,
        "currency": "EUR",
        "cost_status": "final",
        "group_by": group.map(|g| g.0),
        "group_value": group.map(|g| g.1),
        "own_cost_micros": own,
        "shared_cost_micros": shared_cost,
        "idle_cost_micros": idle_cost,
        "shared": false,
    }))
    .unwrap()
}

fn checkpoint(
    records: Vec<usage_tracker::standard::UsageRecord>,
    withdrawn: Vec<usage_tracker::standard::UsageRecord>,
) -> usage_tracker::accounting::Checkpoint {
    usage_tracker::accounting::Checkpoint {
        records,
        withdrawn,
        windows: Vec::new(),
        seen: Vec::new(),
        cost_lines: Vec::new(),
        evicted: Default::default(),
        watermark: None,
        cost_changes: Default::default(),
    }
}

#[tokio::test]
async fn sink_writes_and_withdraws_group_records_by_their_key() {
    let url = common::fresh_database().await;
    let sink = PostgresSink::connect(&url).await.unwrap();
    let (epoch, _) = sink.claim(0, "report-test", &[]).await.unwrap();
    let team = |value| Some(("label:team", value));
    let first = vec![
        usage_record(
            "proj-a",
            None,
            1,
            7_500_000,
            [3_000_000, 1_500_000, 3_000_000],
        ),
        usage_record(
            "proj-a",
            team("red"),
            1,
            5_000_000,
            [2_000_000, 1_000_000, 2_000_000],
        ),
        usage_record(
            "proj-a",
            team(""),
            1,
            2_500_000,
            [1_000_000, 500_000, 1_000_000],
        ),
        usage_record(
            "proj-a",
            Some(("workload", "Deployment/web")),
            2,
            7_500_000,
            [3_000_000, 1_500_000, 3_000_000],
        ),
    ];
    sink.commit(0, epoch, &checkpoint(first, Vec::new()), &[], &[])
        .await
        .unwrap();
    let figures = common::record_figures(&url).await;
    let key = |group_by: &str, value: &str| {
        (
            "k1".to_string(),
            "proj-a".to_string(),
            1_709_287_200_000_i64,
            group_by.to_string(),
            value.to_string(),
        )
    };
    assert_eq!(
        figures.keys().cloned().collect::<Vec<_>>(),
        [
            key("", ""),
            key("label:team", ""),
            key("label:team", "red"),
            key("workload", "Deployment/web")
        ]
    );
    let red = &figures[&key("label:team", "red")];
    assert_eq!(
        (
            red.cost_total.as_str(),
            red.own_cost.as_deref(),
            red.shared_cost.as_str(),
            red.idle_cost.as_str(),
            red.shared
        ),
        ("5.000000", Some("2.000000"), "1.000000", "2.000000", false)
    );

    // A new revision of the team groups: red all of it, the empty label value withdrawn; an
    // older revision of the workload group changes nothing; the namespace record stays.
    let second = vec![
        usage_record(
            "proj-a",
            team("red"),
            2,
            7_500_000,
            [3_000_000, 1_500_000, 3_000_000],
        ),
        usage_record(
            "proj-a",
            Some(("workload", "Deployment/web")),
            1,
            1,
            [1, 0, 0],
        ),
    ];
    let withdrawn = vec![usage_record("proj-a", team(""), 2, 0, [0, 0, 0])];
    sink.commit(0, epoch, &checkpoint(second, withdrawn), &[], &[])
        .await
        .unwrap();
    let figures = common::record_figures(&url).await;
    let costs: Vec<(&str, &str, &str)> = figures
        .iter()
        .map(|(k, f)| (k.3.as_str(), k.4.as_str(), f.cost_total.as_str()))
        .collect();
    assert_eq!(
        costs,
        [
            ("", "", "7.500000"),
            ("label:team", "red", "7.500000"),
            ("workload", "Deployment/web", "7.500000"),
        ]
    );

    // Readers of namespace figures see the namespace record only.
    assert_eq!(sink.snapshot().await.unwrap().len(), 1);
    assert_eq!(sink.snapshot_records(true).await.unwrap().len(), 3);
    assert_eq!(common::figures(&url).await.len(), 1);
}
