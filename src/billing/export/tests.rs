use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::summary::decimal;
use super::*;
use crate::standard::EpochMillis;

/// 2026-11-02T00:00:00Z, the day of the rows.
const NOV_2: EpochMillis = 1_793_577_600_000;
/// When the export runs: a week later.
const EXPORTED_AT: EpochMillis = NOV_2 + 7 * 86_400_000;

const HEADER: &str = "billing_account_id,service.id,service.description,sku.id,sku.description,usage_start_time,usage_end_time,project.id,labels,cost,currency,credits";

/// One GCP CSV row: an hour of cores of cluster `gke-1`, from `hour` on 2026-11-02.
fn row(hour: u32, cost: &str) -> String {
    let labels = r#""[{""key"":""goog-k8s-cluster-name"",""value"":""gke-1""}]""#;
    format!(
        "01A2B3-C4D5E6-F7A8B9,6F81-5844-456A,Compute Engine,CF4E-A0C7-E3BF,N2 Instance Core running in Frankfurt,\
         2026-11-02 {hour:02}:00:00 UTC,2026-11-02 {:02}:00:00 UTC,proj-1,{labels},{cost},EUR,[]",
        hour + 1
    )
}

fn bill(dir: &Path, rows: &[String]) -> PathBuf {
    let path = dir.join("bill.csv");
    std::fs::write(&path, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
    path
}

/// What an export reported, in order (bytes read summed up).
#[derive(Default)]
struct Recorded {
    events: RefCell<Vec<String>>,
    bytes: RefCell<u64>,
}

impl Recorded {
    fn push(&self, event: String) {
        self.events.borrow_mut().push(event);
    }
}

impl Progress for Recorded {
    fn files(&self, total_bytes: u64) {
        self.push(format!("files {total_bytes}"));
    }
    fn file(&self, path: &Path) {
        self.push(format!("file {}", path.display()));
    }
    fn read(&self, bytes: u64) {
        *self.bytes.borrow_mut() += bytes;
    }
    fn done(&self) {
        self.push("done".into());
    }
    fn problem(&self, problem: &dyn fmt::Display) {
        self.push(problem.to_string());
    }
}

async fn export_gcp(files: &[PathBuf], progress: &impl Progress) -> Result<Export, ExportError> {
    let settings = Settings::default();
    let options = settings.export_options(None, EXPORTED_AT).unwrap();
    let source = Source::Gcp {
        files,
        format: None,
    };
    read(&settings, source, &options, progress).await
}

#[tokio::test]
async fn a_bill_file_is_read_behind_progress_and_merged_into_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = bill(dir.path(), &[row(0, "0.25"), row(0, "0.5"), row(1, "-1.5")]);
    let progress = Recorded::default();
    let export = export_gcp(std::slice::from_ref(&path), &progress)
        .await
        .unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        *progress.events.borrow(),
        [
            format!("files {size}"),
            format!("file {}", path.display()),
            "done".into()
        ]
    );
    assert_eq!(*progress.bytes.borrow(), size);
    let summary = export.summary().clone();
    assert_eq!((summary.rows, summary.rejected, summary.lines), (3, 0, 2));

    let Decision::Publish(ready) = export.settle(false).unwrap() else {
        panic!("nothing was rejected");
    };
    let costs: BTreeMap<_, _> = ready
        .lines()
        .iter()
        .map(|l| (l.charge_period_start, l.billed_cost_micros))
        .collect();
    assert_eq!(
        costs,
        [(NOV_2, 750_000), (NOV_2 + 3_600_000, -1_500_000)].into()
    );
    let summary = ready.dry_run();
    assert_eq!(
        summary.to_string(),
        "export-costs: 3 rows read, 0 rejected; 2 bill lines, 0 published; \
         EUR billed -0.750000 effective -0.750000\n  --dry-run: printed, not published"
    );
}

#[tokio::test]
async fn a_rejected_row_publishes_nothing_unless_partial_which_withholds_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = bill(
        dir.path(),
        &[row(0, "0.25"), row(0, "1.0.0"), row(1, "0.5")],
    );
    let progress = Recorded::default();
    let files = [path.clone()];
    let export = export_gcp(&files, &progress).await.unwrap();
    let events = progress.events.borrow().clone();
    assert!(
        events[2].starts_with(&format!("{}: line 3: cost: ", path.display())),
        "the row is reported while reading, before done: {events:?}"
    );
    assert_eq!(events[3], "done");
    let Decision::Nothing(summary) = export.settle(false).unwrap() else {
        panic!("a row was rejected");
    };
    assert_eq!(
        summary.to_string(),
        "export-costs: 3 rows read, 1 rejected; 2 bill lines, 1 withheld, 0 published\n  \
         nothing published: 1 rejected, 0 lines refused; correct them and export again, \
         or publish the complete lines with --partial"
    );

    let export = export_gcp(&files, &()).await.unwrap();
    let Decision::Publish(ready) = export.settle(true).unwrap() else {
        panic!("--partial lets the complete line out");
    };
    assert_eq!(ready.lines().len(), 1);
    assert_eq!(ready.lines()[0].charge_period_start, NOV_2 + 3_600_000);
    let summary = ready.dry_run();
    assert!(
        summary.notes[0].starts_with("withheld: bill line gcp-")
            && summary.notes[0]
                .ends_with(&format!("(a row was rejected: {}: line 3)", path.display())),
        "{summary}"
    );
}

