//! `usage-tracker export-costs gcp|focus|rate-card`: bills -> CostEvents on the cost topic.
//!
//! Reads every row, reports each bad one with its file and line, merges the rows into bill
//! lines ([`crate::billing::Consolidator`], checked sums), sets the cluster of lines that name
//! none from `[[cost_scopes]]` and checks every line as the tracker will
//! ([`crate::billing::check_event`]). When nothing was rejected it publishes the lines keyed as
//! the standard says (§6.1); otherwise it publishes nothing and exits 1, unless `--partial` is
//! given: then it publishes the complete lines and withholds every line a rejected row belongs
//! (or may belong) to, so that no incomplete line replaces a complete earlier revision. The
//! rate card folds the usage topic in message by message. Prints a summary.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::publish::EventPublisher;
use crate::billing::focus::read_focus;
use crate::billing::gcp::{read_gcp, GcpFormat};
use crate::billing::rate_card::{ObservedCapacity, RateCardBill};
use crate::billing::{Consolidator, ExportOptions, RowAt, RowError};
use crate::config::Settings;
use crate::kafka::TopicMessage;
use crate::standard::wire::RecordDecoder;
use crate::standard::{CostEvent, UsageEvent};
use crate::time::epoch_ms;

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
    fn common(&self) -> &ExportArgs {
        match self {
            ExportCostsCommand::Gcp { common, .. }
            | ExportCostsCommand::Focus { common, .. }
            | ExportCostsCommand::RateCard { common, .. } => common,
        }
    }

    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let common = self.common();
        if common.strict {
            eprintln!(
                "export-costs: --strict is deprecated and has no effect: \
                 a rejected row publishes nothing unless --partial is given"
            );
        }
        let settings = Settings::load(common.config.as_deref())?;
        let options = settings.export_options(common.revision, epoch_ms(SystemTime::now())?)?;
        let export = match &self {
            ExportCostsCommand::Gcp { format, files, .. } => {
                read_files(&settings, files, &options, |path, input| {
                    let format = match format {
                        Some(GcpFormatArg::Csv) => GcpFormat::Csv,
                        Some(GcpFormatArg::Jsonl) => GcpFormat::JsonLines,
                        None => GcpFormat::from_path(path).unwrap_or(GcpFormat::JsonLines),
                    };
                    Box::new(read_gcp(input, format, &options))
                })?
            }
            ExportCostsCommand::Focus { files, .. } => {
                read_files(&settings, files, &options, |_, input| {
                    Box::new(read_focus(input, &options))
                })?
            }
            ExportCostsCommand::RateCard { card, from, to, .. } => {
                rate_card(&settings, card, (*from, *to), &options).await?
            }
        };
        let Export {
            lines,
            mut summary,
            withheld,
            everything_withheld,
        } = export;
        if (summary.rejected > 0 || summary.refused > 0) && !common.partial {
            summary.notes.push(format!(
                "nothing published: {} rejected, {} lines refused; correct them and export again, \
                 or publish the complete lines with --partial",
                summary.rejected, summary.refused
            ));
            eprintln!("{summary}");
            return Ok(ExitCode::FAILURE);
        }
        if everything_withheld {
            summary.notes.push(
                "--partial: nothing published: a rejected row or message could belong to any line"
                    .into(),
            );
            eprintln!("{summary}");
            return Ok(ExitCode::FAILURE);
        }
        // Which lines --partial leaves out (a few named, all counted in the summary).
        const NAMED: usize = 20;
        for what in withheld.iter().take(NAMED) {
            summary.notes.push(format!("withheld: {what}"));
        }
        if withheld.len() > NAMED {
            let more = withheld.len() - NAMED;
            summary.notes.push(format!("withheld: {more} more lines"));
        }
        summary.total(&lines)?;
        if common.dry_run {
            for line in &lines {
                println!("{}", serde_json::to_string(line)?);
            }
            summary
                .notes
                .push("--dry-run: printed, not published".into());
        } else {
            publish(&settings, &lines).await?;
            summary.published = u64::try_from(lines.len())?;
        }
        eprintln!("{summary}");
        Ok(ExitCode::SUCCESS)
    }
}

/// What an exporter read: the lines it may publish and what it found.
struct Export {
    /// Complete, checked lines.
    lines: Vec<CostEvent>,
    summary: ExportSummary,
    /// The lines withheld because a row of theirs was rejected, described.
    withheld: Vec<String>,
    /// A rejected row or message could belong to any line: with `--partial`, nothing can be
    /// published either.
    everything_withheld: bool,
}

