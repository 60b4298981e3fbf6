//! The section types of the configuration file (`[kafka]`, `[registry]`, ...), with their
//! defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::allocate::{SharedLabel, SharingPolicy, SplitRule};
use crate::billing::CategoryRule;
use crate::ingest::ecs::{CapacitySource, EcsSettings, UsageSource};
use crate::standard::registry::RegistryEndpoint;

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

/// `[sharing]`: platform cost moved to the namespaces it serves (docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharingSettings {
    /// Namespaces whose cost is shared (globs: `kube-*`).
    pub namespaces: Vec<String>,
    /// `separate` (default: idle cost stays on `__idle__`) or `share` (split like the namespaces).
    pub idle: String,
    /// `proportional` (default: to each receiver's own cost), `even` or `weighted`.
    pub split: String,
    /// Receiver weights for `split = "weighted"`; a receiver without one gets none.
    pub weights: BTreeMap<String, u64>,
    /// Who receives shared cost (globs); empty: every namespace that is not shared.
    pub receivers: Vec<String>,
    /// Workloads shared wherever they run, by pod label (`{ "app.kubernetes.io/part-of" =
    /// "ferrisdx-platform" }`).
    pub labels: BTreeMap<String, String>,
}

impl Default for SharingSettings {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            idle: "separate".into(),
            split: "proportional".into(),
            weights: BTreeMap::new(),
            receivers: Vec::new(),
            labels: BTreeMap::new(),
        }
    }
}

impl SharingSettings {
    /// The sharing rules, validated.
    pub fn policy(&self) -> anyhow::Result<SharingPolicy> {
        let globs = |field: &str, patterns: &[String]| {
            patterns
                .iter()
                .map(|p| {
                    glob::Pattern::new(p)
                        .with_context(|| format!("sharing.{field}: {p:?} is not a glob pattern"))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        };
        let share_idle = match self.idle.as_str() {
            "separate" => false,
            "share" => true,
            other => {
                anyhow::bail!("sharing.idle must be \"separate\" or \"share\", not {other:?}")
            }
        };
        let split = match self.split.as_str() {
            "proportional" => SplitRule::Proportional,
            "even" => SplitRule::Even,
            "weighted" => SplitRule::Weighted,
            other => anyhow::bail!(
                "sharing.split must be \"proportional\", \"even\" or \"weighted\", not {other:?}"
            ),
        };
        if split != SplitRule::Weighted && !self.weights.is_empty() {
            anyhow::bail!("sharing.weights apply only with split = \"weighted\"");
        }
        if split == SplitRule::Weighted && self.weights.values().all(|&w| w == 0) {
            anyhow::bail!("split = \"weighted\" needs sharing.weights with a weight above 0");
        }
        Ok(SharingPolicy {
            namespaces: globs("namespaces", &self.namespaces)?,
            share_idle,
            split,
            weights: self.weights.clone(),
            receivers: globs("receivers", &self.receivers)?,
            labels: self
                .labels
                .iter()
                .map(|(key, value)| {
                    if key.is_empty() || key.chars().any(char::is_control) {
                        anyhow::bail!("sharing.labels: {key:?} is not a label key");
                    }
                    Ok(SharedLabel::new(key, value))
                })
                .collect::<anyhow::Result<_>>()?,
        })
    }
}

/// `[aggregation]`: accounts below the namespace, per label value or owning workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregationSettings {
    /// Pod label keys to keep usage and cost per value of (`team`, `hub.jupyter.org/username`).
    pub labels: Vec<String>,
    /// Whether to keep usage and cost per owning workload (`<kind>/<name>`) too.
    pub workload: bool,
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

/// Topics the tracker reads and writes (`[topics]` in the configuration).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
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

impl Default for Topics {
    fn default() -> Self {
        use crate::standard::topics;
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
