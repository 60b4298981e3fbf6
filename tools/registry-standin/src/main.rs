//! `registry-standin` binary: serves the in-memory Confluent Schema Registry
//! stand-in until interrupted. For development and tests only.

use std::net::SocketAddr;

use clap::Parser;
use registry_standin::{spawn_with_registry, CompatibilityLevel, Registry};
use tracing_subscriber::EnvFilter;

/// In-memory Confluent Schema Registry stand-in (development and tests only).
#[derive(Debug, Parser)]
#[command(name = "registry-standin", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(
        long,
        env = "REGISTRY_STANDIN_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    listen: SocketAddr,

    /// Initial global compatibility level (NONE, BACKWARD, BACKWARD_TRANSITIVE,
    /// FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE; case-insensitive).
    #[arg(
        long,
        env = "REGISTRY_STANDIN_DEFAULT_COMPATIBILITY",
        default_value = "BACKWARD"
    )]
    default_compatibility: CompatibilityLevel,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let args = Args::parse();
    let running =
        spawn_with_registry(args.listen, Registry::new(args.default_compatibility)).await?;
    tracing::info!(
        url = %running.url(),
        compatibility = %args.default_compatibility,
        "registry-standin listening (development/test stand-in, not the product)"
    );

    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
