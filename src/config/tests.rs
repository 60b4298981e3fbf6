use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::load::{levenshtein, lookup, schema_example, MAP_ENTRY};
use super::*;
use crate::allocate::IdleCost;

#[test]
fn a_full_file_parses_and_unknown_keys_are_refused() {
    let text = r#"
        [window]
        size = "15m"
        allowed_lateness = "2m"
        [allocation]
        idle = "share"
        other_weights = { cpu = 3, memory = 1 }
        [rate_card]
        currency = "EUR"
        cpu_core_hour_micros = 31000
        [exclusions]
        cluster_ids = ["azure-databricks"]
        [[cost_scopes]]
        account = "my-gcp-project"
        cluster_id = "gke-prod"
    "#;
    let settings: Settings = toml::from_str(text).unwrap();
    assert_eq!(settings.window().unwrap().spec.size_ms(), 900_000);
    assert_eq!(settings.policy().unwrap().idle, IdleCost::ShareProRata);
    assert_eq!(settings.cost_scopes[0].cluster_id, "gke-prod");
    let unknown = toml::from_str::<Settings>("[window]\nsise = \"1h\"").unwrap_err();
    assert!(
        unknown.to_string().contains("unknown field `sise`"),
        "{unknown}"
    );
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn environment_variables_set_any_key_typed_by_the_schema() {
    let settings = Settings::load_with_env(
        None,
        env(&[
            ("USAGE_TRACKER__WINDOW__SIZE", "15m"),
            ("USAGE_TRACKER__PIPELINE__CHECKPOINT_INTERVAL", "5s"),
            ("USAGE_TRACKER__KAFKA__GROUP_ID", "42"),
            (
                "USAGE_TRACKER__KAFKA__PROPERTIES__SASL.MECHANISM",
                "SCRAM-SHA-512",
            ),
            ("USAGE_TRACKER__ALLOCATION__OTHER_WEIGHTS__CPU", "3"),
            ("USAGE_TRACKER__TOPICS__PARTITIONS", "6"),
            ("USAGE_TRACKER__EXCLUSIONS__NAMESPACES", r#"["kube-*"]"#),
            ("USAGE_TRACKER__REGISTRY__USERNAME", "1234"),
            ("KAFKA_BOOTSTRAP_SERVERS", "standard:9092"),
            ("DATABASE_URL", "postgres://standard/db"),
            ("USAGE_TRACKER__DATABASE__URL", "postgres://prefixed/db"),
            ("SCHEMA_REGISTRY_URL", ""),
            ("UNRELATED", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.window.size, Duration::from_secs(900));
    assert_eq!(
        settings.pipeline.checkpoint_interval,
        Duration::from_secs(5)
    );
    assert_eq!(settings.kafka.group_id, "42");
    assert_eq!(settings.kafka.properties["sasl.mechanism"], "SCRAM-SHA-512");
    // One entry amends the default map.
    assert_eq!(
        settings.allocation.other_weights,
        BTreeMap::from([("cpu".into(), 3), ("memory".into(), 1)])
    );
    assert_eq!(settings.topics.partitions, 6);
    assert_eq!(settings.exclusions.namespaces, ["kube-*"]);
    assert_eq!(settings.registry.username.as_deref(), Some("1234"));
    assert_eq!(settings.kafka.bootstrap_servers, "standard:9092");
    assert_eq!(settings.database.url, "postgres://prefixed/db");
    assert_eq!(settings.registry.url, RegistrySettings::default().url);
    settings.validate().unwrap();
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[window]\nsize = \"1h\"\nretention = \"2days\"\n").unwrap();
    let settings =
        Settings::load_with_env(Some(&path), env(&[("USAGE_TRACKER__WINDOW__SIZE", "30m")]))
            .unwrap();
    assert_eq!(settings.window.size, Duration::from_secs(1800));
    assert_eq!(settings.window.retention, Duration::from_secs(2 * 86_400));
}

fn load_error(file: Option<&str>, vars: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    if let Some(text) = file {
        std::fs::write(&path, text).unwrap();
    }
    let result =
        Settings::load_with_env(file.map(|_| path.as_path()), env(vars)).and_then(|s| s.validate());
    format!("{:#}", result.unwrap_err()).replace(&path.display().to_string(), "c.toml")
}

#[test]
fn errors_name_the_key_its_source_and_the_nearest_valid_name() {
    for (file, vars, expected) in [
        (
            Some("[window]\nsise = \"1h\""),
            &[][..],
            "c.toml: unknown field `sise` in [window]; did you mean `size`?",
        ),
        (
            Some("[windw]\nsize = \"1h\""),
            &[],
            "c.toml: unknown field `windw` at the top level; did you mean `window`?",
        ),
        (
            Some("[pipeline]\ncheckpoint = \"1s\""),
            &[],
            "c.toml: unknown field `checkpoint` in [pipeline]; did you mean `checkpoint_interval`?",
        ),
        (
            Some("[[cost_scopes]]\naccount = \"a\"\ncluster_id = \"b\"\nacount = \"c\""),
            &[],
            "c.toml: unknown field `acount` in [cost_scopes]; did you mean `account`?",
        ),
        (
            Some("[window]\nsize = \"7x\""),
            &[],
            "c.toml: window.size: invalid value: string \"7x\", expected a duration",
        ),
        (
            Some("[elastic]\nusage_from = \"pods\""),
            &[],
            "c.toml: elastic.usage_from: unknown value `pods`; did you mean `pod`?",
        ),
        (
            Some("[kafka.properties]\n\"sasl.password\" = 12345"),
            &[],
            "c.toml: kafka.properties.\"sasl.password\": invalid value (not shown: a secret)",
        ),
        (
            None,
            &[("USAGE_TRACKER__WINDOW__SISE", "15m")],
            "environment variable USAGE_TRACKER__WINDOW__SISE: unknown field `sise` in [window]; did you mean `size`?",
        ),
        (
            Some("[window]\nsize = \"1h\""),
            &[("USAGE_TRACKER__TOPICS__PARTITIONS", "many")],
            "environment variable USAGE_TRACKER__TOPICS__PARTITIONS: topics.partitions: invalid type: string \"many\", expected i32",
        ),
        (
            None,
            &[("USAGE_TRACKER__WINDOW__SIZE__X", "1")],
            "environment variable USAGE_TRACKER__WINDOW__SIZE__X: window.size is not a table",
        ),
        (
            None,
            &[("USAGE_TRACKER__WINDOW", "1")],
            "environment variable USAGE_TRACKER__WINDOW: window: invalid type: integer `1`, expected struct WindowSettings",
        ),
        (
            None,
            &[("USAGE_TRACKER__WINDOW____SIZE", "1h")],
            "environment variable USAGE_TRACKER__WINDOW____SIZE: expected USAGE_TRACKER__<SECTION>__<KEY>[__<MAP KEY>]",
        ),
        (
            Some("[window]\nsize = \"7m\""),
            &[],
            "window.size: window size 420s must be whole minutes, at least 1 min, and divide 24 h",
        ),
        (
            Some("[allocation]\nidle = \"sometimes\""),
            &[],
            "allocation.idle must be \"separate\" or \"share\", not \"sometimes\"",
        ),
    ] {
        assert_eq!(load_error(file, vars), expected);
    }
}

#[test]
fn secrets_come_from_files_and_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("url");
    std::fs::write(
        &url,
        "postgres://app:pg-secret@db/usage?sslmode=verify-full\n",
    )
    .unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "kafka-secret\n").unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[database]\nurl_file = {:?}\n[kafka]\nproperties = {{ \"sasl.username\" = \"app\", \"ssl.key.pem\" = \"KEY\" }}\nproperties_files = {{ \"sasl.password\" = {:?} }}\n",
            url.display().to_string(),
            password.display().to_string()
        ),
    )
    .unwrap();
    let settings =
        Settings::load_with_env(Some(&path), env(&[("DATABASE_URL", "postgres://x/y")])).unwrap();
    assert_eq!(
        settings.database.url,
        "postgres://app:pg-secret@db/usage?sslmode=verify-full"
    );
    assert_eq!(settings.kafka.properties["sasl.password"], "kafka-secret");
    let shown = settings.redacted().to_toml().unwrap();
    for secret in ["pg-secret", "kafka-secret", "KEY"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("\"sasl.username\" = \"app\""), "{shown}");
    assert!(
        shown.contains("postgres://app:***@db/usage?sslmode=verify-full"),
        "{shown}"
    );

    std::fs::remove_file(&password).unwrap();
    let error = Settings::load_with_env(Some(&path), env(&[])).unwrap_err();
    assert!(
        format!("{error:#}").starts_with("kafka.properties_files.\"sasl.password\": reading "),
        "{error:#}"
    );
}

#[test]
fn urls_lose_their_passwords() {
    for (url, shown) in [
        (
            "postgres://app:pw@db:5432/u",
            "postgres://app:***@db:5432/u",
        ),
        ("postgres://app@db/u", "postgres://app@db/u"),
        (
            "postgres://app:p/w@d@db/u?x=1",
            "postgres://app:***@db/u?x=1",
        ),
        (
            "postgres://db/u?user=app&password=pw&sslmode=require#f",
            "postgres://db/u?user=app&password=***&sslmode=require#f",
        ),
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
        ("not a url", "not a url"),
    ] {
        assert_eq!(redact_url(url), shown);
    }
    assert!(is_secret_property("sasl.password"));
    assert!(is_secret_property("sasl.jaas.config"));
    assert!(is_secret_property("ssl.key.pem"));
    assert!(is_secret_property("sasl.oauthbearer.client.secret"));
    assert!(!is_secret_property("sasl.mechanism"));
}

#[test]
fn levenshtein_counts_edits() {
    assert_eq!(levenshtein("sise", "size"), 1);
    assert_eq!(levenshtein("", "abc"), 3);
    assert_eq!(levenshtein("kitten", "sitting"), 3);
}

/// Every option of the code, with its default as TOML when it has one.
fn options() -> BTreeMap<String, (bool, Option<String>)> {
    fn maps(value: &serde_json::Value, path: &str, out: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(o) if o.contains_key(MAP_ENTRY) => {
                out.insert(path.to_owned());
            }
            serde_json::Value::Object(o) => {
                for (key, value) in o {
                    maps(value, &join(path, key), out);
                }
            }
            serde_json::Value::Array(a) => {
                if let Some(first) = a.first() {
                    maps(first, &format!("{path}[]"), out);
                }
            }
            _ => {}
        }
    }
    fn leaves(
        value: &serde_json::Value,
        path: &str,
        maps: &BTreeSet<String>,
        out: &mut BTreeSet<String>,
    ) {
        match value {
            serde_json::Value::Object(o) if !o.is_empty() && !maps.contains(path) => {
                for (key, value) in o {
                    leaves(value, &join(path, key), maps, out);
                }
            }
            serde_json::Value::Array(a) if a.first().is_some_and(|v| v.is_object()) => {
                leaves(&a[0], &format!("{path}[]"), maps, out);
            }
            _ => {
                out.insert(path.to_owned());
            }
        }
    }
    fn join(path: &str, key: &str) -> String {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    }
    let example = serde_json::to_value(schema_example()).unwrap();
    let default = serde_json::to_value(Settings::default()).unwrap();
    let mut map_paths = BTreeSet::new();
    maps(&example, "", &mut map_paths);
    let mut paths = BTreeSet::new();
    leaves(&example, "", &map_paths, &mut paths);
    // The defaults too: an option that is `None` there and missing from the example.
    leaves(&default, "", &map_paths, &mut paths);
    let covered: Vec<String> = paths
        .iter()
        .filter(|p| {
            paths
                .iter()
                .any(|q| q.starts_with(&format!("{p}.")) || q.starts_with(&format!("{p}[]")))
        })
        .cloned()
        .collect();
    let toml_default = toml::Value::try_from(Settings::default()).unwrap();
    paths
        .into_iter()
        .filter(|p| !covered.contains(p))
        .map(|p| {
            let keys: Vec<String> = p.split('.').map(str::to_owned).collect();
            let default = lookup(&toml_default, &keys).map(|v| format!("`{v}`"));
            (p.clone(), (map_paths.contains(&p), default))
        })
        .collect()
}

/// The environment variable of an option, as the documentation writes it.
fn env_name(path: &str, is_map: bool) -> String {
    let whole = path.split("[]").next().unwrap_or_default();
    let mut name = format!("{ENV_PREFIX}{}", whole.to_uppercase().replace('.', "__"));
    if is_map {
        name.push_str("__<NAME>");
    }
    name
}

#[test]
fn the_documentation_describes_every_option_and_no_other() {
    let doc = include_str!("../../docs/configuration.md");
    // Rows `| key | type | default | environment | meaning |` under "## Options".
    let mut documented = BTreeMap::new();
    let mut in_options = false;
    for line in doc.lines() {
        if line.starts_with("## ") {
            in_options = line.trim() == "## Options";
        }
        let Some(row) = line.strip_prefix('|').filter(|_| in_options) else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(key) = cells[0].strip_prefix('`').and_then(|k| k.strip_suffix('`')) else {
            continue;
        };
        documented.insert(key.to_owned(), cells);
    }
    let options = options();
    let mut differences = Vec::new();
    for (path, (is_map, default)) in &options {
        let Some(cells) = documented.get(path) else {
            differences.push(format!("undocumented: `{path}` (default {default:?})"));
            continue;
        };
        if cells.len() < 5 {
            differences.push(format!("`{path}`: expected 5 columns"));
            continue;
        }
        if let Some(default) = default {
            if cells[2] != default {
                differences.push(format!(
                    "`{path}`: default is {default}, documented {}",
                    cells[2]
                ));
            }
        }
        let env = env_name(path, *is_map);
        if !cells[3].contains(&env) {
            differences.push(format!(
                "`{path}`: environment is `{env}`, documented {}",
                cells[3]
            ));
        }
    }
    for path in documented.keys() {
        if !options.contains_key(path) {
            differences.push(format!("documented but no option: `{path}`"));
        }
    }
    assert!(
        differences.is_empty(),
        "docs/configuration.md and src/config/ differ:\n{}",
        differences.join("\n")
    );
}
