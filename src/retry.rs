//! One retry policy and one error classification for every stage that talks to a peer.
//!
//! A *transient* error (a peer down or overloaded, a timeout, a lost connection, a registry
//! 5xx/429) may succeed later: it is retried with capped exponential [`Backoff`], and the
//! pipeline pauses meanwhile (nothing is dropped). A *permanent* one (a constraint or encoding
//! error in Postgres, a message the broker will never take) fails the same way every time: it is
//! never retried, but reported, so that no run can hang on it forever.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::sink::kafka::PublishError;
use crate::sink::postgres::CommitError;
use crate::standard::wire::WireError;

/// Capped exponential backoff: 200 ms, 400 ms, ... up to 30 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Starts at `initial`, doubles up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { next: initial, max }
    }

    /// The delay to wait now; the next one is twice as long (at most `max`).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Sleeps for [`Backoff::next_delay`] and returns how long it slept.
    pub async fn wait(&mut self) -> Duration {
        let delay = self.next_delay();
        tokio::time::sleep(delay).await;
        delay
    }
}

/// Whether an error may go away by itself.
pub trait Transience {
    /// `true`: retry later; `false`: it will fail the same way every time.
    fn is_transient(&self) -> bool;
}

impl Transience for sqlx::Error {
    fn is_transient(&self) -> bool {
        match self {
            // SQLSTATE classes: 08 connection, 40 rollback (serialization, deadlock),
            // 53 insufficient resources, 57 operator intervention (shutdown, cancel),
            // 58 system error. Data (22), constraint (23), syntax or privilege (42) ... are
            // the statement's fault and fail again.
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                matches!(&code[..2.min(code.len())], "08" | "40" | "53" | "57" | "58")
            }),
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => true,
            _ => false,
        }
    }
}

impl Transience for KafkaError {
    fn is_transient(&self) -> bool {
        use RDKafkaErrorCode::*;
        !matches!(
            self.rdkafka_error_code(),
            Some(
                MessageSizeTooLarge
                    | InvalidMessageSize
                    | InvalidMessage
                    | InvalidRecord
                    | MessageBatchTooLarge
                    | InvalidRequiredAcks
                    | TopicAuthorizationFailed
                    | ClusterAuthorizationFailed
                    | InvalidTopic
            )
        )
    }
}

impl Transience for WireError {
    fn is_transient(&self) -> bool {
        self.is_retriable()
    }
}

impl Transience for PublishError {
    fn is_transient(&self) -> bool {
        match self {
            PublishError::Encode(e) => e.is_transient(),
            PublishError::Produce { source, .. } => source.is_transient(),
        }
    }
}

impl Transience for CommitError {
    fn is_transient(&self) -> bool {
        match self {
            CommitError::Fenced { .. } => false,
            CommitError::Database(e) => e.is_transient(),
        }
    }
}

impl Transience for anyhow::Error {
    /// Looks through the context for a classified error; anything unclassified is transient
    /// (an unknown failure of a peer is retried rather than given up on).
    fn is_transient(&self) -> bool {
        for cause in self.chain() {
            if let Some(e) = cause.downcast_ref::<PublishError>() {
                return e.is_transient();
            }
            if let Some(e) = cause.downcast_ref::<CommitError>() {
                return e.is_transient();
            }
            if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
                return e.is_transient();
            }
            if let Some(e) = cause.downcast_ref::<KafkaError>() {
                return e.is_transient();
            }
            if let Some(e) = cause.downcast_ref::<WireError>() {
                return e.is_transient();
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn a_message_the_broker_will_never_take_is_permanent() {
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(!too_large.is_transient());
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(timed_out.is_transient());
        let publish = PublishError::Produce {
            topic: "t".into(),
            source: too_large,
        };
        assert!(!anyhow::Error::new(publish)
            .context("checkpoint")
            .is_transient());
    }

    #[test]
    fn a_lost_database_is_transient_and_a_fence_is_not() {
        assert!(sqlx::Error::PoolTimedOut.is_transient());
        assert!(!sqlx::Error::RowNotFound.is_transient());
        assert!(!CommitError::Fenced { slot: 0 }.is_transient());
        assert!(anyhow::anyhow!("something unclassified").is_transient());
    }
}
