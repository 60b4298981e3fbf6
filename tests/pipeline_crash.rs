//! No loss, no double count across crashes: a tracker killed with SIGKILL at least five times at
//! random points (and once stopped with SIGTERM) mid-stream, over input that producers sent in
//! batches on two partitions, and restarted ends with the same figures as an uninterrupted run.

mod common;

use std::time::Duration;

use common::{committed_offsets, figures, tracker_config, tracker_run};

const T0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_tracker_matches_an_uninterrupted_run() {
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka();
    // Six hours of the demo cluster, sampled every 10 s, and its bill.
    let (usage_topic, cost_topic, input) =
        common::demo_input(&kafka, &registry, "crash", 2, (T0, 6, 42)).await;

    let dir = tempfile::tempdir().unwrap();
    let run = |config: &std::path::Path, database_url: &str, until_caught_up: bool| {
        tracker_run(&registry, config, database_url, until_caught_up)
    };
    let config = |name: &str, records: &str, dead_letters: &str| {
        let topics = [
            ("usage_events", usage_topic.as_str()),
            ("cost_events", cost_topic.as_str()),
            ("usage_records", records),
            ("dead_letters", dead_letters),
        ];
        tracker_config(dir.path(), name, 2, "50ms", &topics)
    };

    // The reference: one uninterrupted run.
    let reference_records = common::unique("crash-records-ref");
    let reference_config = config(
        "reference",
        &reference_records,
        &common::unique("crash-dlq-ref"),
    );
    let reference_db = common::fresh_database().await;
    let status = run(&reference_config, &reference_db, true)
        .status()
        .await
        .unwrap();
    assert!(status.success());

    // The same input, killed with SIGKILL at several points, then finished.
    let crashed_records = common::unique("crash-records");
    let crashed_config = config("crashed", &crashed_records, &common::unique("crash-dlq"));
    let crashed_db = common::fresh_database().await;
    let total_input = (input.usage.len() + input.costs.len()) as i64;
    let mut progress = Vec::new();
    // Broker quirk (Tansu 0.6): a member killed with SIGKILL is never evicted from its group, and
    // a replacement that joins the same group stays with an empty assignment (Apache Kafka
    // expires the dead member after session.timeout.ms and rebalances). Each incarnation
    // therefore joins a group of its own; what carries over between incarnations is the
    // Postgres checkpoint (input positions, state, slot epochs), which is what this test is about.
    let incarnation_group = || common::unique("crash-incarnation");
    // Random kill points (the seed is printed, to replay a failure): five SIGKILLs, one SIGTERM.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut state = u64::from(seed) | 1;
    let mut random_ms = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % 120
    };
    let graceful_at = 2;
    let delays: Vec<u64> = (0..6).map(|_| random_ms()).collect();
    eprintln!(
        "kill delays after a checkpoint (ms): {delays:?}, SIGTERM at #{graceful_at}, seed {seed}"
    );
    let mut kills = 0;
    for (round, extra_delay_ms) in delays.into_iter().enumerate() {
        let before = committed_offsets(&crashed_db).await;
        if before == total_input {
            break; // An incarnation got through everything before its kill.
        }
        let mut child = run(&crashed_config, &crashed_db, false)
            .env("USAGE_TRACKER__KAFKA__GROUP_ID", incarnation_group())
            .spawn()
            .unwrap();
        // Kill once a checkpoint of this incarnation has committed, a little later each time,
        // so the kills land between and during checkpoints.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while committed_offsets(&crashed_db).await <= before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no checkpoint within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(extra_delay_ms)).await;
        if round == graceful_at {
            // One graceful stop mid-stream: SIGTERM flushes, commits and exits 0 in time.
            let pid = child.id().unwrap().to_string();
            let term = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap();
            assert!(term.success());
            let exited = tokio::time::timeout(Duration::from_secs(25), child.wait()).await;
            let status = exited.expect("exits within the shutdown deadline").unwrap();
            assert!(status.success(), "graceful stop: {status}");
        } else {
            child.start_kill().unwrap(); // SIGKILL
            child.wait().await.unwrap();
            kills += 1;
        }
        progress.push(committed_offsets(&crashed_db).await);
    }
    let status = run(&crashed_config, &crashed_db, true)
        .env("USAGE_TRACKER__KAFKA__GROUP_ID", incarnation_group())
        .status()
        .await
        .unwrap();
    assert!(status.success());

    eprintln!("input offsets committed after each kill: {progress:?} of {total_input}");
    let expected = figures(&reference_db).await;
    assert!(
        expected.len() > 50,
        "the reference produced {} rows",
        expected.len()
    );
    let mid_stream = progress.iter().filter(|p| **p < total_input).count();
    assert!(
        kills >= 5 && mid_stream >= 5,
        "five kills must land before the end of the input: {kills} kills, offsets {progress:?} of {total_input}"
    );
    assert_eq!(
        figures(&crashed_db).await,
        expected,
        "offsets after kills: {progress:?}"
    );

    // Kafka: the latest revision of every key carries the Postgres figure.
    let latest = common::latest_records(&kafka, &endpoint, &crashed_records, expected.len()).await;
    assert_eq!(latest.len(), expected.len());
    for ((cluster, namespace, window_start), (_, _, _, cost_total)) in &expected {
        let record = &latest[&format!("{cluster}/{namespace}/{window_start}")];
        let micros: i64 = (cost_total.parse::<f64>().unwrap() * 1e6).round() as i64;
        assert_eq!(
            record.cost_total_micros, micros,
            "{cluster}/{namespace}/{window_start}"
        );
    }
}
