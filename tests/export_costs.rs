//! `usage-tracker export-costs` as an operator meets it, without a broker (`--dry-run` prints
//! the CostEvents): a malformed row is reported with its file and line while the rest goes
//! through, `--strict` makes it fatal, and exporting a file twice gives the same lines. Publishing
//! itself is covered end to end in tests/scenarios.rs.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

const HEADER: &str = "billing_account_id,service.id,service.description,sku.id,sku.description,usage_start_time,usage_end_time,project.id,labels,cost,currency,credits";

fn row(hour: u32, cost: &str) -> String {
    let labels = r#""[{""key"":""goog-k8s-cluster-name"",""value"":""gke-1""}]""#;
    format!(
        "01A2B3-C4D5E6-F7A8B9,6F81-5844-456A,Compute Engine,CF4E-A0C7-E3BF,N2 Instance Core running in Frankfurt,\
         2026-11-02 {hour:02}:00:00 UTC,2026-11-02 {:02}:00:00 UTC,proj-1,{labels},{cost},EUR,[]",
        hour + 1
    )
}

fn export(args: &[&str], file: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"))
        .args(["export-costs", "gcp", "--dry-run", "--config"])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/scenarios/single-user-gcp/usage-tracker.toml"),
        )
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn bill(dir: &Path, rows: &[String]) -> std::path::PathBuf {
    let path = dir.join("bill.csv");
    std::fs::write(&path, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
    path
}

#[test]
fn a_malformed_row_is_reported_with_its_line_and_the_rest_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let path = bill(
        dir.path(),
        &[row(0, "0.25"), row(1, "not-a-number"), row(2, "0.5")],
    );
    let output = export(&[], &path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: line 3: ", path.display())) && stderr.contains("cost"),
        "the bad row (line 3, after the header) is named with its column: {stderr}"
    );
    assert!(
        stderr.contains("3 rows read, 1 rejected; 2 bill lines"),
        "{stderr}"
    );
    let lines = lines(&output);
    let amounts: Vec<i64> = lines
        .iter()
        .map(|l| l["effective_cost_micros"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts.iter().sum::<i64>(), 750_000);
    assert!(lines
        .iter()
        .all(|l| l["cluster_id"] == "gke-1" && l["category"] == "compute"));
}

#[test]
fn strict_stops_at_the_first_malformed_row_and_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = bill(
        dir.path(),
        &[row(0, "0.25"), row(1, "1.0.0"), row(2, "0.5")],
    );
    let output = export(&["--strict"], &path);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "no line is published");
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 3"));
}

#[test]
fn exporting_again_gives_the_same_lines_and_a_later_export_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = bill(dir.path(), &[row(0, "0.25"), row(1, "0.5")]);
    // `time` says when the export ran; everything else must be equal.
    let without_time = |mut lines: Vec<Value>| {
        lines.iter_mut().for_each(|l| {
            l.as_object_mut().unwrap().remove("time");
        });
        lines
    };
    let first = without_time(lines(&export(&["--revision", "1"], &path)));
    let again = without_time(lines(&export(&["--revision", "1"], &path)));
    assert_eq!(first, again, "same ids, same amounts, same revision");
    let corrected = bill(dir.path(), &[row(0, "0.2"), row(1, "0.5")]);
    let later = lines(&export(&[], &corrected));
    let ids = |l: &[Value]| l.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&later), ids(&first), "a corrected bill keeps the ids");
    assert!(
        later.iter().all(|l| l["revision"].as_i64().unwrap() > 1),
        "and replaces by revision"
    );
    assert_eq!(
        later[0]["effective_cost_micros"].as_i64().unwrap()
            + later[1]["effective_cost_micros"].as_i64().unwrap(),
        700_000
    );
}

#[test]
fn a_line_without_a_cluster_takes_the_cluster_of_its_cost_scope() {
    let dir = tempfile::tempdir().unwrap();
    let untagged = "01A2B3-C4D5E6-F7A8B9,95FF-2EF5-5EA1,Cloud Storage,E5F0-6A5D-7BAD,Standard Storage Frankfurt,\
        2026-11-02 00:00:00 UTC,2026-11-02 01:00:00 UTC,ferrisdx-alice,[],0.1,EUR,[]";
    let path = bill(dir.path(), &[untagged.to_owned()]);
    let lines = lines(&export(&[], &path));
    // deploy/scenarios/single-user-gcp: [[cost_scopes]] ferrisdx-alice -> gke-single.
    assert_eq!(lines[0]["cluster_id"], "gke-single");
    assert_eq!(lines[0]["category"], "storage");
}
