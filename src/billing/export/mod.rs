//! The `export-costs` orchestration: bills -> checked bill lines -> the cost topic.
//!
//! [`read`] reads every row of a [`Source`] (GCP or FOCUS files, or a rate card priced from the
//! capacity on the usage topic), reports each rejected row or usage message and each refused
//! line through [`Progress`] as it finds them, merges the rows into bill lines
//! ([`Consolidator`](super::Consolidator), checked sums), sets the cluster of lines that name
//! none from `[[cost_scopes]]` and checks every line as the tracker will
//! ([`check_event`](super::check_event)). [`Export::settle`] applies the publishing rule: when
//! nothing was rejected, every line goes out; otherwise nothing does, unless `partial`: then the
//! complete lines go out and every line a rejected row belongs (or may belong) to is withheld,
//! so that no incomplete line replaces a complete earlier revision. [`Ready::publish`] hands the
//! lines, keyed as the standard says (§6.1), to the caller's publisher. Every outcome carries an
//! [`ExportSummary`] for the caller to print; this module prints nothing.
//!
//! - `files.rs`: bill files (GCP, FOCUS) -> bill lines.
//! - `usage_topic.rs`: the rate card's pass over the usage topic -> bill lines.
//! - `summary.rs`: [`ExportSummary`], what one export did.

mod files;
mod summary;
mod usage_topic;

#[cfg(test)]
mod tests;

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::gcp::GcpFormat;
use super::ExportOptions;
use crate::config::Settings;
use crate::standard::CostEvent;

pub use summary::ExportSummary;

/// What to export.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// GCP Cloud Billing export files.
    Gcp {
        /// The files, read in this order.
        files: &'a [PathBuf],
        /// Their format; `None`: from each file's extension ([`GcpFormat::from_path`]), JSON
        /// lines when it tells nothing.
        format: Option<GcpFormat>,
    },
    /// FOCUS 1.x CSV files.
    Focus {
        /// The files, read in this order.
        files: &'a [PathBuf],
    },
    /// A rate card applied to the capacity seen on `[topics] usage_events`.
    RateCard {
        /// The card (TOML).
        card: &'a Path,
        /// Period start, inclusive.
        from: SystemTime,
        /// Period end, exclusive.
        to: SystemTime,
    },
}

/// What an export reports while it reads, for a progress display. Every method does nothing
/// unless implemented.
pub trait Progress {
    /// Reading bill files of `total_bytes` bytes in all begins.
    fn files(&self, total_bytes: u64) {
        let _ = total_bytes;
    }
    /// Reading the file `path` begins.
    fn file(&self, path: &Path) {
        let _ = path;
    }
    /// `bytes` more bytes of the current file were read.
    fn read(&self, bytes: u64) {
        let _ = bytes;
    }
    /// Reading `topic` (the rate card's pass over the usage topic) begins.
    fn topic(&self, topic: &str) {
        let _ = topic;
    }
    /// Reading is over; problems reported after this are refused lines.
    fn done(&self) {}
    /// A rejected row or usage message (while reading), or a refused line (after
    /// [`Progress::done`]), as `WHERE: what`.
    fn problem(&self, problem: &dyn fmt::Display) {
        let _ = problem;
    }
}

/// No progress display.
impl Progress for () {}

