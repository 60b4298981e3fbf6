//! Typed configuration: one TOML file, then the standard environment variables
//! (`KAFKA_BOOTSTRAP_SERVERS`, `SCHEMA_REGISTRY_URL`, `DATABASE_URL`), then
//! `USAGE_TRACKER__<SECTION>__<KEY>[__<MAP KEY>]=value` for any key; secrets may come from files
//! (`database.url_file`, `registry.password_file`, `kafka.properties_files`). Unknown keys are
//! errors, with the nearest valid name suggested. Every option is described in
//! `docs/configuration.md`, which a test keeps in step with this file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::accounting::RateCard;
use crate::allocate::{AllocationPolicy, IdleCost};
use crate::billing::{CategoryRule, CategoryRules, ExportOptions};
use crate::ingest::ecs::{CapacitySource, EcsSettings, UsageSource};
use crate::ingest::{CostScope, ExclusionRules, Exclusions};
use crate::kafka::KafkaConnection;
use crate::measure::Resource;
use crate::pipeline::{PipelineConfig, Topics};
use crate::standard::registry::RegistryEndpoint;
use crate::window::{WindowConfig, WindowSpec};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Brokers.
    pub kafka: KafkaSettings,
    /// Schema registry.
    pub registry: RegistrySettings,
    /// Database.
    pub database: DatabaseSettings,
    /// Topics.
    pub topics: Topics,
    /// Windowing.
    pub window: WindowSettings,
    /// Checkpointing.
    pub pipeline: PipelineSettings,
    /// Metrics and health endpoint.
    pub http: HttpSettings,
    /// Cost allocation.
    pub allocation: AllocationSettings,
    /// Estimated prices until bills arrive.
    pub rate_card: Option<RateCard>,
    /// What stays out of the accounting.
    pub exclusions: ExclusionRules,
    /// Clusters of bill lines that name none.
    pub cost_scopes: Vec<CostScope>,
    /// The Elastic Agent / Metricbeat ingest (`usage-tracker elastic`).
    pub elastic: ElasticSettings,
    /// The billing exporters (`usage-tracker export-costs`).
    pub billing: BillingSettings,
}

/// `[billing]`: how `usage-tracker export-costs` reads bills (see docs/billing-exporters.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingSettings {
    /// Cluster name as bills label it -> cluster id as usage reports it (`{ "gke-prod" = "prod" }`);
    /// names not listed are used as ids.
    pub cluster_ids: BTreeMap<String, String>,
    /// Category rules tried before the built-in table, first match wins.
    pub categories: Vec<CategoryRule>,
}

/// `[kafka]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// `host:port,...`; env `KAFKA_BOOTSTRAP_SERVERS` wins.
    pub bootstrap_servers: String,
    /// librdkafka properties for every client (`security.protocol`, `sasl.*`, `ssl.*`).
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for producers only.
    pub producer_properties: BTreeMap<String, String>,
    /// librdkafka properties for the tracker's consumer only.
    pub consumer_properties: BTreeMap<String, String>,
    /// librdkafka properties for every client whose values are read from files (trimmed) when the
    /// configuration is loaded: `{ "sasl.password" = "/var/run/secrets/kafka/password" }`. They
    /// win over `properties` and are always redacted.
    pub properties_files: BTreeMap<String, String>,
    /// Consumer group shared by every instance of the tracker.
    pub group_id: String,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            properties_files: BTreeMap::new(),
            group_id: "usage-tracker".into(),
        }
    }
}

/// `[registry]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// Base URL; env `SCHEMA_REGISTRY_URL` wins.
    pub url: String,
    /// Basic auth user.
    pub username: Option<String>,
    /// File holding the basic auth password.
    pub password_file: Option<String>,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8081".into(),
            username: None,
            password_file: None,
        }
    }
}

impl RegistrySettings {
    /// The endpoint these settings describe, the password read from `password_file` (trailing
    /// whitespace trimmed).
    pub fn endpoint(&self) -> anyhow::Result<RegistryEndpoint> {
        let password = match &self.password_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("reading {file}"))?
                    .trim_end()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(RegistryEndpoint {
            url: self.url.clone(),
            username: self.username.clone(),
            password,
            timeout: Duration::from_secs(10),
        })
    }
}

