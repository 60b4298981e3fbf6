//! `usage-tracker export-costs gcp|focus|rate-card`: bills -> CostEvents on the cost topic.
//!
//! Reads every row, reports each bad one with its file and line (and, with `--strict`, stops
//! before publishing anything), merges the rows into bill lines ([`billing::consolidate`]),
//! sets the cluster of lines that name none from `[[cost_scopes]]`, publishes them keyed as the
//! standard says (§6.1), and prints a summary.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::publish::EventPublisher;
use crate::billing::focus::read_focus;
use crate::billing::gcp::{read_gcp, GcpFormat};
use crate::billing::rate_card::{ObservedCapacity, RateCardBill};
use crate::billing::{self, ExportOptions, RowError};
use crate::config::Settings;
use crate::standard::wire::RecordDecoder;
use crate::standard::{CostEvent, EpochMillis, UsageEvent};

/// Publish bills as CostEvents.
#[derive(Debug, Subcommand)]
pub enum ExportCostsCommand {
    /// GCP Cloud Billing export rows (BigQuery JSON lines or CSV).
    Gcp {
        /// Common options.
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
        /// Common options.
        #[command(flatten)]
        common: ExportArgs,
        /// Export files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// On-prem cost: a rate card applied to the capacity seen on the usage topic.
    RateCard {
        /// Common options.
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
    /// Stop at the first malformed row and publish nothing.
    #[arg(long)]
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
    fn common(&self) -> &ExportArgs {
        match self {
            ExportCostsCommand::Gcp { common, .. }
            | ExportCostsCommand::Focus { common, .. }
            | ExportCostsCommand::RateCard { common, .. } => common,
        }
    }

    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let common = self.common();
        let settings = Settings::load(common.config.as_deref())?;
        let options = settings.export_options(common.revision, now_ms()?)?;
        let (lines, mut summary) = match &self {
            ExportCostsCommand::Gcp { format, files, .. } => {
                read_files(files, common.strict, |path, input| {
                    let format = match format {
                        Some(GcpFormatArg::Csv) => GcpFormat::Csv,
                        Some(GcpFormatArg::Jsonl) => GcpFormat::JsonLines,
                        None => GcpFormat::from_path(path).unwrap_or(GcpFormat::JsonLines),
                    };
                    Box::new(read_gcp(input, format, &options))
                })?
            }
            ExportCostsCommand::Focus { files, .. } => {
                read_files(files, common.strict, |_, input| {
                    Box::new(read_focus(input, &options))
                })?
            }
            ExportCostsCommand::RateCard { card, from, to, .. } => {
                rate_card(&settings, card, (*from, *to), &options).await?
            }
        };
        let Some(lines) = lines else {
            eprintln!("{summary}");
            return Ok(ExitCode::FAILURE);
        };
        let lines = with_scope_clusters(&settings, lines);
        summary.count(&lines);
        if common.dry_run {
            for line in &lines {
                println!("{}", serde_json::to_string(line)?);
            }
            summary
                .notes
                .push("--dry-run: printed, not published".into());
        } else {
            publish(&settings, &lines).await?;
            summary.published = lines.len() as u64;
        }
        eprintln!("{summary}");
        Ok(ExitCode::SUCCESS)
    }
}

/// What one export did.
#[derive(Debug, Default)]
struct ExportSummary {
    rows: u64,
    rejected: u64,
    lines: u64,
    published: u64,
    /// Currency -> (billed, effective) micro-units.
    totals: BTreeMap<String, (i64, i64)>,
    notes: Vec<String>,
}

impl ExportSummary {
    fn count(&mut self, lines: &[CostEvent]) {
        self.lines = lines.len() as u64;
        for line in lines {
            let total = self
                .totals
                .entry(line.billing_currency.clone())
                .or_default();
            total.0 += line.billed_cost_micros;
            total.1 += line.effective_cost_micros;
        }
    }
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "export-costs: {} rows read, {} rejected; {} bill lines, {} published",
            self.rows, self.rejected, self.lines, self.published
        )?;
        for (currency, (billed, effective)) in &self.totals {
            write!(
                f,
                "; {currency} billed {} effective {}",
                decimal(*billed),
                decimal(*effective)
            )?;
        }
        for note in &self.notes {
            write!(f, "\n  {note}")?;
        }
        Ok(())
    }
}

