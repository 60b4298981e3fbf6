//! PostgreSQL: the `usage_records` table the admin UI reads, and the checkpoint store. Report
//! queries over the table are in [`crate::report`].
//!
//! A checkpoint is one transaction: records, window state, dedup keys, bill lines, evictions and
//! the input offsets they cover. Either all of it is there after a crash or none of it, so a
//! restart resumes from exactly the state that produced the last committed records.

use std::collections::BTreeMap;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use crate::accounting::Checkpoint;
use crate::measure::Resource;
use crate::standard::{CostCategory, CostStatus, EpochMillis, UsageRecord};
use crate::window::{CostLine, PersistedWindow};

use super::outbox::{self, OutboxMessage, Pending};

pub use crate::report::{NamespaceTotals, ReportRow, TotalsLevel};
use crate::report::{ReportBy, ReportQuery};

/// Where one input partition stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPosition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to read.
    pub next_offset: i64,
    /// Max event time seen (for the watermark).
    pub max_event_time: Option<EpochMillis>,
}

/// Everything a restart of one slot needs.
#[derive(Debug, Default)]
pub struct RestoredState {
    /// Input positions.
    pub positions: Vec<PartitionPosition>,
    /// Watermark reached.
    pub watermark: Option<EpochMillis>,
    /// Window state.
    pub windows: Vec<(String, EpochMillis, PersistedWindow)>,
    /// Dedup keys.
    pub seen: Vec<(EpochMillis, u128)>,
    /// Bill lines.
    pub cost_lines: Vec<CostLine>,
}

/// Longest wait for a pooled connection (sqlx keeps retrying a refused connection until then).
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The Postgres side of the tracker.
#[derive(Debug, Clone)]
pub struct PostgresSink {
    pool: PgPool,
}

