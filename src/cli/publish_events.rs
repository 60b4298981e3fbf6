//! `usage-tracker publish usage-events FILE...`: a producer of the standard for tools that have
//! UsageEvents as JSON lines (the demo's meter exporters, a team's script).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::publish::EventPublisher;
use crate::config::Settings;
use crate::standard::{limits, UsageEvent};

/// Publish standard events from files.
#[derive(Debug, Subcommand)]
pub enum PublishCommand {
    /// UsageEvents, one JSON object per line (the Avro record's fields), to `[topics] usage_events`,
    /// keyed by cluster id. Every line is checked against the standard's limits first: a file
    /// with one bad line publishes nothing.
    UsageEvents(PublishArgs),
}

/// Which files, with which configuration.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Configuration file (TOML): its `[kafka]`, `[registry]` and `[topics]` are used.
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// JSON-lines files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

impl PublishCommand {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let PublishCommand::UsageEvents(args) = self;
        let settings = Settings::load(args.config.as_deref())?;
        let mut events: Vec<UsageEvent> = Vec::new();
        for file in &args.files {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let at = || format!("{}:{}", file.display(), n + 1);
                let event: UsageEvent = serde_json::from_str(line)
                    .with_context(|| format!("{}: not a UsageEvent", at()))?;
                limits::check_usage_event(&event).with_context(at)?;
                events.push(event);
            }
        }
        let topic = &settings.topics.usage_events;
        let publisher = EventPublisher::new(&settings)?;
        publisher.ensure_topic(topic).await?;
        let published = publisher
            .publish(
                topic,
                events.iter().map(|e| (e.subject.cluster_id.clone(), e)),
                || {},
            )
            .await?;
        println!("published {published} usage events to {topic}");
        Ok(ExitCode::SUCCESS)
    }
}
