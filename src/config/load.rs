//! File and environment layering: the TOML file, then the standard variables, then
//! `USAGE_TRACKER__...` ones, typed by the shape of [`Settings`]; secret files read; errors that
//! name the key, where it was set and, for unknown names, the nearest valid one.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use super::redact::is_secret_path;
use super::Settings;
use crate::accounting::RateCard;
use crate::billing::CategoryRule;
use crate::ingest::CostScope;

impl Settings {
    /// Reads `path` (if given), applies the environment overrides (the standard variables, then
    /// `USAGE_TRACKER__<SECTION>__<KEY>`) and reads the secret files (`database.url_file`,
    /// `kafka.properties_files`). Errors name the key and where it was set.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(ENV_PREFIX) || STANDARD_ENV.iter().any(|(n, _)| *n == name) {
                let value = value
                    .into_string()
                    .map_err(|_| anyhow::anyhow!("environment variable {name} is not UTF-8"))?;
                env.push((name.to_owned(), value));
            }
        }
        Self::load_with_env(path, env)
    }

    /// [`Settings::load`] with the environment given as `(name, value)` pairs.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut table = match path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .parse::<toml::Table>()
                .with_context(|| format!("{} is not valid TOML", path.display()))?,
            None => toml::Table::new(),
        };
        let origins = overlay_env(&mut table, env)?;
        let source = path.map(|p| p.display().to_string());
        let mut settings = deserialize(&table, source.as_deref(), &origins)?;
        settings.read_secret_files()?;
        Ok(settings)
    }

    /// Replaces `database.url` and `kafka.properties` entries by the contents of their files.
    fn read_secret_files(&mut self) -> anyhow::Result<()> {
        if let Some(file) = &self.database.url_file {
            self.database.url = read_secret(file).context("database.url_file")?;
        }
        for (key, file) in &self.kafka.properties_files {
            let value = read_secret(file)
                .with_context(|| format!("kafka.properties_files.{}", quote_key(key)))?;
            self.kafka.properties.insert(key.clone(), value);
        }
        Ok(())
    }
}

/// Prefix of the environment variables that set any key:
/// `USAGE_TRACKER__<SECTION>__<KEY>[__<MAP KEY>]=value`, names lower-cased
/// (`USAGE_TRACKER__KAFKA__PROPERTIES__SASL.MECHANISM` sets `kafka.properties."sasl.mechanism"`).
pub const ENV_PREFIX: &str = "USAGE_TRACKER__";

/// The standard environment variables and the key each sets when not empty; the
/// [`ENV_PREFIX`] form of the same key wins over them.
pub const STANDARD_ENV: [(&str, &str); 3] = [
    ("KAFKA_BOOTSTRAP_SERVERS", "kafka.bootstrap_servers"),
    ("SCHEMA_REGISTRY_URL", "registry.url"),
    ("DATABASE_URL", "database.url"),
];

/// The key of the one entry of every map-valued option in [`schema_example`].
pub(super) const MAP_ENTRY: &str = "<name>";

fn read_secret(file: &str) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(file)
        .with_context(|| format!("reading {file}"))?
        .trim()
        .to_owned())
}

/// Settings with every optional key set and one [`MAP_ENTRY`] in every map: the shape of the
/// configuration, which types environment values and which the documentation test walks.
pub(super) fn schema_example() -> Settings {
    let strings = || BTreeMap::from([(MAP_ENTRY.to_owned(), String::new())]);
    let mut example = Settings {
        rate_card: Some(RateCard {
            currency: String::new(),
            cpu_core_hour_micros: 0,
            memory_gib_hour_micros: 0,
            storage_gib_hour_micros: 0,
            gpu_hour_micros: 0,
            meters: BTreeMap::from([(
                MAP_ENTRY.to_owned(),
                crate::accounting::pricing::MeterPrice {
                    unit: String::new(),
                    unit_micros: 0,
                },
            )]),
        }),
        cost_scopes: vec![CostScope::default()],
        ..Settings::default()
    };
    example.kafka.properties = strings();
    example.kafka.producer_properties = strings();
    example.kafka.consumer_properties = strings();
    example.kafka.properties_files = strings();
    example.registry.username = Some(String::new());
    example.registry.password_file = Some(String::new());
    example.database.url_file = Some(String::new());
    example.allocation.other_weights = BTreeMap::from([(MAP_ENTRY.to_owned(), 1)]);
    example.exclusions.labels = strings();
    example.elastic.default_cluster_id = Some(String::new());
    example.elastic.cluster_ids = strings();
    example.billing.cluster_ids = strings();
    example.billing.categories = vec![CategoryRule {
        provider: "*".into(),
        service: "*".into(),
        sku: "*".into(),
        category: crate::standard::CostCategory::Other,
    }];
    example
}

