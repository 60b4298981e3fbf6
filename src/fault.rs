//! Faults a test can inject into a tracker process, to prove what a crash or a stall at a given
//! point does. Read once from `USAGE_TRACKER_FAULT`; without it, nothing happens.

use std::sync::atomic::Ordering;
use std::time::Duration;

/// A fault a test can inject through `USAGE_TRACKER_FAULT` (tests/outbox.rs, tests/faults.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `abort-after-commit`: die right after the first checkpoint with messages commits, before
    /// they are published.
    AbortAfterCommit,
    /// `abort-after-publish` (`elastic`): die right after a batch's events are acknowledged by
    /// the broker, before the input offsets are committed.
    AbortAfterPublish,
    /// `stall-before-commit:SECONDS`: once, before the first checkpoint with messages commits,
    /// stop for that long (a process paused by its host, a long GC, a network partition).
    StallBeforeCommit,
}

fn fault_setting() -> Option<&'static str> {
    static REQUESTED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    REQUESTED
        .get_or_init(|| std::env::var("USAGE_TRACKER_FAULT").ok())
        .as_deref()
}

/// Whether the process was started with `fault` requested.
pub fn fault_requested(fault: Fault) -> bool {
    match fault {
        Fault::AbortAfterCommit => fault_setting() == Some("abort-after-commit"),
        Fault::AbortAfterPublish => fault_setting() == Some("abort-after-publish"),
        Fault::StallBeforeCommit => {
            fault_setting().is_some_and(|f| f.starts_with("stall-before-commit:"))
        }
    }
}

/// The stall of [`Fault::StallBeforeCommit`], the first time it is asked for.
pub fn stall_once() -> Option<Duration> {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let seconds = fault_setting()?
        .strip_prefix("stall-before-commit:")?
        .parse()
        .ok()?;
    (!DONE.swap(true, Ordering::Relaxed)).then(|| Duration::from_secs(seconds))
}