/// What one export did.
#[derive(Debug)]
struct ExportSummary {
    /// What a row is: `rows` of a bill, `usage messages` of the topic.
    unit: &'static str,
    rows: u64,
    rejected: u64,
    /// Lines built (publishable, refused and withheld).
    lines: u64,
    refused: u64,
    withheld: u64,
    published: u64,
    /// Currency -> (billed, effective) micro-units of the lines to publish.
    totals: BTreeMap<String, (i128, i128)>,
    notes: Vec<String>,
}

impl ExportSummary {
    fn new(unit: &'static str) -> Self {
        Self {
            unit,
            rows: 0,
            rejected: 0,
            lines: 0,
            refused: 0,
            withheld: 0,
            published: 0,
            totals: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// Adds up the lines per currency (checked: an error, never a wrapped total).
    fn total(&mut self, lines: &[CostEvent]) -> anyhow::Result<()> {
        for line in lines {
            let total = self
                .totals
                .entry(line.billing_currency.clone())
                .or_default();
            let sum = |a: i128, b: i64| {
                a.checked_add(i128::from(b))
                    .with_context(|| format!("the {} total overflows", line.billing_currency))
            };
            *total = (
                sum(total.0, line.billed_cost_micros)?,
                sum(total.1, line.effective_cost_micros)?,
            );
        }
        Ok(())
    }
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "export-costs: {} {} read, {} rejected; {} bill lines",
            self.rows, self.unit, self.rejected, self.lines
        )?;
        if self.refused > 0 {
            write!(f, ", {} refused", self.refused)?;
        }
        if self.withheld > 0 {
            write!(f, ", {} withheld", self.withheld)?;
        }
        write!(f, ", {} published", self.published)?;
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
fn decimal(micros: i128) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

type Rows<'a> = Box<dyn Iterator<Item = Result<(u64, CostEvent), RowError>> + 'a>;

/// Reads every file through `reader` behind one progress bar (bytes) and merges the rows into
/// bill lines. Bad rows are reported as `FILE: line N: ...`, refused lines as `FILE: line N:
/// bill line ID (K rows): ...` (N: the line's first row).
fn read_files<'o>(
    settings: &Settings,
    files: &[PathBuf],
    options: &ExportOptions,
    reader: impl Fn(&Path, indicatif::ProgressBarIter<File>) -> Rows<'o>,
) -> anyhow::Result<Export> {
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
    let mut summary = ExportSummary::new("rows");
    let mut lines = Consolidator::default();
    for (input, path) in files.iter().enumerate() {
        bar.set_message(path.display().to_string());
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        for row in reader(path, bar.wrap_read(file)) {
            summary.rows += 1;
            match row {
                Ok((line, event)) => lines.add(event, RowAt { input, line }),
                Err(error) => {
                    summary.rejected += 1;
                    bar.suspend(|| eprintln!("{}: {error}", path.display()));
                    lines.reject(
                        &error.scope,
                        RowAt {
                            input,
                            line: error.line,
                        },
                    );
                }
            }
        }
    }
    bar.finish_and_clear();
    let at = |at: RowAt| format!("{}: line {}", files[at.input].display(), at.line);
    let out = lines.finish(
        |line| set_scope_cluster(settings, line),
        options.exported_at,
    );
    for refused in &out.refused {
        eprintln!(
            "{}: bill line {} ({} rows): {}",
            at(refused.first),
            refused.id,
            refused.rows,
            refused.message
        );
    }
    summary.refused = u64::try_from(out.refused.len())?;
    summary.withheld = u64::try_from(out.withheld.len())?;
    summary.lines = u64::try_from(out.lines.len() + out.refused.len() + out.withheld.len())?;
    let withheld = out
        .withheld
        .iter()
        .map(|w| {
            format!(
                "bill line {} (a row was rejected: {})",
                w.id,
                at(w.rejected)
            )
        })
        .collect();
    Ok(Export {
        lines: out.lines,
        summary,
        withheld,
        everything_withheld: out.unknown_rejected.is_some(),
    })
}

/// Prices the card's cluster for the period from the capacity on the usage topic, folding each
/// message into the per-hour aggregates as it is read (memory: the aggregates, not the topic).
async fn rate_card(
    settings: &Settings,
    card_path: &Path,
    (from, to): (humantime::Timestamp, humantime::Timestamp),
    options: &ExportOptions,
) -> anyhow::Result<Export> {
    let text = std::fs::read_to_string(card_path)
        .with_context(|| format!("reading {}", card_path.display()))?;
    let card: RateCardBill =
        toml::from_str(&text).with_context(|| format!("parsing {}", card_path.display()))?;
    card.validate().map_err(anyhow::Error::msg)?;
    let (from, to) = (epoch_ms(from.into())?, epoch_ms(to.into())?);
    RateCardBill::check_period(from, to).map_err(anyhow::Error::msg)?;

    let topic = settings.topics.usage_events.clone();
    let kafka = settings.kafka();
    let spinner = ProgressBar::new_spinner().with_message(format!("reading {topic}"));
    spinner.enable_steady_tick(Duration::from_millis(200));
    // The reader blocks; it hands messages over a small bounded channel, so at most that many
    // are in memory while they are decoded and folded in.
    let (sender, mut messages) = tokio::sync::mpsc::channel::<TopicMessage>(256);
    let reading = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || {
            kafka.read_each(&topic, |message| sender.blocking_send(message).is_ok())
        })
    };
    let decoder = RecordDecoder::<UsageEvent>::new(settings.registry()?.sr_settings()?);
    let mut seen = ObservedCapacity::new(from, to);
    let mut summary = ExportSummary::new("usage messages");
    while let Some(message) = messages.recv().await {
        let Some(payload) = &message.payload else {
            continue; // A tombstone: nothing to count.
        };
        summary.rows += 1;
        let at = || {
            format!(
                "{topic}: partition {} offset {}",
                message.partition, message.offset
            )
        };
        match decoder.decode(payload).await {
            Ok(event) => {
                if let Err(problem) = seen.add(&card, &event) {
                    summary.rejected += 1;
                    spinner.suspend(|| eprintln!("{}: {problem}", at()));
                }
            }
            Err(error) => {
                // Undecodable (or the registry is down): a message keyed to another cluster is
                // not the card's; any other may have held capacity of the card's cluster.
                if seen.undecodable(&card, message.key.as_deref()) {
                    summary.rejected += 1;
                    spinner.suspend(|| eprintln!("{}: cannot be decoded: {error}", at()));
                }
            }
        }
    }
    reading.await?.with_context(|| format!("reading {topic}"))?;
    spinner.finish_and_clear();

    let bill = card.bill(&seen, options);
    let card_name = card_path.display();
    for refused in &bill.refused {
        eprintln!(
            "{card_name}: bill line {} ({}): {}",
            refused.id, refused.what, refused.message
        );
    }
    summary.refused = u64::try_from(bill.refused.len())?;
    summary.withheld = u64::try_from(bill.withheld.len())?;
    let withheld = bill
        .withheld
        .iter()
        .map(|w| {
            format!(
                "bill line {} ({}): a usage message of its hour was rejected",
                w.id, w.what
            )
        })
        .collect();
    summary.lines = u64::try_from(bill.lines.len() + bill.refused.len() + bill.withheld.len())?;
    summary.notes.push(format!(
        "{} usage events of cluster {} counted ({} duplicates, {} of other clusters or hours ignored)",
        seen.counted, card.cluster_id, seen.duplicates, seen.ignored
    ));
    for missing in &bill.unpriced {
        summary.notes.push(format!(
            "no price for {} of pool/class {:?}: that capacity is not billed",
            missing.resource, missing.group
        ));
    }
    Ok(Export {
        lines: bill.lines,
        summary,
        withheld,
        everything_withheld: false,
    })
}

/// A line without a cluster gets the one its account's `[[cost_scopes]]` names: the exporter
/// knows it, so the line is keyed like that cluster's usage (standard §6.1) and meets it in the
/// tracker's slot.
fn set_scope_cluster(settings: &Settings, line: &mut CostEvent) {
    if line.cluster_id.is_none() {
        line.cluster_id = settings.scope_cluster(line);
    }
}

async fn publish(settings: &Settings, lines: &[CostEvent]) -> anyhow::Result<()> {
    let topic = &settings.topics.cost_events;
    let publisher = EventPublisher::new(settings)?;
    publisher.ensure_topic(topic).await?;
    let bar = ProgressBar::new(u64::try_from(lines.len())?)
        .with_message(format!("publishing to {topic}"));
    let keyed = lines
        .iter()
        .map(|line| (line.partition_key().to_owned(), line));
    publisher.publish(topic, keyed, || bar.inc(1)).await?;
    bar.finish_and_clear();
    Ok(())
}