/// Key paths set by environment variables, with the variable.
type EnvOrigins = Vec<(Vec<String>, String)>;

/// Sets the keys the environment names in `table`: first the [`STANDARD_ENV`] variables, then the
/// [`ENV_PREFIX`] ones, each in name order.
fn overlay_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<EnvOrigins> {
    let schema = toml::Value::try_from(schema_example()).context("describing the settings")?;
    let defaults = toml::Value::try_from(Settings::default()).context("describing the settings")?;
    let mut standard = Vec::new();
    let mut prefixed = Vec::new();
    for (name, raw) in env {
        if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
            let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
            if path.iter().any(String::is_empty) {
                anyhow::bail!(
                    "environment variable {name}: expected {ENV_PREFIX}<SECTION>__<KEY>[__<MAP KEY>]"
                );
            }
            let value = env_value(&schema, &path, raw);
            prefixed.push((name, path, value));
        } else if let Some((_, key)) = STANDARD_ENV.iter().find(|(n, _)| *n == name) {
            if !raw.is_empty() {
                let path = key.split('.').map(str::to_owned).collect();
                standard.push((name, path, toml::Value::String(raw)));
            }
        }
    }
    standard.sort_by(|a, b| a.0.cmp(&b.0));
    prefixed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut origins = Vec::new();
    for (name, path, value) in standard.into_iter().chain(prefixed) {
        set_path(table, &defaults, &path, value).map_err(|depth| {
            anyhow::anyhow!(
                "environment variable {name}: {} is not a table",
                dotted(&path[..depth])
            )
        })?;
        origins.push((path, name));
    }
    Ok(origins)
}

/// An environment value as TOML: the string itself where the key is a string (durations too),
/// else the value parsed as TOML (`3`, `true`, `["kube-*"]`) when it parses, else the string.
fn env_value(schema: &toml::Value, path: &[String], raw: String) -> toml::Value {
    let expected = lookup(schema, path).or_else(|| {
        // A map entry: typed like the example's entry.
        let (_, parent) = path.split_last()?;
        lookup(schema, parent)?.as_table()?.values().next()
    });
    if !matches!(expected, Some(toml::Value::String(_))) {
        if let Ok(mut parsed) = format!("value = {raw}").parse::<toml::Table>() {
            if parsed.len() == 1 {
                if let Some(value) = parsed.remove("value") {
                    return value;
                }
            }
        }
    }
    toml::Value::String(raw)
}

pub(super) fn lookup<'a>(value: &'a toml::Value, path: &[String]) -> Option<&'a toml::Value> {
    path.iter()
        .try_fold(value, |value, key| value.get(key.as_str()))
}

/// Sets `path` to `value`, creating missing tables from `defaults` (so that one map entry amends
/// the default map rather than replacing it); `Err(depth)` when `path[..depth]` is no table.
fn set_path(
    table: &mut toml::Table,
    defaults: &toml::Value,
    path: &[String],
    value: toml::Value,
) -> Result<(), usize> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut table = table;
    for (depth, key) in parents.iter().enumerate() {
        table = table
            .entry(key.clone())
            .or_insert_with(|| match lookup(defaults, &path[..=depth]) {
                Some(toml::Value::Table(default)) => toml::Value::Table(default.clone()),
                _ => toml::Value::Table(toml::Table::new()),
            })
            .as_table_mut()
            .ok_or(depth + 1)?;
    }
    table.insert(last.clone(), value);
    Ok(())
}

/// A key as written in TOML: bare when it can be, else quoted.
fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        toml::Value::String(key.to_owned()).to_string()
    }
}

