//! `usage-tracker schemas register|check`.
//!
//! The registry and the topic names (which name the subjects) come from the configuration, loaded
//! as `run` loads it (`--config`, the environment, secret files), with this command's flags and
//! their environment variables winning.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use apache_avro::Schema;
use clap::{Args, Subcommand};

use super::{RegistryArgs, TopicArgs};
use crate::config::Settings;
use crate::pipeline::Topics;
use crate::standard::diff::schema_diff;
use crate::standard::registry::RegistryClient;
use crate::standard::schemas::{standard_schemas, LocalSchema, COMPATIBILITY_LEVEL};

/// Schema administration.
#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Register the schemas (idempotent); prints subject, version and id of each.
    Register(SchemaArgs),
    /// Ask the registry whether the schemas are compatible with what it holds; exits 1 if not.
    Check(SchemaArgs),
}

/// Which schemas, on which registry.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Configuration file (TOML): its `[registry]` (url, username, password_file) and `[topics]`
    /// sections apply unless the flags below (or their environment variables) are given.
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    topics: TopicArgs,
    /// Use the `.avsc` files of this directory instead of the built-in ones (a producer's copy).
    #[arg(long)]
    schema_dir: Option<PathBuf>,
}

impl SchemasCommand {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            SchemasCommand::Register(args) => register(args).await,
            SchemasCommand::Check(args) => check(args).await,
        }
    }
}

impl SchemaArgs {
    /// The registry client and the schemas to register or check.
    fn resolve(&self) -> anyhow::Result<(RegistryClient, Vec<(LocalSchema, String)>)> {
        let settings = Settings::load(self.config.as_deref())?;
        let registry = RegistryClient::new(self.registry.endpoint(&settings)?)?;
        Ok((registry, self.schemas(&self.topics.topics(&settings))?))
    }

    fn schemas(&self, t: &Topics) -> anyhow::Result<Vec<(LocalSchema, String)>> {
        let builtin = standard_schemas(&t.usage_events, &t.cost_events, &t.usage_records);
        match &self.schema_dir {
            None => Ok(builtin
                .into_iter()
                .map(|s| {
                    let text = s.schema_json.to_owned();
                    (s, text)
                })
                .collect()),
            Some(dir) => schemas_from_dir(dir, builtin),
        }
    }
}

/// Reads every `.avsc` in `dir` and pairs it with the standard record of the same full name.
fn schemas_from_dir(
    dir: &Path,
    builtin: Vec<LocalSchema>,
) -> anyhow::Result<Vec<(LocalSchema, String)>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "avsc") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let schema = Schema::parse_str(&text)
            .with_context(|| format!("{} is not a valid Avro schema", path.display()))?;
        let name = schema.name().map(|n| n.fullname(None)).unwrap_or_default();
        let Some(local) = builtin.iter().find(|b| b.full_name == name) else {
            bail!(
                "{}: {name:?} is not a record of the Usage Tracking Standard",
                path.display()
            );
        };
        found.push((local.clone(), text));
    }
    if found.is_empty() {
        bail!("no .avsc files in {}", dir.display());
    }
    found.sort_by(|a, b| a.0.subject.cmp(&b.0.subject));
    Ok(found)
}

async fn register(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let (registry, schemas) = args.resolve()?;
    println!("{:<28} {:>7} {:>6}", "subject", "version", "id");
    for (local, text) in schemas {
        registry
            .set_compatibility_level(&local.subject, COMPATIBILITY_LEVEL)
            .await
            .with_context(|| format!("setting {COMPATIBILITY_LEVEL} on {}", local.subject))?;
        let landed = registry
            .register(&local.subject, &text)
            .await
            .with_context(|| format!("registering {} under {}", local.full_name, local.subject))?;
        println!(
            "{:<28} {:>7} {:>6}",
            landed.subject, landed.version, landed.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let (registry, schemas) = args.resolve()?;
    let mut all_compatible = true;
    for (local, text) in schemas {
        let verdict = check_one(&registry, &local, &text).await?;
        all_compatible &= verdict.compatible;
        println!("{}", verdict.report);
    }
    Ok(if all_compatible {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

struct Verdict {
    compatible: bool,
    report: String,
}

async fn check_one(
    registry: &RegistryClient,
    local: &LocalSchema,
    text: &str,
) -> anyhow::Result<Verdict> {
    let subject = &local.subject;
    let context = || format!("checking {subject}");
    let Some(latest) = registry.latest(subject).await.with_context(context)? else {
        return Ok(Verdict {
            compatible: true,
            report: format!("ok   {subject}: new subject, would be registered as version 1"),
        });
    };
    if let Some(same) = registry.lookup(subject, text).await.with_context(context)? {
        return Ok(Verdict {
            compatible: true,
            report: format!(
                "ok   {subject}: already registered as version {} (id {})",
                same.version, same.id
            ),
        });
    }
    let level = registry
        .compatibility_level(subject)
        .await
        .with_context(context)?;
    let against = if level.ends_with("_TRANSITIVE") {
        registry.versions(subject).await.with_context(context)?
    } else {
        vec![latest.version]
    };
    let mut problems = Vec::new();
    for version in &against {
        let answer = registry
            .check_against(subject, *version, text)
            .await
            .with_context(context)?;
        if !answer.is_compatible {
            problems.push(format!("  incompatible with version {version}"));
            problems.extend(answer.messages.iter().map(|m| format!("    registry: {m}")));
        }
    }
    if problems.is_empty() {
        return Ok(Verdict {
            compatible: true,
            report: format!(
                "ok   {subject}: compatible ({level}) with version(s) {against:?}, would be registered as version {}",
                latest.version + 1
            ),
        });
    }
    let mut report = format!("FAIL {subject}: not compatible under {level}\n");
    report.push_str(&problems.join("\n"));
    report.push_str(&format!(
        "\n  changes against version {} (id {}):",
        latest.version, latest.id
    ));
    let old =
        Schema::parse_str(&latest.schema).context("the registry's latest schema does not parse")?;
    let new = Schema::parse_str(text)?;
    for line in schema_diff(&old, &new) {
        report.push_str("\n    ");
        report.push_str(&line);
    }
    Ok(Verdict {
        compatible: false,
        report,
    })
}
