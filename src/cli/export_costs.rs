//! `usage-tracker export-costs gcp|focus|rate-card`: bills -> CostEvents on the cost topic.
//! Arguments, progress bars and printing; [`crate::billing::export`] reads the bills and decides
//! what may be published (exit 1 when nothing may).

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::publish::EventPublisher;
use crate::billing::export::{self, Decision, Progress, Source};
use crate::billing::gcp::GcpFormat;
use crate::config::Settings;
use crate::time::epoch_ms;

/// Publish bills as CostEvents.
#[derive(Debug, Subcommand)]
pub enum ExportCostsCommand {
    /// GCP Cloud Billing export rows (BigQuery JSON lines or CSV).
    Gcp {
        #[command(flatten)]
        common: ExportArgs,
        /// Input format; default: from the file extension (`.csv`; `.json`, `.jsonl`, `.ndjson` and
        /// anything else: JSON lines).
        #[arg(long, value_enum)]
        format: Option<GcpFormatArg>,
        /// Export files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// FOCUS 1.x CSV (Azure Cost Management, GCP's FOCUS view).
    Focus {
        #[command(flatten)]
        common: ExportArgs,
        /// Export files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// On-prem cost: a rate card applied to the capacity seen on the usage topic.
    RateCard {
        #[command(flatten)]
        common: ExportArgs,
        /// Rate card (TOML; see docs/billing-exporters.md).
        #[arg(long)]
        card: PathBuf,
        /// Period start (RFC 3339), inclusive.
        #[arg(long)]
        from: humantime::Timestamp,
        /// Period end (RFC 3339), exclusive.
        #[arg(long)]
        to: humantime::Timestamp,
    },
}

/// GCP export file format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GcpFormatArg {
    /// Newline-delimited JSON (`bq extract --destination_format NEWLINE_DELIMITED_JSON`).
    Jsonl,
    /// CSV with dotted column names and JSON `labels` / `credits`.
    Csv,
}

/// Options of every exporter.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Configuration file (TOML), for connections, topics and `[billing]`.
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// Publish the complete bill lines even though rows (or usage messages) were rejected. A line
    /// any of whose rows was rejected, or may have been, is withheld: published, it would
    /// replace a complete earlier revision with a smaller amount. Without --partial, any rejected
    /// row or refused line publishes nothing (exit 1).
    #[arg(long)]
    partial: bool,
    /// Deprecated, no effect: publishing nothing when a row is rejected is the default now (see
    /// --partial).
    #[arg(long, conflicts_with = "partial")]
    strict: bool,
    /// Revision of every line (a correction needs a higher one than the bill it corrects);
    /// default: the row's export time where the format has one, else now.
    #[arg(long)]
    revision: Option<i64>,
    /// Print the CostEvents as JSON lines on stdout instead of publishing them.
    #[arg(long)]
    dry_run: bool,
}

impl ExportCostsCommand {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let (Self::Gcp { common, .. } | Self::Focus { common, .. } | Self::RateCard { common, .. }) =
            &self;
        let source = match &self {
            Self::Gcp { format, files, .. } => {
                let format = format.map(|format| match format {
                    GcpFormatArg::Csv => GcpFormat::Csv,
                    GcpFormatArg::Jsonl => GcpFormat::JsonLines,
                });
                Source::Gcp { files, format }
            }
            Self::Focus { files, .. } => Source::Focus { files },
            Self::RateCard { card, from, to, .. } => {
                let (from, to) = ((*from).into(), (*to).into());
                Source::RateCard { card, from, to }
            }
        };
        if common.strict {
            eprintln!(
                "export-costs: --strict is deprecated and has no effect: \
                 a rejected row publishes nothing unless --partial is given"
            );
        }
        let settings = Settings::load(common.config.as_deref())?;
        let options = settings.export_options(common.revision, epoch_ms(SystemTime::now())?)?;
        let bar = Bar(RefCell::new(ProgressBar::hidden()));
        let export = export::read(&settings, source, &options, &bar).await?;
        let ready = match export.settle(common.partial)? {
            Decision::Publish(ready) => ready,
            Decision::Nothing(summary) => {
                eprintln!("{summary}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let summary = if common.dry_run {
            for line in ready.lines() {
                println!("{}", serde_json::to_string(line)?);
            }
            ready.dry_run()
        } else {
            let publisher = EventPublisher::new(&settings)?;
            ready
                .publish(async |topic, keyed| {
                    publisher.ensure_topic(topic).await?;
                    let bar = ProgressBar::new(keyed.len() as u64)
                        .with_message(format!("publishing to {topic}"));
                    publisher.publish(topic, keyed, || bar.inc(1)).await?;
                    bar.finish_and_clear();
                    anyhow::Ok(())
                })
                .await?
        };
        eprintln!("{summary}");
        Ok(ExitCode::SUCCESS)
    }
}

/// A bar over the bill files' bytes, or a spinner while the usage topic is read (hidden before
/// and after); problems are printed above it.
struct Bar(RefCell<ProgressBar>);

impl Progress for Bar {
    fn files(&self, total_bytes: u64) {
        let template = "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})";
        let style = ProgressStyle::with_template(template).expect("a valid template");
        let bar = ProgressBar::new(total_bytes).with_style(style.progress_chars("=> "));
        self.0.replace(bar);
    }
    fn file(&self, path: &Path) {
        self.0.borrow().set_message(path.display().to_string());
    }
    fn read(&self, bytes: u64) {
        self.0.borrow().inc(bytes);
    }
    fn topic(&self, topic: &str) {
        let spinner = ProgressBar::new_spinner().with_message(format!("reading {topic}"));
        spinner.enable_steady_tick(Duration::from_millis(200));
        self.0.replace(spinner);
    }
    fn done(&self) {
        self.0.replace(ProgressBar::hidden()).finish_and_clear();
    }
    fn problem(&self, problem: &dyn fmt::Display) {
        self.0.borrow().suspend(|| eprintln!("{problem}"));
    }
}
