//! `usage-tracker generate`: synthetic input for demos, tests and benchmarks.
//!
//! Without `--scenario`: the demo cluster as UsageEvents and CostEvents on the standard topics.
//! With `--scenario NAME`: one of the three deployments as Elastic Agent / Metricbeat documents
//! on their topics (as the agents would publish them), plus its bill files in `--out`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;

use super::publish::EventPublisher;
use crate::config::Settings;
use crate::generate::{self, scenario};
use crate::standard::EpochMillis;
use crate::time::epoch_ms;

/// Publish synthetic input (deterministic for a seed).
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Configuration file (TOML), for connections and topics.
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// A deployment scenario: single-user-gcp, team-databricks or hybrid-onprem-gcp.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(scenario::SCENARIOS))]
    scenario: Option<String>,
    /// Where a scenario's files go: documents/<topic>.ndjson and its bill files.
    #[arg(long, default_value = "target/scenario")]
    out: PathBuf,
    /// Write a scenario's files only; publish no documents.
    #[arg(long)]
    no_publish: bool,
    /// Prefix of the topics a scenario's documents go to (its `[elastic] topics` must name them
    /// so): keeps runs on one broker apart.
    #[arg(long, default_value = "")]
    topic_prefix: String,
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
                let ms = epoch_ms(t.into())?;
                anyhow::ensure!(ms % 3_600_000 == 0, "--start must be on a full hour (UTC)");
                ms
            }
            None => {
                let now = epoch_ms(SystemTime::now())?;
                (now / 3_600_000 - i64::from(self.hours) - 1) * 3_600_000
            }
        };
        anyhow::ensure!(self.period >= 1, "--period must be at least 1 s");
        match &self.scenario {
            Some(name) => self.scenario(&settings, name, start).await,
            None => self.demo(&settings, start).await,
        }
    }

    async fn demo(&self, settings: &Settings, start: EpochMillis) -> anyhow::Result<ExitCode> {
        let input = generate::demo(start, self.hours, self.period, self.seed);
        let publisher = EventPublisher::new(settings)?;
        let t = &settings.topics;
        publisher.ensure_topic(&t.usage_events).await?;
        publisher.ensure_topic(&t.cost_events).await?;
        let usage = input
            .usage
            .iter()
            .map(|e| (e.subject.cluster_id.clone(), e));
        let published_usage = publisher.publish(&t.usage_events, usage, || {}).await?;
        let costs = input
            .costs
            .iter()
            .map(|e| (e.partition_key().to_owned(), e));
        let published_costs = publisher.publish(&t.cost_events, costs, || {}).await?;
        eprintln!("published {published_usage} usage events and {published_costs} bill lines");
        Ok(ExitCode::SUCCESS)
    }

    async fn scenario(
        &self,
        settings: &Settings,
        name: &str,
        start: EpochMillis,
    ) -> anyhow::Result<ExitCode> {
        let input = scenario::generate(name, start, self.hours, self.period, self.seed)
            .with_context(|| format!("unknown scenario {name}"))?;
        let documents_dir = self.out.join("documents");
        std::fs::create_dir_all(&documents_dir)
            .with_context(|| format!("creating {}", documents_dir.display()))?;
        for (topic, docs) in &input.documents {
            let path = documents_dir.join(format!("{topic}.ndjson"));
            let mut text = docs.join("\n");
            text.push('\n');
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        if !input.usage_events.is_empty() {
            let path = self.out.join(scenario::USAGE_EVENTS_FILE);
            std::fs::write(&path, input.usage_events_jsonl())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "meters: {} (usage-tracker publish usage-events {})",
                path.display(),
                path.display()
            );
        }
        for bill in &input.bills {
            let path = self.out.join(&bill.name);
            std::fs::write(&path, &bill.contents)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "bill: {} (usage-tracker export-costs {} {})",
                path.display(),
                bill.exporter,
                path.display()
            );
        }
        if !self.no_publish {
            for (topic, docs) in &input.documents {
                let topic = format!("{}{topic}", self.topic_prefix);
                publish_documents(settings, &topic, docs).await?;
                eprintln!("published {} documents to {topic}", docs.len());
            }
        }
        eprintln!(
            "scenario {name}: {} to {}",
            humantime::format_rfc3339(
                UNIX_EPOCH + std::time::Duration::from_millis(input.start as u64)
            ),
            humantime::format_rfc3339(
                UNIX_EPOCH + std::time::Duration::from_millis(input.end as u64)
            ),
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Publishes raw documents as the agents' Kafka output in deploy/elastic-agent/ does: JSON values,
/// partitioned by `kubernetes.pod.uid` (here: keyed by it), so each pod's readings stay in order.
async fn publish_documents(
    settings: &Settings,
    topic: &str,
    docs: &[String],
) -> anyhow::Result<()> {
    let publisher = EventPublisher::new(settings)?;
    publisher.ensure_topic(topic).await?;
    let keys: Vec<Option<String>> = docs.iter().map(|doc| pod_uid(doc)).collect();
    let messages = docs
        .iter()
        .zip(&keys)
        .map(|(doc, key)| (key.as_deref(), doc.as_bytes()));
    publisher.send(topic, messages, || {}).await?;
    Ok(())
}

fn pod_uid(doc: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(doc).ok()?;
    value["kubernetes"]["pod"]["uid"]
        .as_str()
        .map(str::to_owned)
}