impl PostgresSink {
    /// Connects and applies the embedded migrations.
    ///
    /// Getting a connection gives up after [`ACQUIRE_TIMEOUT`]: while the database is down, a
    /// checkpoint fails (and is retried) within seconds instead of waiting silently.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The connection pool (for reports and readiness).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Takes ownership of a slot (fencing any previous owner) and loads its last committed
    /// checkpoint; `topics` are the input topics whose partition `slot` belongs to it.
    pub async fn claim(
        &self,
        slot: i32,
        owner: &str,
        topics: &[&str],
    ) -> Result<(i64, RestoredState), sqlx::Error> {
        let (epoch, watermark): (i64, Option<i64>) = sqlx::query_as(
            "INSERT INTO tracker_slots (slot, epoch, owner) VALUES ($1, 1, $2)
             ON CONFLICT (slot) DO UPDATE SET epoch = tracker_slots.epoch + 1, owner = excluded.owner
             RETURNING epoch, watermark",
        )
        .bind(slot)
        .bind(owner)
        .fetch_one(&self.pool)
        .await?;
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let positions = sqlx::query(
            "SELECT topic, partition, next_offset, max_event_time FROM tracker_offsets
             WHERE partition = $1 AND topic = ANY($2)",
        )
        .bind(slot)
        .bind(&topics)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| PartitionPosition {
            topic: r.get(0),
            partition: r.get(1),
            next_offset: r.get(2),
            max_event_time: r.get(3),
        })
        .collect();
        let mut windows = Vec::new();
        for row in sqlx::query(
            "SELECT cluster_id, window_start, state FROM tracker_windows WHERE slot = $1",
        )
        .bind(slot)
        .fetch_all(&self.pool)
        .await?
        {
            let state: sqlx::types::Json<PersistedWindow> = row.try_get(2)?;
            windows.push((row.get(0), row.get(1), state.0));
        }
        let seen =
            sqlx::query("SELECT window_start, dedup_key FROM tracker_seen_events WHERE slot = $1")
                .bind(slot)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .filter_map(|r| {
                    let key: Vec<u8> = r.get(1);
                    Some((r.get(0), u128::from_be_bytes(key.try_into().ok()?)))
                })
                .collect();
        let cost_lines = sqlx::query(
            "SELECT source, id, revision, cluster_id, namespace, category, status, currency, period_start,
                    period_end, amount_micros, meter
             FROM tracker_cost_lines WHERE slot = $1",
        )
        .bind(slot)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| CostLine {
            source: r.get(0),
            id: r.get(1),
            revision: r.get(2),
            cluster_id: r.get(3),
            namespace: r.get(4),
            category: parse_category(r.get(5)),
            status: if r.get::<String, _>(6) == "final" { CostStatus::Final } else { CostStatus::Estimated },
            currency: r.get(7),
            start: r.get(8),
            end: r.get(9),
            amount: r.get(10),
            meter: r.get(11),
        })
        .collect();
        let restored = RestoredState {
            positions,
            watermark,
            windows,
            seen,
            cost_lines,
        };
        Ok((epoch, restored))
    }

    /// Commits a slot's checkpoint, the input positions it covers and the Kafka messages it
    /// publishes (staged in the outbox), atomically, unless another instance has claimed the
    /// slot since `epoch` (then nothing is written).
    pub async fn commit(
        &self,
        slot: i32,
        epoch: i64,
        checkpoint: &Checkpoint,
        positions: &[PartitionPosition],
        messages: &[OutboxMessage],
    ) -> Result<(), CommitError> {
        let mut tx = self.pool.begin().await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT epoch FROM tracker_slots WHERE slot = $1 FOR UPDATE")
                .bind(slot)
                .fetch_optional(&mut *tx)
                .await?;
        if current != Some(epoch) {
            return Err(CommitError::Fenced { slot });
        }
        upsert_records(&mut tx, &checkpoint.records).await?;
        delete_records(&mut tx, &checkpoint.withdrawn).await?;
        save_windows(&mut tx, slot, &checkpoint.windows).await?;
        save_seen(&mut tx, slot, &checkpoint.seen).await?;
        save_cost_lines(&mut tx, slot, &checkpoint.cost_lines).await?;
        delete_evicted(&mut tx, slot, checkpoint).await?;
        save_positions(&mut tx, slot, positions, checkpoint.watermark).await?;
        outbox::stage(&mut tx, slot, messages).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The slot's staged messages, locked for publication by the owner of `epoch`.
    pub async fn pending_outbox(&self, slot: i32, epoch: i64) -> Result<Pending, CommitError> {
        Pending::read(&self.pool, slot, epoch).await
    }
}

/// A checkpoint that could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Another instance owns the slot now; this instance's uncommitted work there is void.
    #[error("slot {slot} was claimed by another instance")]
    Fenced {
        /// The slot.
        slot: i32,
    },
    /// The database failed; retry.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn parse_category(text: String) -> CostCategory {
    serde_json::from_value(serde_json::Value::String(text)).unwrap_or(CostCategory::Other)
}

fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => unreachable!("unit enums serialise to strings"),
    }
}

