//! Streaming CSV and JSON-lines plumbing shared by the readers: one record at a time, each with
//! the 1-based line it starts on, a bad record reported as a [`RowError`] and the next one read.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use super::RowError;

/// CSV header names -> column index, compared after a reader-specific normalisation.
#[derive(Debug, Clone)]
pub struct Columns {
    index: HashMap<String, usize>,
    normalise: fn(&str) -> String,
}

impl Columns {
    /// The columns of a header record (a UTF-8 byte order mark on the first name is dropped).
    pub fn new(headers: &csv::StringRecord, normalise: fn(&str) -> String) -> Self {
        let index = headers
            .iter()
            .enumerate()
            .map(|(i, name)| (normalise(name.trim_start_matches('\u{feff}')), i))
            .collect();
        Self { index, normalise }
    }

    /// Whether the header has a column `name`.
    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(&(self.normalise)(name))
    }

    /// The trimmed cell of column `name`; `None` when the column is absent or the cell empty.
    pub fn get<'r>(&self, record: &'r csv::StringRecord, name: &str) -> Option<&'r str> {
        let i = *self.index.get(&(self.normalise)(name))?;
        record.get(i).map(str::trim).filter(|cell| !cell.is_empty())
    }
}

/// The records of a CSV file after its header, each with its line number.
pub struct CsvRecords<R> {
    reader: csv::Reader<R>,
    last_line: u64,
    done: bool,
}

/// Opens a CSV input and reads its header. A header that cannot be read is an error on line 1.
pub fn csv_records<R: Read>(input: R) -> Result<(csv::StringRecord, CsvRecords<R>), RowError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let headers = reader
        .headers()
        .cloned()
        .map_err(|e| RowError::new(1, format!("cannot read the CSV header: {e}")))?;
    let records = CsvRecords {
        reader,
        last_line: 1,
        done: false,
    };
    Ok((headers, records))
}

impl<R: Read> Iterator for CsvRecords<R> {
    type Item = Result<(u64, csv::StringRecord), RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut record = csv::StringRecord::new();
        match self.reader.read_record(&mut record) {
            Ok(false) => None,
            Ok(true) => {
                self.last_line = record.position().map_or(self.last_line + 1, |p| p.line());
                Some(Ok((self.last_line, record)))
            }
            Err(e) => Some(Err(self.error(e))),
        }
    }
}

impl<R> CsvRecords<R> {
    fn error(&mut self, error: csv::Error) -> RowError {
        let line = error.position().map_or(self.last_line + 1, |p| p.line());
        self.last_line = line;
        // An I/O error does not go away by reading on: stop after reporting it.
        self.done = matches!(error.kind(), csv::ErrorKind::Io(_));
        let message = match error.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("not a valid CSV row: {len} fields where the header has {expected_len}"),
            _ => format!("not a valid CSV row: {error}"),
        };
        RowError::new(line, message)
    }
}

/// The non-blank lines of a JSON-lines input as bytes, each with its line number. A line is read
/// whole before it is parsed, so a bad line never desynchronises the next one.
pub struct JsonLines<R> {
    reader: BufReader<R>,
    line: u64,
    buffer: Vec<u8>,
    done: bool,
}

impl<R: Read> JsonLines<R> {
    /// Reads `input` line by line.
    pub fn new(input: R) -> Self {
        Self {
            reader: BufReader::new(input),
            line: 0,
            buffer: Vec::new(),
            done: false,
        }
    }

    /// The next non-blank line: `(line number, bytes)`, an I/O error (after which it stops), or
    /// `None` at the end.
    pub fn next_line(&mut self) -> Option<Result<(u64, &[u8]), RowError>> {
        loop {
            if self.done {
                return None;
            }
            self.buffer.clear();
            self.line += 1;
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => self.done = true,
                Ok(_) if self.buffer.iter().all(u8::is_ascii_whitespace) => {}
                Ok(_) => return Some(Ok((self.line, &self.buffer))),
                Err(e) => {
                    self.done = true;
                    let message = format!("cannot read the input: {e}");
                    return Some(Err(RowError::new(self.line, message)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_carry_their_line_and_bad_rows_do_not_stop_the_file() {
        let text = "a,b\n1,2\n3\n\"multi\nline\",4\n5,6\n";
        let (headers, records) = csv_records(text.as_bytes()).expect("header");
        let columns = Columns::new(&headers, str::to_lowercase);
        let rows: Vec<_> = records.collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].as_ref().map(|(l, _)| *l), Ok(2));
        assert_eq!(rows[1].as_ref().map_err(|e| e.line), Err(3));
        assert_eq!(rows[2].as_ref().map(|(l, _)| *l), Ok(4));
        let (line, record) = rows[3].as_ref().expect("row");
        assert_eq!(*line, 6);
        assert_eq!(columns.get(record, "B"), Some("6"));
        assert_eq!(columns.get(record, "c"), None);
    }

    #[test]
    fn json_lines_skip_blank_lines_and_count_them() {
        let mut lines = JsonLines::new("{}\n\n  \n{\"a\":1}".as_bytes());
        let first = lines.next_line().map(|r| r.map(|(l, b)| (l, b.to_vec())));
        assert_eq!(first, Some(Ok((1, b"{}\n".to_vec()))));
        let second = lines.next_line().map(|r| r.map(|(l, b)| (l, b.to_vec())));
        assert_eq!(second, Some(Ok((4, b"{\"a\":1}".to_vec()))));
        assert!(lines.next_line().is_none());
    }
}
