//! The `usage-tracker` command line.

mod config;
mod elastic;
mod export_costs;
mod generate;
mod publish;
mod publish_events;
mod recompute;
mod report;
mod run;
mod schemas;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::pipeline::Topics;
use crate::standard::registry::RegistryEndpoint;

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
    /// Re-draft past windows under the current configuration (after changing `[sharing]`).
    Recompute(recompute::RecomputeArgs),
    /// Publish synthetic demo input.
    Generate(generate::GenerateArgs),
    /// Register or check the Usage Tracking Standard's schemas.
    #[command(subcommand)]
    Schemas(schemas::SchemasCommand),
    /// Read Elastic Agent / Metricbeat Kubernetes documents, publish them as UsageEvents.
    Elastic(elastic::ElasticArgs),
    /// Publish standard events from JSON-lines files (UsageEvents of a meter exporter).
    #[command(subcommand)]
    Publish(publish_events::PublishCommand),
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
            Command::Recompute(args) => args.run().await,
            Command::Generate(args) => args.run().await,
            Command::Schemas(command) => command.run().await,
            Command::Elastic(args) => args.run().await,
            Command::ExportCosts(command) => command.run().await,
            Command::Publish(command) => command.run().await,
            Command::Config(command) => command.run().await,
        }
    }
}

/// How to reach the schema registry. Each flag (or its environment variable) wins over the
/// configuration's `[registry]` section; what no flag sets comes from the configuration, loaded
/// as `run` loads it (so `SCHEMA_REGISTRY_URL` and `USAGE_TRACKER__REGISTRY__*` apply too).
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// Base URL of a Confluent-API schema registry [default: the configuration's `[registry]
    /// url`, which `SCHEMA_REGISTRY_URL` sets; else http://127.0.0.1:8081].
    #[arg(long)]
    pub schema_registry_url: Option<String>,
    /// Basic auth user [default: the configuration's `[registry] username`].
    #[arg(long, env = "SCHEMA_REGISTRY_USERNAME")]
    pub schema_registry_username: Option<String>,
    /// File holding the basic auth password, a mounted Secret [default: the password in
    /// `SCHEMA_REGISTRY_PASSWORD`, else the configuration's `[registry] password_file`].
    #[arg(long, env = "SCHEMA_REGISTRY_PASSWORD_FILE")]
    pub schema_registry_password_file: Option<std::path::PathBuf>,
}

impl RegistryArgs {
    /// The endpoint: these arguments over `settings.registry`; the password from
    /// `--schema-registry-password-file`, else `SCHEMA_REGISTRY_PASSWORD`, else the configured
    /// `password_file`.
    pub fn endpoint(&self, settings: &Settings) -> anyhow::Result<RegistryEndpoint> {
        self.endpoint_with(settings, std::env::var("SCHEMA_REGISTRY_PASSWORD").ok())
    }

    /// [`RegistryArgs::endpoint`] with the value of `SCHEMA_REGISTRY_PASSWORD` given.
    fn endpoint_with(
        &self,
        settings: &Settings,
        env_password: Option<String>,
    ) -> anyhow::Result<RegistryEndpoint> {
        let mut registry = settings.registry.clone();
        if let Some(url) = &self.schema_registry_url {
            registry.url = url.clone();
        }
        if let Some(user) = &self.schema_registry_username {
            registry.username = Some(user.clone());
        }
        let env_password = env_password.filter(|_| self.schema_registry_password_file.is_none());
        if let Some(file) = &self.schema_registry_password_file {
            registry.password_file = Some(file.display().to_string());
        } else if env_password.is_some() {
            registry.password_file = None;
        }
        let mut endpoint = registry.endpoint()?;
        if env_password.is_some() {
            endpoint.password = env_password;
        }
        Ok(endpoint)
    }
}

/// The topics of the standard. Each flag (or its environment variable) wins over the
/// configuration's `[topics]` section.
#[derive(Debug, Clone, Default, Args)]
pub struct TopicArgs {
    /// Topic of UsageEvents [default: the configuration's `[topics] usage_events`, else
    /// usage.events.v1].
    #[arg(long, env = "USAGE_TRACKER_USAGE_EVENTS_TOPIC")]
    pub usage_events_topic: Option<String>,
    /// Topic of CostEvents [default: the configuration's `[topics] cost_events`, else
    /// cost.events.v1].
    #[arg(long, env = "USAGE_TRACKER_COST_EVENTS_TOPIC")]
    pub cost_events_topic: Option<String>,
    /// Topic of UsageRecords [default: the configuration's `[topics] usage_records`, else
    /// usage.records.v1].
    #[arg(long, env = "USAGE_TRACKER_USAGE_RECORDS_TOPIC")]
    pub usage_records_topic: Option<String>,
}

