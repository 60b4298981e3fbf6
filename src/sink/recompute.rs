//! Requests to recompute past windows (`tracker_recompute_*`): made by `usage-tracker recompute`,
//! taken up by every slot's owner at its next checkpoint.

use sqlx::{PgPool, Row};

use crate::standard::EpochMillis;

/// A range of window starts to re-draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecomputeRequest {
    /// Request id.
    pub id: i64,
    /// First window start, inclusive.
    pub from_ms: EpochMillis,
    /// Last window start, exclusive.
    pub to_ms: EpochMillis,
}

/// How far a request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecomputeProgress {
    /// Slots whose owner re-drafted the range, with the number of cluster windows each held in it.
    pub done: Vec<(i32, i64)>,
    /// Slots the tracker has ever claimed.
    pub slots: Vec<i32>,
}

impl RecomputeProgress {
    /// Whether every slot claimed so far took the request up.
    pub fn complete(&self) -> bool {
        self.slots
            .iter()
            .all(|s| self.done.iter().any(|(d, _)| d == s))
    }
}

/// Files a request; returns its id.
pub async fn request(
    pool: &PgPool,
    from_ms: EpochMillis,
    to_ms: EpochMillis,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO tracker_recompute_requests (from_ms, to_ms) VALUES ($1, $2) RETURNING id",
    )
    .bind(from_ms)
    .bind(to_ms)
    .fetch_one(pool)
    .await
}

/// Requests `slot` has not taken up yet, oldest first.
pub async fn pending(pool: &PgPool, slot: i32) -> Result<Vec<RecomputeRequest>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.id, r.from_ms, r.to_ms FROM tracker_recompute_requests r
         WHERE NOT EXISTS (SELECT 1 FROM tracker_recompute_done d WHERE d.request_id = r.id AND d.slot = $1)
         ORDER BY r.id",
    )
    .bind(slot)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RecomputeRequest {
            id: r.get(0),
            from_ms: r.get(1),
            to_ms: r.get(2),
        })
        .collect())
}

/// Records that `slot` re-drafted `windows` cluster windows for request `id`, after the
/// checkpoint that carried them committed.
pub async fn done(pool: &PgPool, slot: i32, id: i64, windows: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tracker_recompute_done (request_id, slot, windows) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(slot)
    .bind(windows)
    .execute(pool)
    .await?;
    Ok(())
}

/// How far request `id` got.
pub async fn progress(pool: &PgPool, id: i64) -> Result<RecomputeProgress, sqlx::Error> {
    let done = sqlx::query(
        "SELECT slot, windows FROM tracker_recompute_done WHERE request_id = $1 ORDER BY slot",
    )
    .bind(id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let slots = sqlx::query_scalar("SELECT slot FROM tracker_slots ORDER BY slot")
        .fetch_all(pool)
        .await?;
    Ok(RecomputeProgress { done, slots })
}