/// `[database]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Postgres URL (`sslmode` as a query parameter); env `DATABASE_URL` wins.
    pub url: String,
    /// File holding the Postgres URL (trimmed), read when the configuration is loaded; wins over
    /// `url` and `DATABASE_URL`.
    pub url_file: Option<String>,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/usage_tracker".into(),
            url_file: None,
        }
    }
}

/// `[window]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSettings {
    /// Window size; divides a day, at least 1 min.
    #[serde(with = "humantime_serde")]
    pub size: Duration,
    /// Watermark lag behind the max event time.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// How long closed windows take late data and bills.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Events ending further in the future than this are rejected.
    #[serde(with = "humantime_serde")]
    pub future_skew: Duration,
    /// A silent partition stops holding the watermark after this.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for WindowSettings {
    fn default() -> Self {
        Self {
            size: Duration::from_secs(3600),
            allowed_lateness: Duration::from_secs(600),
            retention: Duration::from_secs(7 * 86_400),
            future_skew: Duration::from_secs(900),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// `[pipeline]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// How often records are emitted and state committed.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// How long the final flush on SIGTERM may take.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            checkpoint_interval: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(20),
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Address of `/metrics`, `/healthz` and `/readyz`; empty to serve nothing.
    pub listen: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9898".into(),
        }
    }
}

/// `[allocation]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AllocationSettings {
    /// `separate` (an `__idle__` record) or `share` (pro-rata over namespaces).
    pub idle: String,
    /// Weights of license/other costs per resource name.
    pub other_weights: BTreeMap<String, u32>,
}

impl Default for AllocationSettings {
    fn default() -> Self {
        Self {
            idle: "separate".into(),
            other_weights: BTreeMap::from([("cpu".into(), 1), ("memory".into(), 1)]),
        }
    }
}

/// `[elastic]`: `usage-tracker elastic` reads Elastic Agent / Metricbeat Kubernetes documents (ECS
/// JSON) and publishes them as UsageEvents to `[topics] usage_events` (see docs/elastic-agent.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ElasticSettings {
    /// Topics the Elastic Agent / Metricbeat Kafka output writes to.
    pub topics: Vec<String>,
    /// Consumer group of `usage-tracker elastic` (not the tracker's `[kafka] group_id`).
    pub group_id: String,
    /// Cluster id of documents without `orchestrator.cluster.id` or `.name`.
    pub default_cluster_id: Option<String>,
    /// Per-topic cluster id of such documents (`{ "topic" = "cluster" }`); wins over
    /// `default_cluster_id`.
    pub cluster_ids: BTreeMap<String, String>,
    /// Sample period of documents without `metricset.period`.
    #[serde(with = "humantime_serde")]
    pub default_period: Duration,
    /// `container` (default) or `pod`: the kubelet metricset cpu and memory usage come from; the
    /// other one is skipped, so a pod is never counted twice.
    pub usage_from: UsageSource,
    /// `state_node` (default) or `node`: the metricset node allocatable (capacity) comes from.
    pub capacity_from: CapacitySource,
    /// Most documents per batch. A batch's events and dead letters are published and
    /// acknowledged before its offsets are committed (at least once).
    pub batch_size: usize,
    /// Longest a batch stays open before it is published.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
}

impl Default for ElasticSettings {
    fn default() -> Self {
        Self {
            topics: vec!["elastic.metrics.kubernetes".into()],
            group_id: "usage-tracker-elastic".into(),
            default_cluster_id: None,
            cluster_ids: BTreeMap::new(),
            default_period: Duration::from_secs(10),
            usage_from: UsageSource::default(),
            capacity_from: CapacitySource::default(),
            batch_size: 5_000,
            batch_timeout: Duration::from_millis(500),
        }
    }
}

