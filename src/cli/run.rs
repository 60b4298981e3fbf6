//! `usage-tracker run`: the streaming tracker.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::Settings;
use crate::pipeline;

/// Run the tracker.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// Process everything available at start, flush, commit and exit (CronJob mode).
    #[arg(long)]
    until_caught_up: bool,
}

impl RunArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let settings = Settings::load(self.config.as_deref())?;
        let config = settings.pipeline(self.until_caught_up)?;
        let summary = pipeline::run(config, super::shutdown_signal()).await?;
        eprintln!(
            "consumed {:?}; usage applied {} (late {}), duplicates {}, bill lines {:?}, excluded {:?}, dead letters {:?}, records emitted {:?}",
            summary.consumed,
            summary.usage_applied,
            summary.usage_late,
            summary.duplicates,
            summary.cost_lines,
            summary.excluded,
            summary.dead_letters,
            summary.records_emitted
        );
        Ok(ExitCode::SUCCESS)
    }
}
