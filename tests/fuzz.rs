//! The fuzz targets on stable Rust without cargo-fuzz (see docs/reliability.md, "Fuzzing"). The
//! properties are those of `fuzz/src/lib.rs`, included here as a module, so this runner and the
//! cargo-fuzz targets check the same things.
//!
//! - `every_committed_input_holds_the_properties`: every file under `fuzz/corpus/<target>/` (the
//!   seeds, and every crash found so far) through its target; part of the test suite.
//! - `mutated_inputs_hold_the_properties` (ignored; `scripts/fuzz.sh --engine mutate SECONDS`
//!   runs it, as CI does): for `FUZZ_SECONDS` per target (default 10), inputs made by stacking
//!   random mutations on the corpus: bit flips, interesting bytes, numbers and varints, insertions,
//!   deletions, splices of other inputs, dictionary tokens. Blind (not coverage-guided, unlike
//!   libFuzzer), but it needs no build of its own: it is a test of the crate. `FUZZ_TARGETS`
//!   (comma-separated) picks targets, `FUZZ_SEED` repeats a run. A failing input is written to
//!   `target/fuzz-mutate/<target>/crash-<hash>` and the test fails naming it; an input that takes
//!   more than [`SLOW`] fails too (a hang is caught by the script's `timeout`).
//!
//! The `ecs_document` target also takes the shared Elastic fixture documents as seeds when they
//! are there (`USAGE_TRACKER_ELASTIC_FIXTURES`, else `shared/fixtures/elastic` next to the
//! repository, else `/work/shared/fixtures/elastic`); they are not copied into the repository.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// An input taking longer than this fails the run (the slowest seeds take milliseconds).
const SLOW: Duration = Duration::from_secs(5);
/// The longest input made.
const MAX_LEN: usize = 64 * 1024;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// The shared Elastic fixtures, if this machine has them.
fn elastic_fixtures() -> Option<PathBuf> {
    [
        std::env::var("USAGE_TRACKER_ELASTIC_FIXTURES").ok(),
        Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/elastic").to_owned()),
        Some("/work/shared/fixtures/elastic".to_owned()),
    ]
    .into_iter()
    .flatten()
    .map(PathBuf::from)
    .find(|p| p.is_dir())
}

/// Every file under `dir`, recursively, sorted by path.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The committed corpus of `target`, plus the shared Elastic documents for `ecs_document`.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut paths = files(&corpus_dir(target));
    assert!(!paths.is_empty(), "no corpus for {target}");
    if target == "ecs_document" {
        if let Some(fixtures) = elastic_fixtures() {
            paths.extend(
                files(&fixtures)
                    .into_iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "json")),
            );
        }
    }
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// Runs `input` through `run`; a panic or a slow input fails the test after saving the input.
fn check(target: &str, run: targets::Target, input: &[u8]) {
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| run(input)));
    let took = started.elapsed();
    let problem = match outcome {
        Err(_) => "panicked (message above)".to_owned(),
        Ok(()) if took > SLOW => format!("took {took:?}"),
        Ok(()) => return,
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/fuzz-mutate")
        .join(target);
    std::fs::create_dir_all(&dir).expect("a crash directory");
    let path = dir.join(format!("crash-{:016x}", fnv(input)));
    std::fs::write(&path, input).expect("the crash input written");
    panic!(
        "{target} {problem} on {} ({} bytes): {:?}",
        path.display(),
        input.len(),
        String::from_utf8_lossy(&input[..input.len().min(2000)])
    );
}

#[test]
fn every_committed_input_holds_the_properties() {
    for (target, run) in targets::TARGETS {
        for (path, bytes) in corpus(target) {
            eprintln!("{target}: {}", path.display());
            check(target, *run, &bytes);
        }
    }
}

/// The `valid-*` Avro seeds (written by `fuzz/make_seeds.py`) are events, so the fuzzers start
/// from bodies that get past the decoders.
#[test]
fn the_valid_avro_seeds_decode() {
    use usage_tracker::standard::wire::PreparedReader;
    use usage_tracker::standard::{CostEvent, StandardRecord, UsageEvent};
    let usage = PreparedReader::<UsageEvent>::new(UsageEvent::schema().clone()).unwrap();
    let cost = PreparedReader::<CostEvent>::new(CostEvent::schema().clone()).unwrap();
    let valid = |target: &str| {
        corpus(target).into_iter().filter(|(path, _)| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("valid-"))
        })
    };
    for (path, body) in valid("avro_usage_event") {
        assert!(usage.read(1, &body).is_ok(), "{}", path.display());
    }
    for (path, body) in valid("avro_cost_event") {
        assert!(cost.read(1, &body).is_ok(), "{}", path.display());
    }
}

#[test]
#[ignore = "a time-bounded fuzz run: scripts/fuzz.sh --engine mutate SECONDS"]
fn mutated_inputs_hold_the_properties() {
    let seconds: f64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .map(|s| s.parse().expect("FUZZ_SECONDS is a number"))
        .unwrap_or(10.0);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .map(|s| s.parse().expect("FUZZ_SEED is a number"))
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("after 1970")
                .as_nanos() as u64
        });
    let only = std::env::var("FUZZ_TARGETS").ok();
    let mut total = 0u64;
    for (target, run) in targets::TARGETS {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|t| t == *target))
        {
            continue;
        }
        let corpus: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, b)| b).collect();
        let mut rng = Rng((seed ^ fnv(target.as_bytes())) | 1);
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let mut runs = 0u64;
        while Instant::now() < deadline {
            for _ in 0..16 {
                let mut input = corpus[rng.below(corpus.len())].clone();
                for _ in 0..1 + rng.below(8) {
                    mutate(&mut input, &corpus, &mut rng);
                }
                input.truncate(MAX_LEN);
                check(target, *run, &input);
                runs += 1;
            }
        }
        eprintln!(
            "fuzz {target}: {runs} inputs in {:.1} s ({} seeds), FUZZ_SEED={seed}",
            started.elapsed().as_secs_f64(),
            corpus.len()
        );
        total += runs;
    }
    eprintln!("fuzz: {total} inputs, no property broken");
}