#[tokio::test]
async fn publishing_hands_the_keyed_lines_to_the_publisher_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let files = [bill(dir.path(), &[row(0, "0.25"), row(1, "0.5")])];
    let Decision::Publish(ready) = export_gcp(&files, &())
        .await
        .unwrap()
        .settle(false)
        .unwrap()
    else {
        panic!("nothing was rejected");
    };
    let mut handed = Vec::new();
    let summary = ready
        .publish(async |topic: &str, keyed: Vec<(String, &CostEvent)>| {
            handed.extend(keyed.iter().map(|(key, line)| {
                (
                    topic.to_owned(),
                    key.clone(),
                    line.partition_key().to_owned(),
                )
            }));
            Ok::<_, std::io::Error>(())
        })
        .await
        .unwrap();
    assert_eq!(summary.published, 2);
    assert_eq!(handed.len(), 2);
    for (topic, key, expected) in handed {
        assert_eq!(topic, crate::standard::schemas::topics::COST_EVENTS);
        assert_eq!(key, expected);
    }

    let Decision::Publish(ready) = export_gcp(&files, &())
        .await
        .unwrap()
        .settle(false)
        .unwrap()
    else {
        panic!("nothing was rejected");
    };
    let error = ready
        .publish(async |_: &str, _: Vec<(String, &CostEvent)>| {
            Err(std::io::Error::other("broker gone"))
        })
        .await
        .unwrap_err();
    assert!(matches!(error, ExportError::Publish(_)));
    assert_eq!(error.to_string(), "broker gone");
}

#[tokio::test]
async fn a_missing_file_is_an_error_naming_it() {
    let missing = PathBuf::from("/nonexistent/bill.csv");
    let error = export_gcp(std::slice::from_ref(&missing), &())
        .await
        .unwrap_err();
    assert!(matches!(&error, ExportError::Read { path, .. } if *path == missing));
    assert_eq!(error.to_string(), "reading /nonexistent/bill.csv");
    assert!(std::error::Error::source(&error).is_some());
}

#[tokio::test]
async fn a_bad_rate_card_or_period_stops_before_the_topic_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::default();
    let options = settings.export_options(None, EXPORTED_AT).unwrap();
    let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
    let (from, to) = (at(NOV_2 as u64), at(NOV_2 as u64 + 86_400_000));
    let card_text = |currency: &str| {
        format!(
            "cluster_id = \"onprem-1\"\nbilling_account = \"dc-1\"\ncurrency = \"{currency}\"\n"
        )
    };
    let run = |text: String, from, to| {
        let card = dir.path().join("card.toml");
        std::fs::write(&card, text).unwrap();
        let settings = &settings;
        let options = &options;
        async move {
            let source = Source::RateCard {
                card: &card,
                from,
                to,
            };
            read(settings, source, options, &()).await.unwrap_err()
        }
    };

    let error = run("cluster_id = [".into(), from, to).await;
    assert!(matches!(error, ExportError::ParseCard { .. }), "{error}");
    assert!(error.to_string().starts_with("parsing "), "{error}");

    let error = run(card_text("eur"), from, to).await;
    assert!(matches!(error, ExportError::InvalidCard { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "currency \"eur\" is not an ISO 4217 code"
    );

    let error = run(card_text("EUR"), to, from).await;
    assert!(matches!(error, ExportError::Period(_)), "{error}");
    assert_eq!(error.to_string(), "--to must be after --from");
}

#[test]
fn the_summary_names_refused_and_withheld_lines_only_when_there_are_some() {
    let mut summary = ExportSummary::new("usage messages");
    summary.rows = 5;
    summary.lines = 4;
    summary.published = 4;
    assert_eq!(
        summary.to_string(),
        "export-costs: 5 usage messages read, 0 rejected; 4 bill lines, 4 published"
    );
    summary.refused = 1;
    summary.withheld = 2;
    summary.totals.insert("EUR".into(), (1_500_000, -3));
    summary.totals.insert("CHF".into(), (0, 1));
    summary.notes.push("a note".into());
    assert_eq!(
        summary.to_string(),
        "export-costs: 5 usage messages read, 0 rejected; 4 bill lines, 1 refused, 2 withheld, \
         4 published; CHF billed 0.000000 effective 0.000001; EUR billed 1.500000 effective \
         -0.000003\n  a note"
    );
}

#[tokio::test]
async fn totals_are_exact_and_an_overflow_is_an_error() {
    assert_eq!(decimal(-1_234_567), "-1.234567");
    assert_eq!(
        decimal(i128::MIN),
        "-170141183460469231731687303715884.105728"
    );
    let dir = tempfile::tempdir().unwrap();
    let files = [bill(dir.path(), &[row(0, "0.25")])];
    let Decision::Publish(ready) = export_gcp(&files, &())
        .await
        .unwrap()
        .settle(false)
        .unwrap()
    else {
        panic!("nothing was rejected");
    };
    let mut summary = ExportSummary::new("rows");
    summary.totals.insert("EUR".into(), (i128::MAX, 0));
    let error = summary.total(ready.lines()).unwrap_err();
    assert!(matches!(&error, ExportError::TotalOverflow { currency } if currency == "EUR"));
    assert_eq!(error.to_string(), "the EUR total overflows");
}
