//! `usage-tracker config check|defaults`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::config::{Settings, REDACTED};

/// Configuration commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load the file and the environment, validate everything `run` validates and print the
    /// effective configuration as TOML, secrets redacted; exit 1 with the problem on any error.
    Check(CheckArgs),
    /// Print the default configuration as TOML (a starting point for a file).
    Defaults,
}

/// Which configuration to check.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Configuration file (TOML); without it the defaults plus the environment.
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
}

impl ConfigCommand {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ConfigCommand::Check(args) => Ok(check(&args)),
            ConfigCommand::Defaults => {
                print!("{}", Settings::default().to_toml()?);
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    let effective = Settings::load(args.config.as_deref()).and_then(|settings| {
        settings.validate()?;
        settings.redacted().to_toml()
    });
    match effective {
        Ok(text) => {
            let source = args
                .config
                .as_ref()
                .map_or("the defaults".to_owned(), |p| p.display().to_string());
            println!(
                "# Effective configuration: {source} plus the environment; secrets shown as {REDACTED:?}."
            );
            print!("{text}");
            eprintln!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
