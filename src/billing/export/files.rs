//! Bill files (GCP, FOCUS) -> bill lines.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{count, set_scope_cluster, Export, ExportError, ExportSummary, Progress};
use crate::billing::{Consolidator, ExportOptions, RowAt, RowError};
use crate::config::Settings;
use crate::standard::CostEvent;

/// A reader's rows: each one's event with its 1-based line, or why it was rejected.
pub(super) type Rows<'a> = Box<dyn Iterator<Item = Result<(u64, CostEvent), RowError>> + 'a>;

/// Reads every file through `reader` (reporting the bytes read) and merges the rows into bill
/// lines. Bad rows are reported as `FILE: line N: ...`, refused lines as `FILE: line N: bill
/// line ID (K rows): ...` (N: the line's first row).
pub(super) fn read<'a, P: Progress>(
    settings: &Settings,
    files: &[PathBuf],
    options: &ExportOptions,
    progress: &'a P,
    reader: impl Fn(&Path, Counted<'a, P>) -> Rows<'a>,
) -> Result<Export, ExportError> {
    let mut total_bytes = 0;
    for path in files {
        total_bytes += std::fs::metadata(path)
            .map_err(|source| ExportError::Read {
                path: path.clone(),
                source,
            })?
            .len();
    }
    progress.files(total_bytes);
    let mut summary = ExportSummary::new("rows");
    let mut lines = Consolidator::default();
    for (input, path) in files.iter().enumerate() {
        progress.file(path);
        let file = File::open(path).map_err(|source| ExportError::Open {
            path: path.clone(),
            source,
        })?;
        for row in reader(path, Counted { file, progress }) {
            summary.rows += 1;
            match row {
                Ok((line, event)) => lines.add(event, RowAt { input, line }),
                Err(error) => {
                    summary.rejected += 1;
                    progress.problem(&format_args!("{}: {error}", path.display()));
                    let at = RowAt {
                        input,
                        line: error.line,
                    };
                    lines.reject(&error.scope, at);
                }
            }
        }
    }
    progress.done();
    let at = |at: RowAt| format!("{}: line {}", files[at.input].display(), at.line);
    let out = lines.finish(
        |line| set_scope_cluster(settings, line),
        options.exported_at,
    );
    for refused in &out.refused {
        progress.problem(&format_args!(
            "{}: bill line {} ({} rows): {}",
            at(refused.first),
            refused.id,
            refused.rows,
            refused.message
        ));
    }
    summary.refused = count(out.refused.len());
    summary.withheld = count(out.withheld.len());
    summary.lines = count(out.lines.len() + out.refused.len() + out.withheld.len());
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
        topic: settings.topics.cost_events.clone(),
    })
}

/// A bill file that reports the bytes read from it.
pub(super) struct Counted<'a, P> {
    file: File,
    progress: &'a P,
}

impl<P: Progress> Read for Counted<'_, P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.progress.read(count(n));
        Ok(n)
    }
}