impl TopicArgs {
    /// These arguments over `settings.topics`.
    pub fn topics(&self, settings: &Settings) -> Topics {
        let mut topics = settings.topics.clone();
        let pick = |flag: &Option<String>, configured: &mut String| {
            if let Some(topic) = flag {
                configured.clone_from(topic);
            }
        };
        pick(&self.usage_events_topic, &mut topics.usage_events);
        pick(&self.cost_events_topic, &mut topics.cost_events);
        pick(&self.usage_records_topic, &mut topics.usage_records);
        topics
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings as `Settings::load` reads them: `text` as the file, `env` as the environment.
    fn load(dir: &std::path::Path, text: &str, env: &[(&str, &str)]) -> Settings {
        let path = dir.join("tracker.toml");
        std::fs::write(&path, text).unwrap();
        let env = env.iter().map(|(n, v)| (n.to_string(), v.to_string()));
        Settings::load_with_env(Some(&path), env).unwrap()
    }

    #[test]
    fn registry_credentials_come_from_the_configuration_unless_flags_give_them() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "file-s3cret\n").unwrap();
        let text = format!(
            "[registry]\nurl = \"https://registry.example:8081\"\nusername = \"tracker\"\npassword_file = {:?}\n",
            password.display().to_string()
        );
        let settings = load(dir.path(), &text, &[]);

        let endpoint = RegistryArgs::default()
            .endpoint_with(&settings, None)
            .unwrap();
        assert_eq!(endpoint.url, "https://registry.example:8081");
        assert_eq!(endpoint.username.as_deref(), Some("tracker"));
        assert_eq!(endpoint.password.as_deref(), Some("file-s3cret"));

        // SCHEMA_REGISTRY_PASSWORD wins over the configured file.
        let endpoint = RegistryArgs::default()
            .endpoint_with(&settings, Some("env-s3cret".into()))
            .unwrap();
        assert_eq!(endpoint.password.as_deref(), Some("env-s3cret"));
        assert_eq!(endpoint.username.as_deref(), Some("tracker"));

        // Flags (or their variables) win over both.
        let flag_password = dir.path().join("flag-password");
        std::fs::write(&flag_password, "flag-s3cret").unwrap();
        let args = RegistryArgs {
            schema_registry_url: Some("http://other:8081".into()),
            schema_registry_username: Some("admin".into()),
            schema_registry_password_file: Some(flag_password),
        };
        let endpoint = args
            .endpoint_with(&settings, Some("env-s3cret".into()))
            .unwrap();
        assert_eq!(endpoint.url, "http://other:8081");
        assert_eq!(endpoint.username.as_deref(), Some("admin"));
        assert_eq!(endpoint.password.as_deref(), Some("flag-s3cret"));
    }

    #[test]
    fn the_registry_url_follows_the_environment_as_for_run() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[registry]\nurl = \"http://from-file:8081\"\n";
        let from_file = load(dir.path(), text, &[]);
        let from_env = load(
            dir.path(),
            text,
            &[("SCHEMA_REGISTRY_URL", "http://from-env:8081")],
        );
        let args = RegistryArgs::default();
        assert_eq!(
            args.endpoint_with(&from_file, None).unwrap().url,
            "http://from-file:8081"
        );
        let endpoint = args.endpoint_with(&from_env, None).unwrap();
        assert_eq!(endpoint.url, "http://from-env:8081");
        assert_eq!(endpoint.url, from_env.registry().unwrap().url, "as run");
        assert_eq!(endpoint.username, None);
        assert_eq!(endpoint.password, None);
    }

    #[test]
    fn a_missing_configured_password_file_is_an_error_unless_overridden() {
        let dir = tempfile::tempdir().unwrap();
        let settings = load(
            dir.path(),
            "[registry]\nusername = \"tracker\"\npassword_file = \"/nonexistent/password\"\n",
            &[],
        );
        let error = RegistryArgs::default()
            .endpoint_with(&settings, None)
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("/nonexistent/password"),
            "{error:#}"
        );
        let endpoint = RegistryArgs::default()
            .endpoint_with(&settings, Some("env-s3cret".into()))
            .unwrap();
        assert_eq!(endpoint.password.as_deref(), Some("env-s3cret"));
    }

    #[test]
    fn topic_flags_win_over_the_configured_topics() {
        let dir = tempfile::tempdir().unwrap();
        let settings = load(
            dir.path(),
            "[topics]\nusage_events = \"u.file\"\ncost_events = \"c.file\"\n",
            &[],
        );
        let args = TopicArgs {
            cost_events_topic: Some("c.flag".into()),
            ..TopicArgs::default()
        };
        let topics = args.topics(&settings);
        assert_eq!(topics.usage_events, "u.file");
        assert_eq!(topics.cost_events, "c.flag");
        assert_eq!(topics.usage_records, Topics::default().usage_records);
    }
}
