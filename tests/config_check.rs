//! `usage-tracker config check` and `config defaults`, run as a user would: exit codes, the
//! effective configuration on stdout, secrets redacted, errors naming keys and variables.

use std::path::Path;
use std::process::Command;

use usage_tracker::config::Settings;

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary in `dir` with an environment free of configuration variables plus `env`.
fn usage_tracker(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_usage-tracker"));
    command.current_dir(dir).args(args);
    for (name, _) in std::env::vars_os() {
        let configures = name.to_str().is_some_and(|name| {
            name.starts_with("USAGE_TRACKER")
                || [
                    "KAFKA_BOOTSTRAP_SERVERS",
                    "SCHEMA_REGISTRY_URL",
                    "DATABASE_URL",
                ]
                .contains(&name)
        });
        if configures {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("running usage-tracker");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `config check --config tracker.toml` with `text` as the file.
fn check(text: &str, env: &[(&str, &str)]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tracker.toml"), text).unwrap();
    usage_tracker(
        dir.path(),
        &["config", "check", "--config", "tracker.toml"],
        env,
    )
}

#[test]
fn a_valid_file_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("kafka-password");
    std::fs::write(&password_file, "file-s3cret\n").unwrap();
    let text = format!(
        r#"
[kafka]
bootstrap_servers = "kafka:9093"
properties = {{ "security.protocol" = "SASL_SSL", "sasl.mechanism" = "SCRAM-SHA-512", "sasl.username" = "tracker", "sasl.password" = "kafka-s3cret" }}
producer_properties = {{ "ssl.key.password" = "key-s3cret" }}
properties_files = {{ "sasl.oauthbearer.config" = {file:?} }}

[database]
url = "postgres://tracker:pg-s3cret@postgres:5432/usage?sslmode=verify-full&sslrootcert=/etc/ssl/pg/ca.crt"

[window]
size = "15m"

[allocation]
idle = "share"
other_weights = {{ cpu = 3, memory = 1 }}

[exclusions]
namespaces = ["kube-*"]

[[cost_scopes]]
account = "my-gcp-project"
cluster_id = "gke-prod"
"#,
        file = password_file.display().to_string()
    );
    std::fs::write(dir.path().join("tracker.toml"), text).unwrap();
    let out = usage_tracker(
        dir.path(),
        &["config", "check", "--config", "tracker.toml"],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for expected in [
        "bootstrap_servers = \"kafka:9093\"",
        "\"sasl.mechanism\" = \"SCRAM-SHA-512\"",
        "\"sasl.username\" = \"tracker\"",
        "\"sasl.password\" = \"***\"",
        "\"ssl.key.password\" = \"***\"",
        "\"sasl.oauthbearer.config\" = \"***\"",
        "url = \"postgres://tracker:***@postgres:5432/usage?sslmode=verify-full&sslrootcert=/etc/ssl/pg/ca.crt\"",
        "size = \"15m\"",
        "idle = \"share\"",
        "cluster_id = \"gke-prod\"",
        // Defaults fill in what the file leaves out.
        "retention = \"7days\"",
        "group_id = \"usage-tracker\"",
    ] {
        assert!(out.stdout.contains(expected), "{expected}\n{}", out.stdout);
    }
    for secret in ["pg-s3cret", "kafka-s3cret", "key-s3cret", "file-s3cret"] {
        assert!(
            !out.stdout.contains(secret),
            "{secret} shown:\n{}",
            out.stdout
        );
        assert!(
            !out.stderr.contains(secret),
            "{secret} shown:\n{}",
            out.stderr
        );
    }
    // The output is a configuration file again (minus the redacted secrets).
    let printed: Settings = toml::from_str(&out.stdout).unwrap();
    assert_eq!(printed.window.size.as_secs(), 900);
}

#[test]
fn an_unknown_key_fails_with_the_nearest_valid_name() {
    let out = check("[window]\nsise = \"1h\"\n", &[]);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("unknown field `sise` in [window]; did you mean `size`?"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    let out = check("[alocation]\nidle = \"share\"\n", &[]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("unknown field `alocation` at the top level; did you mean `allocation`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_value_fails_naming_the_key() {
    for (text, key) in [
        ("[window]\nsize = \"7m\"\n", "window.size"),
        ("[window]\nsize = \"soon\"\n", "window.size"),
        ("[allocation]\nidle = \"sometimes\"\n", "allocation.idle"),
        (
            "[allocation]\nother_weights = { cpus = 1 }\n",
            "allocation.other_weights",
        ),
        (
            "[exclusions]\nnamespaces = [\"kube-[\"]\n",
            "exclusions.namespaces",
        ),
        ("[http]\nlisten = \"everywhere\"\n", "http.listen"),
        (
            "[pipeline]\ncheckpoint_interval = 10\n",
            "pipeline.checkpoint_interval",
        ),
        ("[topics]\npartitions = \"three\"\n", "topics.partitions"),
    ] {
        let out = check(text, &[]);
        assert_eq!(out.code, Some(1), "{text}: {}", out.stdout);
        assert!(out.stderr.starts_with("error: "), "{text}: {}", out.stderr);
        assert!(out.stderr.contains(key), "{text}: {}", out.stderr);
    }
}

#[test]
fn a_missing_secret_file_fails_naming_the_key() {
    let out = check(
        "[database]\nurl_file = \"/nonexistent/postgres-url\"\n",
        &[],
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("database.url_file: reading /nonexistent/postgres-url"),
        "{}",
        out.stderr
    );
}

#[test]
fn environment_variables_override_the_file() {
    let out = check(
        "[window]\nsize = \"1h\"\n[kafka]\ngroup_id = \"from-file\"\n",
        &[
            ("USAGE_TRACKER__WINDOW__SIZE", "15m"),
            ("USAGE_TRACKER__PIPELINE__CHECKPOINT_INTERVAL", "5s"),
            (
                "USAGE_TRACKER__KAFKA__PROPERTIES__SASL.MECHANISM",
                "SCRAM-SHA-512",
            ),
            (
                "USAGE_TRACKER__KAFKA__PROPERTIES__SASL.PASSWORD",
                "env-s3cret",
            ),
            ("KAFKA_BOOTSTRAP_SERVERS", "broker:9092"),
            ("DATABASE_URL", "postgres://tracker:env-pg-s3cret@db/usage"),
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for expected in [
        "size = \"15m\"",
        "checkpoint_interval = \"5s\"",
        "group_id = \"from-file\"",
        "\"sasl.mechanism\" = \"SCRAM-SHA-512\"",
        "\"sasl.password\" = \"***\"",
        "bootstrap_servers = \"broker:9092\"",
        "url = \"postgres://tracker:***@db/usage\"",
    ] {
        assert!(out.stdout.contains(expected), "{expected}\n{}", out.stdout);
    }
    assert!(!out.stdout.contains("size = \"1h\""), "{}", out.stdout);
    for secret in ["env-s3cret", "env-pg-s3cret"] {
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
    }
}

#[test]
fn an_unknown_environment_key_is_rejected_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = usage_tracker(
        dir.path(),
        &["config", "check"],
        &[("USAGE_TRACKER__WINDOW__SISE", "15m")],
    );
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stderr.contains(
            "environment variable USAGE_TRACKER__WINDOW__SISE: unknown field `sise` in [window]; did you mean `size`?"
        ),
        "{}",
        out.stderr
    );

    let out = usage_tracker(
        dir.path(),
        &["config", "check"],
        &[("USAGE_TRACKER__TOPICS__PARTITIONS", "many")],
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("environment variable USAGE_TRACKER__TOPICS__PARTITIONS: topics.partitions"),
        "{}",
        out.stderr
    );
}

#[test]
fn defaults_print_the_default_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = usage_tracker(dir.path(), &["config", "defaults"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let printed: Settings = toml::from_str(&out.stdout).unwrap();
    assert_eq!(printed, Settings::default());

    // And they pass the check.
    let out = usage_tracker(dir.path(), &["config", "check"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}
