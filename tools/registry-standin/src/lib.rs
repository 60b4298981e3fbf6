//! # registry-standin
//!
//! A small in-memory stand-in for the Confluent Schema Registry REST API, for
//! development and tests only. It is **not** part of the product.
//!
//! It speaks the Confluent 7.x wire format for the endpoints producers,
//! consumers and schema tooling commonly use (registration, lookup, fetch by id,
//! subjects/versions, compatibility checks and compatibility configuration), for
//! Avro schemas only. Compatibility checks are real, using
//! [`apache_avro::schema_compatibility::SchemaCompatibility`].
//!
//! Known differences from Confluent: schema references and non-Avro schema
//! types are rejected with 422 / 42201; there are no deletes, modes, contexts,
//! metadata or rule sets; state lives in memory only.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let registry = registry_standin::spawn("127.0.0.1:0".parse().unwrap()).await?;
//! println!("schema registry at {}", registry.url());
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod compat;
pub mod error;
pub mod store;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use api::{router, CONTENT_TYPE_V1};
pub use compat::CompatibilityLevel;
pub use error::ApiError;
pub use store::Registry;

/// Starts the registry on `addr` (use `"127.0.0.1:0"` for an ephemeral port)
/// with a fresh, empty state and global compatibility `BACKWARD`.
///
/// Returns the bound address and a handle; the server runs on the current tokio
/// runtime until the handle is dropped or [`RunningRegistry::shutdown`] is called.
pub async fn spawn(addr: SocketAddr) -> std::io::Result<RunningRegistry> {
    spawn_with_registry(addr, Registry::default()).await
}

/// Like [`spawn`], but serves the given (possibly pre-configured or shared) state.
pub async fn spawn_with_registry(
    addr: SocketAddr,
    registry: Registry,
) -> std::io::Result<RunningRegistry> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let app = router(registry.clone());
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                // Resolves on an explicit signal or when the sender is dropped.
                let _ = shutdown_rx.await;
            })
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "registry-standin server failed");
        }
    });
    tracing::debug!(addr = %bound, "registry-standin listening");
    Ok(RunningRegistry {
        addr: bound,
        registry,
        shutdown: Some(shutdown_tx),
        task: Some(task),
    })
}

/// Handle to a registry started with [`spawn`]. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningRegistry {
    addr: SocketAddr,
    registry: Registry,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningRegistry {
    /// Base URL, e.g. `"http://127.0.0.1:PORT"`. A wildcard bind address
    /// (`0.0.0.0` / `::`) is reported as the matching loopback address.
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state served by this instance (e.g. to pre-configure or inspect it).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