/// A key path as written in TOML (`kafka.properties."sasl.mechanism"`).
fn dotted(path: &[String]) -> String {
    path.iter()
        .map(|key| quote_key(key))
        .collect::<Vec<_>>()
        .join(".")
}

/// Deserialises the merged table. It is written out as TOML first, remembering the key path of
/// every line, so that an error's span names the key whether it came from the file or the
/// environment.
fn deserialize(
    table: &toml::Table,
    source: Option<&str>,
    origins: &EnvOrigins,
) -> anyhow::Result<Settings> {
    let mut text = String::new();
    let mut lines = Vec::new();
    render(table, &mut Vec::new(), &mut text, &mut lines);
    toml::from_str(&text).map_err(|error| {
        let path = error
            .span()
            .and_then(|span| lines.iter().rev().find(|(start, _)| *start <= span.start))
            .map(|(_, path)| path.as_slice())
            .unwrap_or_default();
        anyhow::anyhow!(describe(path, error.message(), source, origins))
    })
}

/// Writes `table` (at `path`) as TOML, recording the byte offset and key path of each entry.
fn render(
    table: &toml::Table,
    path: &mut Vec<String>,
    text: &mut String,
    lines: &mut Vec<(usize, Vec<String>)>,
) {
    use std::fmt::Write as _;
    for (key, value) in table.iter().filter(|(_, value)| !value.is_table()) {
        path.push(key.clone());
        lines.push((text.len(), path.clone()));
        path.pop();
        let _ = writeln!(text, "{} = {value}", quote_key(key));
    }
    for (key, value) in table {
        if let toml::Value::Table(sub) = value {
            path.push(key.clone());
            lines.push((text.len(), path.clone()));
            let _ = writeln!(text, "[{}]", dotted(path));
            render(sub, path, text, lines);
            path.pop();
        }
    }
}

/// A deserialisation error at `path` as a sentence naming the key, its source and, for unknown
/// names, the nearest valid one.
fn describe(path: &[String], message: &str, source: Option<&str>, origins: &EnvOrigins) -> String {
    let vars: Vec<&str> = origins
        .iter()
        .filter(|(set, _)| !path.is_empty() && (set.starts_with(path) || path.starts_with(set)))
        .map(|(_, name)| name.as_str())
        .collect();
    let from = match (vars.is_empty(), source) {
        (false, _) => format!("environment variable {}: ", vars.join(", ")),
        (true, Some(source)) => format!("{source}: "),
        (true, None) => String::new(),
    };
    // serde's messages: "unknown field `x`, expected one of `a`, `b`", "unknown variant `x`, ...".
    let names: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let message = message.trim_end();
    let problem = match names.split_first() {
        Some((field, expected)) if message.starts_with("unknown field") => {
            let section = match path.split_last() {
                Some((last, parent)) if last == field => parent,
                _ => path,
            };
            let place = if section.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in [{}]", dotted(section))
            };
            format!(
                "unknown field `{field}` {place}{}",
                suggest(field, expected)
            )
        }
        Some((value, expected)) if message.starts_with("unknown variant") => format!(
            "{}: unknown value `{value}`{}",
            dotted(path),
            suggest(value, expected)
        ),
        _ if is_secret_path(path) => {
            format!("{}: invalid value (not shown: a secret)", dotted(path))
        }
        _ if path.is_empty() => message.to_owned(),
        _ => format!("{}: {message}", dotted(path)),
    };
    format!("{from}{problem}")
}

/// "; did you mean `size`?" when a candidate is close to `name`, else the candidates.
fn suggest(name: &str, candidates: &[&str]) -> String {
    let nearest = candidates
        .iter()
        .map(|candidate| (levenshtein(name, candidate), *candidate))
        .min();
    match nearest {
        Some((distance, candidate))
            if distance <= (name.chars().count().max(candidate.chars().count()) / 3).max(2)
                || (name.len() >= 3 && candidate.contains(name)) =>
        {
            format!("; did you mean `{candidate}`?")
        }
        _ if !candidates.is_empty() => {
            let all: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
            format!("; expected one of {}", all.join(", "))
        }
        _ => String::new(),
    }
}

/// Edit distance (insertions, deletions, substitutions) between `a` and `b`.
pub(super) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}