// ---- Mutations ----

/// xorshift64*: small, fast, repeatable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

const INTERESTING_BYTES: &[u8] = &[
    0, 1, 2, 0x7f, 0x80, 0x81, 0xfe, 0xff, b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'\n',
    b'\r', b'=', b'.', b'-', b'e', b'0', b'9', 0x1e, 0xc2, 0xe2,
];

/// Numbers and tokens at the edges of what the readers take.
const TOKENS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1e21",
    "1e22",
    "1e308",
    "1e309",
    "-1e309",
    "4.9e-324",
    "0.000000000001",
    "0.0000000000001",
    "NaN",
    "Infinity",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551616",
    "170141183460469231731687303715884105728",
    "99999999999999999999999999999999999999999",
    "100000000000",
    "100000000000.000001",
    "null",
    "true",
    "\"\"",
    "[]",
    "{}",
    "\"\\u0000\"",
    "\\u0000",
    "\\ud800",
    "\u{85}",
    "é",
    "\"\"\"",
    "1970-01-01T00:00:00Z",
    "1999-12-31T23:59:59.999Z",
    "2100-01-01T00:00:00Z",
    "2100-01-01T00:00:00.001Z",
    "9999-12-31T23:59:59.999999999Z",
    "0000-01-01T00:00:00Z",
    "2026-11-30 23:00:00 UTC",
    "2026-12-31",
    "+01:00",
    "EUR",
    "eur",
    "\"*\"",
    "[[fixed]]",
    "[[node_pools]]",
    "[[storage_classes]]",
];

/// Avro varints at the edges: the longest, too long, the extremes of zigzag.
const VARINTS: &[&[u8]] = &[
    &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
    &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ],
    &[0x80, 0x80, 0x80, 0x80, 0x10],
    &[0xfe, 0xff, 0xff, 0xff, 0x0f],
    &[0x80, 0x01],
    &[0x7f],
    &[0x01],
    &[0x03],
    &[0x02],
    &[0x00],
];

fn mutate(input: &mut Vec<u8>, corpus: &[Vec<u8>], rng: &mut Rng) {
    let len = input.len();
    let at = |rng: &mut Rng| rng.below(len + 1);
    match rng.below(12) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next() as u8;
        }
        2 if len > 0 => {
            let i = rng.below(len);
            input[i] = *rng.pick(INTERESTING_BYTES);
        }
        3 => {
            let i = at(rng);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            input.splice(i..i, bytes);
        }
        4 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below(16.min(len - i));
            input.drain(i..i + n);
        }
        5 if len > 0 => {
            // Repeat a piece of the input somewhere else in it.
            let i = rng.below(len);
            let n = 1 + rng.below(64.min(len - i));
            let piece = input[i..i + n].to_vec();
            let j = at(rng);
            input.splice(j..j, piece);
        }
        6 => {
            // A piece of another input, inserted or overwriting.
            let other = rng.pick(corpus);
            if !other.is_empty() {
                let i = rng.below(other.len());
                let n = 1 + rng.below(128.min(other.len() - i));
                let piece = other[i..i + n].to_vec();
                let j = at(rng);
                if rng.below(2) == 0 {
                    input.splice(j..j, piece);
                } else {
                    let end = (j + n).min(len);
                    input.splice(j..end, piece);
                }
            }
        }
        7 => {
            let token = rng.pick(TOKENS).as_bytes().to_vec();
            let i = at(rng);
            input.splice(i..i, token);
        }
        8 if len > 0 => {
            // A number (a run of digits, signs, dots and exponents) replaced by an edge case.
            let i = rng.below(len);
            let numeric = |b: u8| b.is_ascii_digit() || b"+-.eE".contains(&b);
            if numeric(input[i]) {
                let start = (0..i).rev().take_while(|&k| numeric(input[k])).last();
                let start = start.unwrap_or(i);
                let end = (i..len).find(|&k| !numeric(input[k])).unwrap_or(len);
                let token = rng.pick(TOKENS).as_bytes().to_vec();
                input.splice(start..end, token);
            }
        }
        9 => {
            let i = at(rng);
            let varint = rng.pick(VARINTS).to_vec();
            if rng.below(2) == 0 || i == len {
                input.splice(i..i, varint);
            } else {
                input.splice(i..i + 1, varint);
            }
        }
        10 if len > 0 => {
            input.truncate(rng.below(len));
        }
        11 => {
            // Another input, whole, spliced in at a separator (several documents, rows, lines).
            let other = rng.pick(corpus).clone();
            let i = at(rng);
            let separator = *rng.pick(&[b'\n', targets::DOCUMENT_SEPARATOR, 0]);
            input.splice(i..i, std::iter::once(separator).chain(other));
        }
        _ => {}
    }
}