/// Micro-units as an exact decimal.
fn decimal(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

type Rows<'a> = Box<dyn Iterator<Item = Result<CostEvent, RowError>> + 'a>;

/// Reads every file through `reader` behind one progress bar (bytes). Bad rows are reported as
/// `FILE: line N: ...`; with `strict` the first one stops the export (`None` lines).
fn read_files<'o>(
    files: &[PathBuf],
    strict: bool,
    reader: impl Fn(&Path, indicatif::ProgressBarIter<File>) -> Rows<'o>,
) -> anyhow::Result<(Option<Vec<CostEvent>>, ExportSummary)> {
    let mut total_bytes = 0;
    for file in files {
        total_bytes += std::fs::metadata(file)
            .with_context(|| format!("reading {}", file.display()))?
            .len();
    }
    let bar = ProgressBar::new(total_bytes).with_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let mut summary = ExportSummary::default();
    let mut events = Vec::new();
    for path in files {
        bar.set_message(path.display().to_string());
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        for row in reader(path, bar.wrap_read(file)) {
            summary.rows += 1;
            match row {
                Ok(event) => events.push(event),
                Err(error) => {
                    summary.rejected += 1;
                    bar.suspend(|| eprintln!("{}: {error}", path.display()));
                    if strict {
                        bar.finish_and_clear();
                        summary.notes.push(
                            "--strict: stopped at the first malformed row, nothing published"
                                .into(),
                        );
                        return Ok((None, summary));
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok((Some(billing::consolidate(events)), summary))
}

/// Prices the card's cluster for the period from the capacity on the usage topic.
async fn rate_card(
    settings: &Settings,
    card: &Path,
    (from, to): (humantime::Timestamp, humantime::Timestamp),
    options: &ExportOptions,
) -> anyhow::Result<(Option<Vec<CostEvent>>, ExportSummary)> {
    // Never `None`: no row of a rate card can be malformed; only read_files stops early.
    let text =
        std::fs::read_to_string(card).with_context(|| format!("reading {}", card.display()))?;
    let card: RateCardBill =
        toml::from_str(&text).with_context(|| format!("parsing {}", card.display()))?;
    card.validate().map_err(anyhow::Error::msg)?;
    let (from, to) = (epoch_ms(from)?, epoch_ms(to)?);
    anyhow::ensure!(to > from, "--to must be after --from");

    let topic = settings.topics.usage_events.clone();
    let kafka = settings.kafka();
    let spinner = ProgressBar::new_spinner().with_message(format!("reading {topic}"));
    spinner.enable_steady_tick(Duration::from_millis(200));
    let payloads =
        tokio::task::spawn_blocking(move || kafka.read_to_end(&topic, Duration::from_secs(1)))
            .await?
            .context("reading the usage topic")?;
    spinner.finish_and_clear();

    let decoder = RecordDecoder::<UsageEvent>::new(settings.registry()?.sr_settings()?);
    let mut seen = ObservedCapacity::default();
    let mut summary = ExportSummary::default();
    for payload in &payloads {
        summary.rows += 1;
        match decoder.decode(payload).await {
            Ok(event) => seen.add(&card, &event),
            // The tracker dead-letters these; here they only cannot add capacity.
            Err(_) => summary.rejected += 1,
        }
    }
    let (lines, unpriced) = card.bill(&seen, from, to, options);
    summary.notes.push(format!(
        "{} usage events of cluster {} counted ({} duplicates)",
        seen.counted, card.cluster_id, seen.duplicates
    ));
    for missing in &unpriced {
        summary.notes.push(format!(
            "no price for {} of pool/class {:?}: that capacity is not billed",
            missing.resource, missing.group
        ));
    }
    Ok((Some(lines), summary))
}

/// Lines without a cluster get the one their account's `[[cost_scopes]]` names: the exporter
/// knows it, so the line is keyed like that cluster's usage (standard §6.1) and meets it in the
/// tracker's slot.
fn with_scope_clusters(settings: &Settings, mut lines: Vec<CostEvent>) -> Vec<CostEvent> {
    for line in &mut lines {
        if line.cluster_id.is_none() {
            line.cluster_id = settings.scope_cluster(line);
        }
    }
    lines
}

async fn publish(settings: &Settings, lines: &[CostEvent]) -> anyhow::Result<()> {
    let topic = &settings.topics.cost_events;
    let publisher = EventPublisher::new(settings)?;
    publisher.ensure_topic(topic).await?;
    let bar = ProgressBar::new(lines.len() as u64).with_message(format!("publishing to {topic}"));
    let keyed = lines
        .iter()
        .map(|line| (line.partition_key().to_owned(), line));
    publisher.publish(topic, keyed, || bar.inc(1)).await?;
    bar.finish_and_clear();
    Ok(())
}

fn epoch_ms(t: humantime::Timestamp) -> anyhow::Result<EpochMillis> {
    let system: SystemTime = t.into();
    Ok(system.duration_since(UNIX_EPOCH)?.as_millis() as EpochMillis)
}

fn now_ms() -> anyhow::Result<EpochMillis> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as EpochMillis)
}
