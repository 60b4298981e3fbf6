//! The transactional outbox (migrations/0003_outbox.sql): Kafka messages staged in a
//! checkpoint's transaction and published only after it commits.
//!
//! Publishing holds a share lock on the slot's row in `tracker_slots` from before it reads the
//! staged messages until it has deleted them. Claiming a slot updates that row, so a new owner
//! waits until a former owner's publication is over, and a former owner whose epoch is gone
//! publishes nothing. Re-publishing after a crash sends the same bytes again: a consumer may see
//! a (key, revision) twice, never with two contents.

use sqlx::{PgPool, Postgres, Row, Transaction};

use super::postgres::CommitError;

/// One Kafka message exactly as it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Topic.
    pub topic: String,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
    /// Headers (UTF-8 values), in order.
    pub headers: Vec<(String, String)>,
}

/// Stages `messages` for `slot` inside a checkpoint's transaction, in order.
pub(crate) async fn stage(
    tx: &mut Transaction<'_, Postgres>,
    slot: i32,
    messages: &[OutboxMessage],
) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let headers: Vec<String> = messages
        .iter()
        .map(|m| serde_json::to_string(&m.headers).expect("string pairs serialise"))
        .collect();
    sqlx::query(
        "INSERT INTO tracker_outbox (slot, topic, key, payload, headers)
         SELECT $1, t, k, p, h::jsonb
         FROM unnest($2::text[], $3::bytea[], $4::bytea[], $5::text[]) WITH ORDINALITY AS m(t, k, p, h, i)
         ORDER BY i",
    )
    .bind(slot)
    .bind(messages.iter().map(|m| m.topic.clone()).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.key.clone()).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.payload.clone()).collect::<Vec<_>>())
    .bind(headers)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The staged messages of one slot, read under the slot's share lock; publish them, then call
/// [`Pending::published`]. Dropping it instead leaves them staged.
pub struct Pending {
    tx: Transaction<'static, Postgres>,
    slot: i32,
    last_seq: Option<i64>,
    messages: Vec<OutboxMessage>,
}

impl Pending {
    /// Locks the slot for publication (refused with [`CommitError::Fenced`] when `epoch` is no
    /// longer the slot's) and reads what is staged, oldest first.
    pub async fn read(pool: &PgPool, slot: i32, epoch: i64) -> Result<Self, CommitError> {
        let mut tx = pool.begin().await?;
        // A publisher that stalls while holding the slot's lock (a paused process) must not keep
        // a new owner's claim waiting for ever: Postgres ends its session after a minute idle.
        sqlx::query("SET LOCAL idle_in_transaction_session_timeout = '60s'")
            .execute(&mut *tx)
            .await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT epoch FROM tracker_slots WHERE slot = $1 FOR SHARE")
                .bind(slot)
                .fetch_optional(&mut *tx)
                .await?;
        if current != Some(epoch) {
            return Err(CommitError::Fenced { slot });
        }
        let rows = sqlx::query(
            "SELECT seq, topic, key, payload, headers::text FROM tracker_outbox
             WHERE slot = $1 ORDER BY seq",
        )
        .bind(slot)
        .fetch_all(&mut *tx)
        .await?;
        let mut last_seq = None;
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            last_seq = Some(row.get::<i64, _>(0));
            let headers: String = row.get(4);
            messages.push(OutboxMessage {
                topic: row.get(1),
                key: row.get(2),
                payload: row.get(3),
                headers: serde_json::from_str(&headers)
                    .map_err(|e| CommitError::Database(sqlx::Error::Decode(Box::new(e))))?,
            });
        }
        Ok(Self {
            tx,
            slot,
            last_seq,
            messages,
        })
    }

    /// The messages to publish, oldest first.
    pub fn messages(&self) -> &[OutboxMessage] {
        &self.messages
    }

    /// Forgets the messages once the broker has acknowledged all of them, and releases the slot.
    pub async fn published(mut self) -> Result<(), sqlx::Error> {
        if let Some(last) = self.last_seq {
            sqlx::query("DELETE FROM tracker_outbox WHERE slot = $1 AND seq <= $2")
                .bind(self.slot)
                .bind(last)
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await
    }
}