/// One multi-row upsert; an older revision never overwrites a newer one.
async fn upsert_records(
    tx: &mut Transaction<'_, Postgres>,
    records: &[UsageRecord],
) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let mut cols = RecordColumns::default();
    for r in records {
        cols.push(r);
    }
    sqlx::query(
        r#"
        INSERT INTO usage_records (
            cluster_id, namespace, window_start, window_end, cluster_name, status, revision,
            cpu_used_core_seconds, cpu_requested_core_seconds, cpu_limit_core_seconds,
            cpu_allocated_core_seconds, cpu_unused_core_seconds,
            memory_used_byte_seconds, memory_requested_byte_seconds, memory_limit_byte_seconds,
            memory_allocated_byte_seconds, memory_unused_byte_seconds,
            storage_used_byte_seconds, network_rx_bytes, network_tx_bytes, gpu_used_gpu_seconds,
            resources, costs, cost_total, currency, cost_status, updated_at,
            group_by, group_value, own_cost, shared_cost, idle_cost, shared)
        SELECT c, n, to_timestamp(ws / 1000.0), to_timestamp(we / 1000.0), cn, st, rev,
               cu, cr, cl, ca, cun, mu, mr, ml, ma, mun, su, nrx, ntx, gu,
               res::jsonb, cost::jsonb, total::numeric / 1000000, cur, cs, now(),
               gb, gv, own::numeric / 1000000, sc::numeric / 1000000, ic::numeric / 1000000, sh
        FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[],
                    $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[],
                    $13::float8[], $14::float8[], $15::float8[], $16::float8[], $17::float8[],
                    $18::float8[], $19::float8[], $20::float8[], $21::float8[],
                    $22::text[], $23::text[], $24::bigint[], $25::text[], $26::text[],
                    $27::text[], $28::text[], $29::bigint[], $30::bigint[], $31::bigint[], $32::bool[])
             AS t(c, n, ws, we, cn, st, rev, cu, cr, cl, ca, cun, mu, mr, ml, ma, mun, su, nrx, ntx, gu,
                  res, cost, total, cur, cs, gb, gv, own, sc, ic, sh)
        ON CONFLICT (cluster_id, namespace, window_start, group_by, group_value) DO UPDATE SET
            window_end = excluded.window_end, cluster_name = excluded.cluster_name,
            status = excluded.status, revision = excluded.revision,
            cpu_used_core_seconds = excluded.cpu_used_core_seconds,
            cpu_requested_core_seconds = excluded.cpu_requested_core_seconds,
            cpu_limit_core_seconds = excluded.cpu_limit_core_seconds,
            cpu_allocated_core_seconds = excluded.cpu_allocated_core_seconds,
            cpu_unused_core_seconds = excluded.cpu_unused_core_seconds,
            memory_used_byte_seconds = excluded.memory_used_byte_seconds,
            memory_requested_byte_seconds = excluded.memory_requested_byte_seconds,
            memory_limit_byte_seconds = excluded.memory_limit_byte_seconds,
            memory_allocated_byte_seconds = excluded.memory_allocated_byte_seconds,
            memory_unused_byte_seconds = excluded.memory_unused_byte_seconds,
            storage_used_byte_seconds = excluded.storage_used_byte_seconds,
            network_rx_bytes = excluded.network_rx_bytes, network_tx_bytes = excluded.network_tx_bytes,
            gpu_used_gpu_seconds = excluded.gpu_used_gpu_seconds,
            resources = excluded.resources, costs = excluded.costs, cost_total = excluded.cost_total,
            currency = excluded.currency, cost_status = excluded.cost_status, updated_at = excluded.updated_at,
            own_cost = excluded.own_cost, shared_cost = excluded.shared_cost,
            idle_cost = excluded.idle_cost, shared = excluded.shared
        WHERE usage_records.revision <= excluded.revision
        "#,
    )
    .bind(cols.cluster_id)
    .bind(cols.namespace)
    .bind(cols.window_start)
    .bind(cols.window_end)
    .bind(cols.cluster_name)
    .bind(cols.status)
    .bind(cols.revision)
    .bind(&cols.figures[0])
    .bind(&cols.figures[1])
    .bind(&cols.figures[2])
    .bind(&cols.figures[3])
    .bind(&cols.figures[4])
    .bind(&cols.figures[5])
    .bind(&cols.figures[6])
    .bind(&cols.figures[7])
    .bind(&cols.figures[8])
    .bind(&cols.figures[9])
    .bind(&cols.figures[10])
    .bind(&cols.figures[11])
    .bind(&cols.figures[12])
    .bind(&cols.figures[13])
    .bind(cols.resources)
    .bind(cols.costs)
    .bind(cols.cost_total)
    .bind(cols.currency)
    .bind(cols.cost_status)
    .bind(cols.group_by)
    .bind(cols.group_value)
    .bind(cols.own_cost)
    .bind(cols.shared_cost)
    .bind(cols.idle_cost)
    .bind(cols.shared)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes withdrawn records, unless a newer revision is already stored.
