//! `usage-tracker elastic`: its arguments; it runs the Elastic converter ([`crate::elastic`]:
//! Elastic Agent / Metricbeat documents -> UsageEvents, at least once) until SIGTERM, or with
//! `--until-caught-up` until the input available at start is published, and prints its summary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::Settings;
use crate::elastic;

/// Read Elastic Agent / Metricbeat documents and publish them as UsageEvents.
#[derive(Debug, Args)]
pub struct ElasticArgs {
    /// Configuration file (TOML); see its `[elastic]` section.
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// Process everything available at start, publish, commit and exit (CronJob mode).
    #[arg(long)]
    until_caught_up: bool,
}

impl ElasticArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let settings = Settings::load(self.config.as_deref())?;
        let summary =
            elastic::run(&settings, self.until_caught_up, super::shutdown_signal()).await?;
        eprintln!("{summary}");
        Ok(ExitCode::SUCCESS)
    }
}
