//! `usage-tracker generate`: publish synthetic demo input to Kafka.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::Settings;
use crate::generate;
use crate::kafka::TopicSpec;
use crate::standard::wire::RecordEncoder;
use crate::standard::{CostEvent, UsageEvent};

/// Publish the demo cluster's usage and bill (deterministic for a seed).
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Configuration file (TOML), for connections and topics.
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// Hours of data.
    #[arg(long, default_value_t = 3)]
    hours: u32,
    /// Sampling period in seconds.
    #[arg(long, default_value_t = 60)]
    period: u32,
    /// Start (RFC 3339, UTC-aligned to the hour); default: the start of the hour `hours + 1` ago.
    #[arg(long)]
    start: Option<humantime::Timestamp>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl GenerateArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let settings = Settings::load(self.config.as_deref())?;
        let start = match self.start {
            Some(t) => {
                let system: std::time::SystemTime = t.into();
                system.duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64
            }
            None => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_millis() as i64;
                (now / 3_600_000 - i64::from(self.hours) - 1) * 3_600_000
            }
        };
        let input = generate::demo(start, self.hours, self.period, self.seed);
        let kafka = settings.kafka();
        let t = &settings.topics;
        kafka
            .ensure_topics(&[
                TopicSpec::new(&t.usage_events, t.partitions, t.replication),
                TopicSpec::new(&t.cost_events, t.partitions, t.replication),
            ])
            .await
            .context("creating input topics")?;
        let registry = settings.registry()?.sr_settings()?;
        let producer: FutureProducer = kafka
            .producer_config()
            .set("linger.ms", "20")
            .set("partitioner", "murmur2_random")
            .create()?;
        let usage_encoder = RecordEncoder::<UsageEvent>::new(registry.clone(), &t.usage_events);
        let mut sends = Vec::with_capacity(input.usage.len());
        for event in &input.usage {
            sends.push((
                event.subject.cluster_id.clone(),
                usage_encoder.encode(event).await?,
            ));
        }
        send_all(&producer, &t.usage_events, &sends).await?;
        let cost_encoder = RecordEncoder::<CostEvent>::new(registry, &t.cost_events);
        let mut sends = Vec::with_capacity(input.costs.len());
        for event in &input.costs {
            sends.push((
                event.cluster_id.clone().unwrap_or_default(),
                cost_encoder.encode(event).await?,
            ));
        }
        send_all(&producer, &t.cost_events, &sends).await?;
        eprintln!(
            "published {} usage events and {} bill lines",
            input.usage.len(),
            input.costs.len()
        );
        Ok(ExitCode::SUCCESS)
    }
}

async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    messages: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    let sends = messages.iter().map(|(key, payload)| {
        producer.send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(30),
        )
    });
    for result in futures::future::join_all(sends).await {
        result
            .map_err(|(e, _)| e)
            .with_context(|| format!("producing to {topic}"))?;
    }
    Ok(())
}
