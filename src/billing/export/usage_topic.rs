//! The rate card's pass over the usage topic -> bill lines.

use std::path::Path;
use std::time::SystemTime;

use super::{count, Export, ExportError, ExportSummary, Progress};
use crate::billing::rate_card::{ObservedCapacity, RateCardBill};
use crate::billing::ExportOptions;
use crate::config::Settings;
use crate::kafka::TopicMessage;
use crate::standard::wire::RecordDecoder;
use crate::standard::UsageEvent;
use crate::time::epoch_ms;

/// Prices the card's cluster for the period from the capacity on the usage topic, folding each
/// message into the per-hour aggregates as it is read (memory: the aggregates, not the topic).
/// Rejected messages are reported as `TOPIC: partition P offset O: ...`, refused lines as
/// `CARD: bill line ID (WHAT): ...`.
pub(super) async fn rate_card(
    settings: &Settings,
    card_path: &Path,
    (from, to): (SystemTime, SystemTime),
    options: &ExportOptions,
    progress: &impl Progress,
) -> Result<Export, ExportError> {
    let text = std::fs::read_to_string(card_path).map_err(|source| ExportError::Read {
        path: card_path.to_owned(),
        source,
    })?;
    let card: RateCardBill = toml::from_str(&text).map_err(|source| ExportError::ParseCard {
        path: card_path.to_owned(),
        source,
    })?;
    card.validate()
        .map_err(|message| ExportError::InvalidCard {
            path: card_path.to_owned(),
            message,
        })?;
    let (from, to) = (epoch_ms(from)?, epoch_ms(to)?);
    RateCardBill::check_period(from, to).map_err(ExportError::Period)?;

    let topic = settings.topics.usage_events.clone();
    let kafka = settings.kafka();
    progress.topic(&topic);
    // The reader blocks; it hands messages over a small bounded channel, so at most that many
    // are in memory while they are decoded and folded in.
    let (sender, mut messages) = tokio::sync::mpsc::channel::<TopicMessage>(256);
    let reading = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || {
            kafka.read_each(&topic, |message| sender.blocking_send(message).is_ok())
        })
    };
    let registry = settings
        .registry()
        .map_err(|e| ExportError::Registry(e.into()))?;
    let decoder = RecordDecoder::<UsageEvent>::new(registry.sr_settings()?);
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
                    progress.problem(&format_args!("{}: {problem}", at()));
                }
            }
            Err(error) => {
                // Undecodable (or the registry is down): a message keyed to another cluster is
                // not the card's; any other may have held capacity of the card's cluster.
                if seen.undecodable(&card, message.key.as_deref()) {
                    summary.rejected += 1;
                    progress.problem(&format_args!("{}: cannot be decoded: {error}", at()));
                }
            }
        }
    }
    reading.await?.map_err(|source| ExportError::Topic {
        topic: topic.clone(),
        source,
    })?;
    progress.done();

    let bill = card.bill(&seen, options);
    let card_name = card_path.display();
    for refused in &bill.refused {
        progress.problem(&format_args!(
            "{card_name}: bill line {} ({}): {}",
            refused.id, refused.what, refused.message
        ));
    }
    summary.refused = count(bill.refused.len());
    summary.withheld = count(bill.withheld.len());
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
    summary.lines = count(bill.lines.len() + bill.refused.len() + bill.withheld.len());
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
        topic: settings.topics.cost_events.clone(),
    })
}
