//! Typed configuration: one TOML file, then the standard environment variables
//! (`KAFKA_BOOTSTRAP_SERVERS`, `SCHEMA_REGISTRY_URL`, `DATABASE_URL`), then
//! `USAGE_TRACKER__<SECTION>__<KEY>[__<MAP KEY>]=value` for any key; secrets may come from files
//! (`database.url_file`, `registry.password_file`, `kafka.properties_files`). Unknown keys are
//! errors, with the nearest valid name suggested. Every option is described in
//! `docs/configuration.md`, which a test keeps in step with these types.
//!
//! [`Settings`] and what it builds (the [`PipelineConfig`] among them) live here; the section
//! types in `types`, file and environment layering in `load`, redaction in `redact`.

mod load;
mod redact;
#[cfg(test)]
mod tests;
mod types;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::accounting::RateCard;
use crate::allocate::{AllocationPolicy, IdleCost};
use crate::billing::{CategoryRules, ExportOptions};
use crate::ingest::{Aggregation, CostScope, ExclusionRules, Exclusions};
use crate::kafka::KafkaConnection;
use crate::measure::Resource;
use crate::standard::registry::RegistryEndpoint;
use crate::window::{WindowConfig, WindowSpec};

pub use load::{ENV_PREFIX, STANDARD_ENV};
pub use redact::{is_secret_property, redact_url, REDACTED};
pub use types::{
    AggregationSettings, AllocationSettings, BillingSettings, DatabaseSettings, ElasticSettings,
    HttpSettings, KafkaSettings, PipelineSettings, RegistrySettings, SharingSettings, Topics,
    WindowSettings,
};

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
    /// Platform cost shared to the namespaces it serves.
    pub sharing: SharingSettings,
    /// Accounts per label value and workload inside namespaces.
    pub aggregation: AggregationSettings,
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

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Brokers.
    pub kafka: KafkaConnection,
    /// Consumer group shared by all instances.
    pub group_id: String,
    /// Schema registry.
    pub registry: RegistryEndpoint,
    /// Postgres URL.
    pub database_url: String,
    /// Topics.
    pub topics: Topics,
    /// Time rules.
    pub window: WindowConfig,
    /// Allocation rules.
    pub policy: AllocationPolicy,
    /// Estimated prices until bills arrive.
    pub rate_card: Option<RateCard>,
    /// What stays out of the accounting.
    pub exclusions: Exclusions,
    /// Groups below the namespace that usage is also counted in.
    pub aggregation: Aggregation,
    /// Clusters of untagged bill lines.
    pub cost_scopes: Vec<CostScope>,
    /// How often records are emitted and state committed.
    pub checkpoint_interval: Duration,
    /// Stop once everything available at start is processed (CronJob mode).
    pub until_caught_up: bool,
    /// Address of `/metrics`, `/healthz`, `/readyz`; `None` serves nothing.
    pub http_listen: Option<SocketAddr>,
    /// How long the final flush on shutdown may take.
    pub shutdown_timeout: Duration,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Settings {
    /// Checks everything [`Settings::pipeline`] checks: window size, allocation idle mode and
    /// weights, exclusion globs, `http.listen`, the registry password file.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.pipeline(false).map(drop)
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

    /// The cluster `[[cost_scopes]]` assigns to a bill line without one: the tracker's rule,
    /// [`crate::ingest::scope_cluster`]. Exporters set it on the line, so the line is keyed, and
    /// partitioned, like its cluster's usage.
    pub fn scope_cluster(&self, event: &crate::standard::CostEvent) -> Option<String> {
        crate::ingest::scope_cluster(event, &self.cost_scopes).map(str::to_owned)
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
        let sharing = self.sharing.policy()?;
        if sharing.share_idle && idle == IdleCost::ShareProRata {
            anyhow::bail!(
                "allocation.idle = \"share\" already spreads idle cost; with sharing.idle = \"share\" \
                 set allocation.idle = \"separate\" (sharing then moves __idle__ by sharing.split)"
            );
        }
        Ok(AllocationPolicy {
            other_weights,
            idle,
            sharing,
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
            aggregation: Aggregation::new(&self.aggregation.labels, self.aggregation.workload)
                .context("aggregation.labels")?,
            cost_scopes: self.cost_scopes.clone(),
            checkpoint_interval: self.pipeline.checkpoint_interval,
            until_caught_up,
            http_listen: self.http_listen()?,
            shutdown_timeout: self.pipeline.shutdown_timeout,
        })
    }
}
