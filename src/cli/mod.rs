//! The `usage-tracker` command line.

mod config;
mod elastic;
mod export_costs;
mod generate;
mod publish;
mod report;
mod run;
mod schemas;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::standard::registry::RegistryEndpoint;
use crate::standard::topics;

/// Per-namespace usage and cost accounting for Kubernetes data platforms.
#[derive(Debug, Parser)]
#[command(name = "usage-tracker", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing env-filter syntax).
    #[arg(
        long,
        global = true,
        env = "USAGE_TRACKER_LOG",
        default_value = "info,sqlx=warn"
    )]
    log: String,
    /// Log format: `text` for people, `json` (one object per line) for log pipelines.
    #[arg(
        long,
        global = true,
        env = "USAGE_TRACKER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the tracker: consume usage and cost events, emit usage records.
    Run(run::RunArgs),
    /// Print per-namespace usage and cost for a period.
    Report(report::ReportArgs),
    /// Publish synthetic demo input.
    Generate(generate::GenerateArgs),
    /// Register or check the Usage Tracking Standard's schemas.
    #[command(subcommand)]
    Schemas(schemas::SchemasCommand),
    /// Read Elastic Agent / Metricbeat Kubernetes documents, publish them as UsageEvents.
    Elastic(elastic::ElasticArgs),
    /// Publish bills (GCP billing export, FOCUS, an on-prem rate card) as CostEvents.
    #[command(subcommand)]
    ExportCosts(export_costs::ExportCostsCommand),
    /// Check the configuration (file and environment) or print the defaults.
    #[command(subcommand)]
    Config(config::ConfigCommand),
}

impl Cli {
    /// Sets up logging to stderr.
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }

    /// Runs the chosen command; the exit code tells the outcome.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Run(args) => args.run().await,
            Command::Report(args) => args.run().await,
            Command::Generate(args) => args.run().await,
            Command::Schemas(command) => command.run().await,
            Command::Elastic(args) => args.run().await,
            Command::ExportCosts(command) => command.run().await,
            Command::Config(command) => command.run().await,
        }
    }
}

/// How to reach the schema registry.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Base URL of a Confluent-API schema registry.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub schema_registry_url: String,
    /// Basic auth user.
    #[arg(long, env = "SCHEMA_REGISTRY_USERNAME")]
    pub schema_registry_username: Option<String>,
    /// File holding the basic auth password (a mounted Secret).
    #[arg(long, env = "SCHEMA_REGISTRY_PASSWORD_FILE")]
    pub schema_registry_password_file: Option<std::path::PathBuf>,
}

impl RegistryArgs {
    /// The endpoint these arguments describe.
    pub fn endpoint(&self) -> anyhow::Result<RegistryEndpoint> {
        let password = match &self.schema_registry_password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
                    .trim_end()
                    .to_owned(),
            ),
            None => std::env::var("SCHEMA_REGISTRY_PASSWORD").ok(),
        };
        Ok(RegistryEndpoint {
            url: self.schema_registry_url.clone(),
            username: self.schema_registry_username.clone(),
            password,
            timeout: Duration::from_secs(10),
        })
    }
}

/// The topics of the standard.
#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    /// Topic of UsageEvents.
    #[arg(long, env = "USAGE_TRACKER_USAGE_EVENTS_TOPIC", default_value = topics::USAGE_EVENTS)]
    pub usage_events_topic: String,
    /// Topic of CostEvents.
    #[arg(long, env = "USAGE_TRACKER_COST_EVENTS_TOPIC", default_value = topics::COST_EVENTS)]
    pub cost_events_topic: String,
    /// Topic of UsageRecords.
    #[arg(long, env = "USAGE_TRACKER_USAGE_RECORDS_TOPIC", default_value = topics::USAGE_RECORDS)]
    pub usage_records_topic: String,
}

/// Resolves on SIGTERM or SIGINT: the signal for a graceful stop.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