impl ElasticSettings {
    /// How documents of `topic` become events: source `//elastic-agent/<topic>`, the topic's
    /// cluster id fallback, else the default one.
    pub fn ecs_settings(&self, topic: &str) -> EcsSettings {
        EcsSettings {
            default_cluster_id: self
                .cluster_ids
                .get(topic)
                .or(self.default_cluster_id.as_ref())
                .cloned(),
            default_period: self.default_period,
            source: format!("//elastic-agent/{topic}"),
            usage_from: self.usage_from,
            capacity_from: self.capacity_from,
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

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

    /// Checks everything [`Settings::pipeline`] checks: window size, allocation idle mode and
    /// weights, exclusion globs, `http.listen`, the registry password file.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.pipeline(false).map(drop)
    }

    /// A copy safe to print: the password of `database.url` and `registry.url`, and every Kafka
    /// property that is a secret (see [`is_secret_property`]) or read from a file, are replaced by
    /// [`REDACTED`].
    pub fn redacted(&self) -> Settings {
        let mut settings = self.clone();
        settings.database.url = redact_url(&settings.database.url);
        settings.registry.url = redact_url(&settings.registry.url);
        let kafka = &mut settings.kafka;
        for properties in [
            &mut kafka.properties,
            &mut kafka.producer_properties,
            &mut kafka.consumer_properties,
        ] {
            for (key, value) in properties.iter_mut() {
                if is_secret_property(key) || kafka.properties_files.contains_key(key) {
                    *value = REDACTED.into();
                }
            }
        }
        settings
    }

    /// The settings as a TOML file.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string(self).context("writing the configuration as TOML")
    }

    /// The Kafka connection.
    pub fn kafka(&self) -> KafkaConnection {
        KafkaConnection {
            bootstrap_servers: self.kafka.bootstrap_servers.clone(),
            properties: self.kafka.properties.clone().into_iter().collect(),
            producer_properties: self.kafka.producer_properties.clone().into_iter().collect(),
            consumer_properties: self.kafka.consumer_properties.clone().into_iter().collect(),
        }
    }

    /// What the billing exporters need besides the rows: the category table with the configured
    /// rules first, and the cluster names.
    pub fn export_options(
        &self,
        revision: Option<i64>,
        exported_at: crate::standard::EpochMillis,
    ) -> anyhow::Result<ExportOptions> {
        Ok(ExportOptions {
            revision,
            exported_at,
            categories: CategoryRules::with_overrides(&self.billing.categories)
                .context("[billing] categories")?,
            cluster_ids: self.billing.cluster_ids.clone(),
        })
    }

    /// The cluster `[[cost_scopes]]` assigns to a bill line without one (its sub account's scope,
    /// else its billing account's). Exporters set it on the line, so the line is keyed, and
    /// partitioned, like its cluster's usage.
    pub fn scope_cluster(&self, event: &crate::standard::CostEvent) -> Option<String> {
        let scope = |account: &str| {
            self.cost_scopes
                .iter()
                .find(|s| s.account == account)
                .map(|s| s.cluster_id.clone())
        };
        event
            .sub_account_id
            .as_deref()
            .and_then(scope)
            .or_else(|| scope(&event.billing_account_id))
    }

    /// The registry endpoint (password read from its file).
    pub fn registry(&self) -> anyhow::Result<RegistryEndpoint> {
        self.registry.endpoint()
    }

    /// Time rules, validated.
    pub fn window(&self) -> anyhow::Result<WindowConfig> {
        let w = &self.window;
        Ok(WindowConfig {
            spec: WindowSpec::new(w.size)
                .map_err(anyhow::Error::msg)
                .context("window.size")?,
            allowed_lateness_ms: millis(w.allowed_lateness),
            retention_ms: millis(w.retention),
            future_skew_ms: millis(w.future_skew),
            idle_timeout_ms: millis(w.idle_timeout),
        })
    }