async fn delete_records(
    tx: &mut Transaction<'_, Postgres>,
    records: &[UsageRecord],
) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM usage_records r
         USING unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])
             AS t(c, n, ws, gb, gv, rev)
         WHERE r.cluster_id = t.c AND r.namespace = t.n AND r.window_start = to_timestamp(t.ws / 1000.0)
           AND r.group_by = t.gb AND r.group_value = t.gv AND r.revision <= t.rev",
    )
    .bind(records.iter().map(|r| r.cluster_id.clone()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.namespace.clone()).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.window_start).collect::<Vec<_>>())
    .bind(records.iter().map(group_by).collect::<Vec<_>>())
    .bind(records.iter().map(group_value).collect::<Vec<_>>())
    .bind(records.iter().map(|r| r.revision).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Column arrays for the UNNEST upsert.
#[derive(Default)]
struct RecordColumns {
    cluster_id: Vec<String>,
    namespace: Vec<String>,
    window_start: Vec<i64>,
    window_end: Vec<i64>,
    cluster_name: Vec<Option<String>>,
    status: Vec<String>,
    revision: Vec<i64>,
    /// cpu used/requested/limit/allocated/unused, memory the same, storage used, rx, tx, gpu used.
    figures: [Vec<f64>; 14],
    resources: Vec<String>,
    costs: Vec<String>,
    cost_total: Vec<i64>,
    currency: Vec<Option<String>>,
    cost_status: Vec<String>,
    group_by: Vec<String>,
    group_value: Vec<String>,
    own_cost: Vec<Option<i64>>,
    shared_cost: Vec<i64>,
    idle_cost: Vec<i64>,
    shared: Vec<bool>,
}

/// `group_by` column of a record: `''` for a namespace record (the column is in the key, so it
/// is never NULL).
fn group_by(record: &UsageRecord) -> String {
    record.group_by.clone().unwrap_or_default()
}

/// `group_value` column of a record: `''` for a namespace record.
fn group_value(record: &UsageRecord) -> String {
    record.group_value.clone().unwrap_or_default()
}

impl RecordColumns {
    fn push(&mut self, r: &UsageRecord) {
        self.cluster_id.push(r.cluster_id.clone());
        self.namespace.push(r.namespace.clone());
        self.window_start.push(r.window_start);
        self.window_end.push(r.window_end);
        self.cluster_name.push(r.cluster_name.clone());
        self.status.push(enum_text(&r.window_status));
        self.revision.push(r.revision);
        let of = |resource: Resource| r.resources.iter().find(|u| u.resource == resource.name());
        let mut figures = [0.0; 14];
        for (base, resource) in [(0, Resource::Cpu), (5, Resource::Memory)] {
            if let Some(u) = of(resource) {
                figures[base..base + 5].copy_from_slice(&[
                    u.used,
                    u.requested,
                    u.limit,
                    u.allocated,
                    u.unused,
                ]);
            }
        }
        for (at, resource) in [
            (10, Resource::Storage),
            (11, Resource::NetworkRx),
            (12, Resource::NetworkTx),
            (13, Resource::Gpu),
        ] {
            figures[at] = of(resource).map_or(0.0, |u| u.used);
        }
        for (column, value) in self.figures.iter_mut().zip(figures) {
            column.push(value);
        }
        self.resources
            .push(serde_json::to_string(&r.resources).expect("serialisable"));
        self.costs
            .push(serde_json::to_string(&r.costs).expect("serialisable"));
        self.cost_total.push(r.cost_total_micros);
        self.currency.push(r.currency.clone());
        self.cost_status.push(enum_text(&r.cost_status));
        self.group_by.push(group_by(r));
        self.group_value.push(group_value(r));
        self.own_cost.push(r.own_cost_micros);
        self.shared_cost.push(r.shared_cost_micros.unwrap_or(0));
        self.idle_cost.push(r.idle_cost_micros.unwrap_or(0));
        self.shared.push(r.shared);
    }
}

async fn save_windows(
    tx: &mut Transaction<'_, Postgres>,
    slot: i32,
    windows: &[(std::sync::Arc<str>, EpochMillis, PersistedWindow)],
) -> Result<(), sqlx::Error> {
    if windows.is_empty() {
        return Ok(());
    }
    let clusters: Vec<String> = windows.iter().map(|w| w.0.to_string()).collect();
    let starts: Vec<i64> = windows.iter().map(|w| w.1).collect();
    let states: Vec<String> = windows
        .iter()
        .map(|w| serde_json::to_string(&w.2).expect("serialisable"))
        .collect();
    sqlx::query(
        "INSERT INTO tracker_windows (slot, cluster_id, window_start, state)
         SELECT $4, c, s, st::jsonb FROM unnest($1::text[], $2::bigint[], $3::text[]) AS t(c, s, st)
         ON CONFLICT (slot, cluster_id, window_start) DO UPDATE SET state = excluded.state",
    )
    .bind(clusters)
    .bind(starts)
    .bind(states)
    .bind(slot)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn save_seen(
    tx: &mut Transaction<'_, Postgres>,
    slot: i32,
    seen: &[(EpochMillis, u128)],
) -> Result<(), sqlx::Error> {
    if seen.is_empty() {
        return Ok(());
    }
    let starts: Vec<i64> = seen.iter().map(|s| s.0).collect();
    let keys: Vec<Vec<u8>> = seen.iter().map(|s| s.1.to_be_bytes().to_vec()).collect();
    sqlx::query(
        "INSERT INTO tracker_seen_events (slot, window_start, dedup_key)
         SELECT $3, s, k FROM unnest($1::bigint[], $2::bytea[]) AS t(s, k) ON CONFLICT DO NOTHING",
    )
    .bind(starts)
    .bind(keys)
    .bind(slot)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn save_cost_lines(
    tx: &mut Transaction<'_, Postgres>,
    slot: i32,
    lines: &[CostLine],
) -> Result<(), sqlx::Error> {
    if lines.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&CostLine) -> String| lines.iter().map(f).collect::<Vec<_>>();
    let num = |f: fn(&CostLine) -> i64| lines.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO tracker_cost_lines (slot, source, id, revision, cluster_id, namespace, category, status,
                                         currency, period_start, period_end, amount_micros, meter)
         SELECT $12, * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                                   $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[],
                                   $13::text[])
         ON CONFLICT (slot, source, id) DO UPDATE SET
            revision = excluded.revision, cluster_id = excluded.cluster_id, namespace = excluded.namespace,
            category = excluded.category, status = excluded.status, currency = excluded.currency,
            period_start = excluded.period_start, period_end = excluded.period_end,
            amount_micros = excluded.amount_micros, meter = excluded.meter",
    )
    .bind(col(|l| l.source.clone()))
    .bind(col(|l| l.id.clone()))
    .bind(num(|l| l.revision))
    .bind(col(|l| l.cluster_id.clone()))
    .bind(lines.iter().map(|l| l.namespace.clone()).collect::<Vec<_>>())
    .bind(col(|l| enum_text(&l.category)))
    .bind(col(|l| enum_text(&l.status)))
    .bind(col(|l| l.currency.clone()))
    .bind(num(|l| l.start))
    .bind(num(|l| l.end))
    .bind(num(|l| l.amount))
    .bind(slot)
    .bind(lines.iter().map(|l| l.meter.clone()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn delete_evicted(
    tx: &mut Transaction<'_, Postgres>,
    slot: i32,
    checkpoint: &Checkpoint,
) -> Result<(), sqlx::Error> {
    let evicted = &checkpoint.evicted;
    if !evicted.windows.is_empty() {
        let clusters: Vec<String> = evicted.windows.iter().map(|w| w.0.to_string()).collect();
        let starts: Vec<i64> = evicted.windows.iter().map(|w| w.1).collect();
        sqlx::query(
            "DELETE FROM tracker_windows w USING unnest($1::text[], $2::bigint[]) AS t(c, s)
             WHERE w.slot = $3 AND w.cluster_id = t.c AND w.window_start = t.s",
        )
        .bind(clusters)
        .bind(&starts)
        .bind(slot)
        .execute(&mut **tx)
        .await?;
        let oldest_kept = starts.iter().max().copied().unwrap_or(i64::MIN);
        sqlx::query("DELETE FROM tracker_seen_events WHERE slot = $2 AND window_start <= $1")
            .bind(oldest_kept)
            .bind(slot)
            .execute(&mut **tx)
            .await?;
    }
    if !evicted.cost_lines.is_empty() {
        let sources: Vec<String> = evicted.cost_lines.iter().map(|l| l.0.clone()).collect();
        let ids: Vec<String> = evicted.cost_lines.iter().map(|l| l.1.clone()).collect();
        sqlx::query(
            "DELETE FROM tracker_cost_lines l USING unnest($1::text[], $2::text[]) AS t(s, i)
             WHERE l.slot = $3 AND l.source = t.s AND l.id = t.i",
        )
        .bind(sources)
        .bind(ids)
        .bind(slot)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn save_positions(
    tx: &mut Transaction<'_, Postgres>,
    slot: i32,
    positions: &[PartitionPosition],
    watermark: Option<EpochMillis>,
) -> Result<(), sqlx::Error> {
    let topics: Vec<String> = positions.iter().map(|p| p.topic.clone()).collect();
    let partitions: Vec<i32> = positions.iter().map(|p| p.partition).collect();
    let offsets: Vec<i64> = positions.iter().map(|p| p.next_offset).collect();
    let times: Vec<Option<i64>> = positions.iter().map(|p| p.max_event_time).collect();
    sqlx::query(
        "INSERT INTO tracker_offsets (topic, partition, next_offset, max_event_time)
         SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[])
         ON CONFLICT (topic, partition) DO UPDATE SET
            next_offset = excluded.next_offset, max_event_time = excluded.max_event_time",
    )
    .bind(topics)
    .bind(partitions)
    .bind(offsets)
    .bind(times)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE tracker_slots SET watermark = $2 WHERE slot = $1")
        .bind(slot)
        .bind(watermark)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The key of a stored record: cluster, namespace, window start (epoch ms), `group_by` and
/// `group_value` (both `''` for a namespace record).
pub type RecordKey = (String, String, EpochMillis, String, String);

impl PostgresSink {
    /// Usage and cost per namespace with totals: [`crate::report::report`] by namespace (the
    /// report queries live in [`crate::report`], apart from this sink).
    pub async fn namespace_totals(
        &self,
        from: Option<EpochMillis>,
        to: Option<EpochMillis>,
        cluster: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Vec<NamespaceTotals>, sqlx::Error> {
        let query = ReportQuery {
            from,
            to,
            cluster: cluster.map(str::to_owned),
            namespace: namespace.map(str::to_owned),
            by: ReportBy::Namespace,
        };
        crate::report::report(&self.pool, &query).await
    }

    /// The current row of every namespace record, keyed by (cluster, namespace, window start),
    /// for comparisons in tests and tools: (status, revision, resources, cost_total).
    pub async fn snapshot(
        &self,
    ) -> Result<BTreeMap<(String, String, i64), (String, i64, String, String)>, sqlx::Error> {
        Ok(self
            .snapshot_records(false)
            .await?
            .into_iter()
            .map(|((cluster, namespace, start, _, _), row)| ((cluster, namespace, start), row))
            .collect())
    }

    /// As [`Self::snapshot`] with the full key, group records included when `groups`.
    pub async fn snapshot_records(
        &self,
        groups: bool,
    ) -> Result<BTreeMap<RecordKey, (String, i64, String, String)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT cluster_id, namespace, (extract(epoch from window_start) * 1000)::bigint,
                    group_by, group_value, status, revision, resources::text, cost_total::text
             FROM usage_records WHERE $1 OR group_by = ''",
        )
        .bind(groups)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)),
                    (r.get(5), r.get(6), r.get(7), r.get(8)),
                )
            })
            .collect())
    }
}
