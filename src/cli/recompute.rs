//! `usage-tracker recompute --from --to`: re-draft past windows under today's configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::config::Settings;
use crate::sink::postgres::PostgresSink;
use crate::sink::recompute;
use crate::time::parse_utc;

/// Re-draft the windows starting in [--from, --to) with the configuration the running trackers
/// have now (after a change of `[sharing]`, `[allocation]` or the rate card).
#[derive(Debug, Args)]
pub struct RecomputeArgs {
    /// Configuration file (TOML): its `[database]` is used.
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// First window start, inclusive: RFC 3339 or a date (UTC).
    #[arg(long)]
    from: String,
    /// End, exclusive: RFC 3339 or a date (UTC).
    #[arg(long)]
    to: String,
    /// Wait this long for every slot's owner to take the request up (e.g. `2m`); without it,
    /// the request is filed and the command returns.
    #[arg(long, value_parser = humantime::parse_duration)]
    wait: Option<Duration>,
}

impl RecomputeArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let settings = Settings::load(self.config.as_deref())?;
        let from = parse_utc(&self.from).with_context(|| format!("--from {:?}", self.from))?;
        let to = parse_utc(&self.to).with_context(|| format!("--to {:?}", self.to))?;
        anyhow::ensure!(to > from, "--to must be after --from");
        let sink = PostgresSink::connect(&settings.database.url)
            .await
            .context("connecting to the database")?;
        let id = recompute::request(sink.pool(), from, to).await?;
        println!(
            "recompute request {id} filed: windows starting in [{}, {}) are re-drafted at each slot's next checkpoint (windows past [window] retention, {}, are gone and stay as they are)",
            self.from,
            self.to,
            humantime::format_duration(settings.window.retention)
        );
        let Some(wait) = self.wait else {
            return Ok(ExitCode::SUCCESS);
        };
        let deadline = Instant::now() + wait;
        loop {
            let progress = recompute::progress(sink.pool(), id).await?;
            if progress.complete() {
                for (slot, windows) in &progress.done {
                    println!("slot {slot}: {windows} cluster windows re-drafted");
                }
                return Ok(ExitCode::SUCCESS);
            }
            if Instant::now() >= deadline {
                let waiting: Vec<String> = progress
                    .slots
                    .iter()
                    .filter(|s| !progress.done.iter().any(|(d, _)| d == *s))
                    .map(i32::to_string)
                    .collect();
                eprintln!(
                    "not every slot took request {id} up within {}: waiting for slots {} (is a tracker running?)",
                    humantime::format_duration(wait),
                    waiting.join(", ")
                );
                return Ok(ExitCode::FAILURE);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