/// Why an export could not run. Rejected rows and refused lines are no error: they are counted
/// in the [`ExportSummary`] and decide what [`Export::settle`] lets out.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A bill file or the rate card could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A bill file could not be opened.
    #[error("opening {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The rate card is no TOML of a card.
    #[error("parsing {}", path.display())]
    ParseCard {
        /// The card.
        path: PathBuf,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// The rate card is inconsistent ([`RateCardBill::validate`](super::rate_card::RateCardBill::validate)).
    #[error("{message}")]
    InvalidCard {
        /// The card.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A period end is no epoch millisecond.
    #[error(transparent)]
    Time(#[from] crate::time::TimeError),
    /// The period is out of the standard's times or empty
    /// ([`RateCardBill::check_period`](super::rate_card::RateCardBill::check_period)).
    #[error("{0}")]
    Period(String),
    /// The registry configuration (`[registry]`) is unusable: [`Settings::registry`]'s error,
    /// its context chain kept.
    #[error(transparent)]
    Registry(Box<dyn StdError + Send + Sync>),
    /// The registry client could not be set up.
    #[error(transparent)]
    RegistryClient(#[from] crate::standard::registry::RegistryError),
    /// The usage topic could not be read.
    #[error("reading {topic}")]
    Topic {
        /// The topic.
        topic: String,
        /// Why.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The task reading the usage topic failed.
    #[error(transparent)]
    Reader(#[from] tokio::task::JoinError),
    /// The lines to publish add up to more than a total holds.
    #[error("the {currency} total overflows")]
    TotalOverflow {
        /// The currency.
        currency: String,
    },
    /// The caller's publisher failed ([`Ready::publish`]).
    #[error(transparent)]
    Publish(Box<dyn StdError + Send + Sync>),
}

/// Reads the rows of `source` and merges them into checked bill lines; rejected rows and
/// messages and refused lines are reported through `progress` and counted.
pub async fn read(
    settings: &Settings,
    source: Source<'_>,
    options: &ExportOptions,
    progress: &impl Progress,
) -> Result<Export, ExportError> {
    Ok(match source {
        Source::Gcp { files, format } => {
            files::read(settings, files, options, progress, |path, input| {
                let format = format
                    .or_else(|| GcpFormat::from_path(path))
                    .unwrap_or(GcpFormat::JsonLines);
                Box::new(super::gcp::read_gcp(input, format, options))
            })?
        }
        Source::Focus { files } => files::read(settings, files, options, progress, |_, input| {
            Box::new(super::focus::read_focus(input, options))
        })?,
        Source::RateCard { card, from, to } => {
            usage_topic::rate_card(settings, card, (from, to), options, progress).await?
        }
    })
}

/// What an export read: the lines it may publish and what it found.
#[derive(Debug)]
pub struct Export {
    /// Complete, checked lines.
    lines: Vec<CostEvent>,
    summary: ExportSummary,
    /// The lines withheld because a row of theirs was rejected, described.
    withheld: Vec<String>,
    /// A rejected row or message could belong to any line: with `partial`, nothing can be
    /// published either.
    everything_withheld: bool,
    /// `[topics] cost_events`.
    topic: String,
}

/// What an export lets out.
#[derive(Debug)]
pub enum Decision {
    /// These lines may be published.
    Publish(Ready),
    /// Nothing may be published (rows were rejected or lines refused): the summary says why.
    Nothing(ExportSummary),
}

impl Export {
    /// What was read so far (the lines to publish are not added up yet).
    pub fn summary(&self) -> &ExportSummary {
        &self.summary
    }

    /// Applies the publishing rule (module docs); `partial`: publish the complete lines even
    /// though rows were rejected. Names the first withheld lines in the summary and adds up the
    /// lines to publish (the only error: [`ExportError::TotalOverflow`]).
    pub fn settle(self, partial: bool) -> Result<Decision, ExportError> {
        let Export {
            lines,
            mut summary,
            withheld,
            everything_withheld,
            topic,
        } = self;
        if (summary.rejected > 0 || summary.refused > 0) && !partial {
            summary.notes.push(format!(
                "nothing published: {} rejected, {} lines refused; correct them and export again, \
                 or publish the complete lines with --partial",
                summary.rejected, summary.refused
            ));
            return Ok(Decision::Nothing(summary));
        }
        if everything_withheld {
            summary.notes.push(
                "--partial: nothing published: a rejected row or message could belong to any line"
                    .into(),
            );
            return Ok(Decision::Nothing(summary));
        }
        // Which lines `partial` leaves out (a few named, all counted in the summary).
        const NAMED: usize = 20;
        for what in withheld.iter().take(NAMED) {
            summary.notes.push(format!("withheld: {what}"));
        }
        if withheld.len() > NAMED {
            let more = withheld.len() - NAMED;
            summary.notes.push(format!("withheld: {more} more lines"));
        }
        summary.total(&lines)?;
        Ok(Decision::Publish(Ready {
            lines,
            summary,
            topic,
        }))
    }
}

/// Lines that may be published.
#[derive(Debug)]
pub struct Ready {
    lines: Vec<CostEvent>,
    summary: ExportSummary,
    topic: String,
}

impl Ready {
    /// The lines, sorted by `(source, id)` for bill files.
    pub fn lines(&self) -> &[CostEvent] {
        &self.lines
    }

    /// The summary of a dry run: the lines were shown, not published.
    pub fn dry_run(mut self) -> ExportSummary {
        self.summary
            .notes
            .push("--dry-run: printed, not published".into());
        self.summary
    }

    /// Hands the lines, keyed by [`CostEvent::partition_key`] (standard §6.1), to `deliver`
    /// with the cost topic; `deliver` returns once every line is acknowledged.
    pub async fn publish<E>(
        mut self,
        deliver: impl AsyncFnOnce(&str, Vec<(String, &CostEvent)>) -> Result<(), E>,
    ) -> Result<ExportSummary, ExportError>
    where
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let keyed = self
            .lines
            .iter()
            .map(|line| (line.partition_key().to_owned(), line))
            .collect();
        deliver(&self.topic, keyed)
            .await
            .map_err(|e| ExportError::Publish(e.into()))?;
        self.summary.published = count(self.lines.len());
        Ok(self.summary)
    }
}

/// A count of things in memory.
fn count(n: usize) -> u64 {
    n as u64
}

/// A line without a cluster gets the one its account's `[[cost_scopes]]` names: the exporter
/// knows it, so the line is keyed like that cluster's usage (standard §6.1) and meets it in the
/// tracker's slot.
fn set_scope_cluster(settings: &Settings, line: &mut CostEvent) {
    if line.cluster_id.is_none() {
        line.cluster_id = settings.scope_cluster(line);
    }
}