    /// Allocation rules, validated.
    pub fn policy(&self) -> anyhow::Result<AllocationPolicy> {
        let idle = match self.allocation.idle.as_str() {
            "separate" => IdleCost::Separate,
            "share" => IdleCost::ShareProRata,
            other => {
                anyhow::bail!("allocation.idle must be \"separate\" or \"share\", not {other:?}")
            }
        };
        let other_weights = self
            .allocation
            .other_weights
            .iter()
            .map(|(name, w)| {
                Resource::parse(name)
                    .map(|r| (r, *w))
                    .with_context(|| format!("allocation.other_weights: unknown resource {name:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(AllocationPolicy {
            other_weights,
            idle,
        })
    }

    /// The metrics endpoint address, if any.
    pub fn http_listen(&self) -> anyhow::Result<Option<std::net::SocketAddr>> {
        let listen = self.http.listen.trim();
        if listen.is_empty() {
            return Ok(None);
        }
        listen
            .parse()
            .map(Some)
            .with_context(|| format!("http.listen {listen:?} is not an address"))
    }

    /// The pipeline configuration.
    pub fn pipeline(&self, until_caught_up: bool) -> anyhow::Result<PipelineConfig> {
        Ok(PipelineConfig {
            kafka: self.kafka(),
            group_id: self.kafka.group_id.clone(),
            registry: self.registry()?,
            database_url: self.database.url.clone(),
            topics: self.topics.clone(),
            window: self.window()?,
            policy: self.policy()?,
            rate_card: self.rate_card.clone(),
            exclusions: Exclusions::new(self.exclusions.clone())
                .context("exclusions.namespaces")?,
            cost_scopes: self.cost_scopes.clone(),
            checkpoint_interval: self.pipeline.checkpoint_interval,
            until_caught_up,
            http_listen: self.http_listen()?,
            shutdown_timeout: self.pipeline.shutdown_timeout,
        })
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

/// What redacted secrets are shown as.
pub const REDACTED: &str = "***";

/// The key of the one entry of every map-valued option in [`schema_example`].
const MAP_ENTRY: &str = "<name>";

/// Whether a librdkafka property holds a secret: its name contains `password`, `secret`,
/// `sasl.jaas` or `ssl.key`.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "sasl.jaas", "ssl.key"]
        .iter()
        .any(|s| key.contains(s))
}

/// `url` with the password of its user info and of any `*password*` query parameter replaced by
/// [`REDACTED`] (`postgres://app:***@db/usage?sslmode=verify-full`).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let start = scheme_end + 3;
    let mut out = url[..start].to_owned();
    let before_query = url[start..]
        .find(['?', '#'])
        .map_or(url.len(), |i| start + i);
    let rest = match url[start..before_query].rfind('@') {
        Some(at) => {
            let userinfo = &url[start..start + at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(REDACTED);
                }
                None => out.push_str(userinfo),
            }
            &url[start + at..]
        }
        None => &url[start..],
    };
    let (rest, fragment) = rest.split_at(rest.find('#').unwrap_or(rest.len()));
    match rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                        format!("{key}={REDACTED}")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        None => out.push_str(rest),
    }
    out.push_str(fragment);
    out
}

fn read_secret(file: &str) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(file)
        .with_context(|| format!("reading {file}"))?
        .trim()
        .to_owned())
}

/// Settings with every optional key set and one [`MAP_ENTRY`] in every map: the shape of the
/// configuration, which types environment values and which the documentation test walks.
fn schema_example() -> Settings {
    let strings = || BTreeMap::from([(MAP_ENTRY.to_owned(), String::new())]);
    let mut example = Settings {
        rate_card: Some(RateCard {
            currency: String::new(),
            cpu_core_hour_micros: 0,
            memory_gib_hour_micros: 0,
            storage_gib_hour_micros: 0,
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

fn lookup<'a>(value: &'a toml::Value, path: &[String]) -> Option<&'a toml::Value> {
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

fn is_secret_path(path: &[String]) -> bool {
    match path {
        [section, key] => section == "database" && key == "url",
        [section, map, key] => {
            section == "kafka" && map.ends_with("properties") && is_secret_property(key)
        }
        _ => false,
    }
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
fn levenshtein(a: &str, b: &str) -> usize {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

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
        let result = Settings::load_with_env(file.map(|_| path.as_path()), env(vars))
            .and_then(|s| s.validate());
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
            Settings::load_with_env(Some(&path), env(&[("DATABASE_URL", "postgres://x/y")]))
                .unwrap();
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
        let doc = include_str!("../docs/configuration.md");
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
            "docs/configuration.md and src/config.rs differ:\n{}",
            differences.join("\n")
        );
    }
}
