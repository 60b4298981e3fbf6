//! The admin UI's views (migrations/0002_ui_views.sql) and `usage-tracker report`, on known rows
//! of `usage_records` in a fresh database.
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

/// A fresh database with the migrations applied and [`records`] inserted; returns its URL.
async fn seeded_database() -> (String, PgPool) {
    let url = common::fresh_database().await;
    let sink = PostgresSink::connect(&url)
        .await
        .expect("connect and migrate");
    let pool = sink.pool().clone();
    for r in records() {
        sqlx::query(
            "INSERT INTO usage_records (cluster_id, namespace, window_start, window_end,
                 cluster_name, status, revision,
                 cpu_used_core_seconds, cpu_requested_core_seconds, cpu_allocated_core_seconds,
                 cpu_unused_core_seconds, memory_used_byte_seconds, memory_requested_byte_seconds,
                 memory_allocated_byte_seconds, memory_unused_byte_seconds,
                 resources, costs, cost_total, currency, cost_status)
             VALUES ($1, $2, ($3 || ':00Z')::timestamptz, ($3 || ':00Z')::timestamptz + interval '1 hour',
                 'name of ' || $1, $4, 1, $5, $6, $7, $8, $9, $10, $11, $12,
                 '[]', '[]', $13::numeric, $14, $15)",
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
        .execute(&pool)
        .await
        .unwrap();
    }
    // Storage and network on one record: 10 GiB for the hour, 1000 bytes in, 500 out.
    sqlx::query(
        "UPDATE usage_records SET storage_used_byte_seconds = 10 * 3600 * 1073741824.0,
             network_rx_bytes = 1000, network_tx_bytes = 500
         WHERE cluster_id = 'c1' AND namespace = 'alpha' AND window_start = '2024-03-01T11:00:00Z'",
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
}

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
