//! Typed configuration: one TOML file plus the standard environment variables
//! (`KAFKA_BOOTSTRAP_SERVERS`, `SCHEMA_REGISTRY_URL`, `DATABASE_URL`). Unknown keys are errors.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::accounting::RateCard;
use crate::allocate::{AllocationPolicy, IdleCost};
use crate::ingest::{CostScope, ExclusionRules, Exclusions};
use crate::kafka::KafkaConnection;
use crate::measure::Resource;
use crate::pipeline::{PipelineConfig, Topics};
use crate::standard::registry::RegistryEndpoint;
use crate::standard::topics;
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
    pub topics: TopicSettings,
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

/// `[database]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Postgres URL (`sslmode` as a query parameter); env `DATABASE_URL` wins.
    pub url: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/usage_tracker".into(),
        }
    }
}

/// `[topics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicSettings {
    /// UsageEvents in.
    pub usage_events: String,
    /// CostEvents in.
    pub cost_events: String,
    /// UsageRecords out.
    pub usage_records: String,
    /// Dead letters out.
    pub dead_letters: String,
    /// Partitions of topics the tracker creates.
    pub partitions: i32,
    /// Replication factor of topics the tracker creates.
    pub replication: i32,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self {
            usage_events: topics::USAGE_EVENTS.into(),
            cost_events: topics::COST_EVENTS.into(),
            usage_records: topics::USAGE_RECORDS.into(),
            dead_letters: topics::DEAD_LETTERS.into(),
            partitions: 3,
            replication: 1,
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

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Settings {
    /// Reads `path` (if given), then applies the environment overrides.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut settings = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("{} is not a valid configuration", path.display()))?
            }
            None => Settings::default(),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(v) = env("KAFKA_BOOTSTRAP_SERVERS") {
            settings.kafka.bootstrap_servers = v;
        }
        if let Some(v) = env("SCHEMA_REGISTRY_URL") {
            settings.registry.url = v;
        }
        if let Some(v) = env("DATABASE_URL") {
            settings.database.url = v;
        }
        Ok(settings)
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

    /// The registry endpoint (password read from its file).
    pub fn registry(&self) -> anyhow::Result<RegistryEndpoint> {
        let password = match &self.registry.password_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("reading {file}"))?
                    .trim_end()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(RegistryEndpoint {
            url: self.registry.url.clone(),
            username: self.registry.username.clone(),
            password,
            timeout: Duration::from_secs(10),
        })
    }

    /// Time rules, validated.
    pub fn window(&self) -> anyhow::Result<WindowConfig> {
        let w = &self.window;
        Ok(WindowConfig {
            spec: WindowSpec::new(w.size).map_err(anyhow::Error::msg)?,
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
        listen.parse().map(Some).with_context(|| format!("http.listen {listen:?} is not an address"))
    }

    /// The pipeline configuration.
    pub fn pipeline(&self, until_caught_up: bool) -> anyhow::Result<PipelineConfig> {
        let t = &self.topics;
        Ok(PipelineConfig {
            kafka: self.kafka(),
            group_id: self.kafka.group_id.clone(),
            registry: self.registry()?,
            database_url: self.database.url.clone(),
            topics: Topics {
                usage_events: t.usage_events.clone(),
                cost_events: t.cost_events.clone(),
                usage_records: t.usage_records.clone(),
                dead_letters: t.dead_letters.clone(),
                partitions: t.partitions,
                replication: t.replication,
            },
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

#[cfg(test)]
mod tests {
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
}
