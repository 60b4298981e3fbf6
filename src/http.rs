//! The HTTP endpoint of `run` and `elastic`: `/metrics` (Prometheus), `/healthz` (alive) and
//! `/readyz` (broker, registry and, for `run`, database reachable; input assigned).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;

use crate::standard::registry::RegistryEndpoint;

/// What `/metrics` renders and `/readyz` looks at; the command keeps the flags current.
pub struct Health {
    /// The metrics to render.
    pub metrics: prometheus::Registry,
    /// The database to ping; `None` for a command without one (`elastic`).
    pub database: Option<PgPool>,
    /// The schema registry to ping (with its credentials).
    pub registry: RegistryEndpoint,
    /// Whether the last broker interaction succeeded.
    pub broker_ok: AtomicBool,
    /// Whether the consumer group has given this instance its assignment.
    pub assigned: AtomicBool,
    /// Epoch ms of the last completed checkpoint round (`run`); 0 before the first.
    pub last_checkpoint_ms: AtomicI64,
    /// A pipeline with no checkpoint round for this long is stalled (not ready); `None`: not
    /// checked.
    pub stall_after: Option<Duration>,
    http: reqwest::Client,
}

impl Health {
    /// Health state for a command: its metrics, its database (if any) and its registry.
    pub fn new(
        metrics: prometheus::Registry,
        database: Option<PgPool>,
        registry: RegistryEndpoint,
    ) -> Self {
        Self {
            metrics,
            database,
            registry,
            broker_ok: AtomicBool::new(false),
            assigned: AtomicBool::new(false),
            last_checkpoint_ms: AtomicI64::new(0),
            stall_after: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("http client"),
        }
    }

    /// `None` without a database, else whether it answers within 2 s.
    async fn database_ok(&self) -> Option<bool> {
        let database = self.database.as_ref()?;
        let ping = sqlx::query("SELECT 1").execute(database);
        Some(matches!(
            tokio::time::timeout(Duration::from_secs(2), ping).await,
            Ok(Ok(_))
        ))
    }

    /// Whether checkpoints still complete (always, when not checked or before the first).
    fn pipeline_flowing(&self, now_ms: i64) -> bool {
        let last = self.last_checkpoint_ms.load(Ordering::Relaxed);
        match self.stall_after {
            Some(limit) if last > 0 => now_ms - last <= limit.as_millis() as i64,
            _ => true,
        }
    }

    async fn registry_ok(&self) -> bool {
        let url = format!("{}/subjects", self.registry.url.trim_end_matches('/'));
        let mut request = self.http.get(url);
        if let Some(user) = &self.registry.username {
            request = request.basic_auth(user, self.registry.password.as_deref());
        }
        matches!(request.send().await, Ok(r) if r.status().is_success())
    }
}

/// Serves the endpoints on `listen` until the process ends; returns the bound address.
pub async fn serve(listen: SocketAddr, health: Arc<Health>) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "http endpoint stopped");
        }
    });
    tracing::info!(%bound, "serving /metrics, /healthz, /readyz");
    Ok(bound)
}

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&health.metrics),
    )
}

async fn ready(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let (database, registry) = tokio::join!(health.database_ok(), health.registry_ok());
    let broker = health.broker_ok.load(Ordering::Relaxed);
    let assigned = health.assigned.load(Ordering::Relaxed);
    let flowing = health.pipeline_flowing(crate::time::now_ms());
    let ready = database.unwrap_or(true) && registry && broker && assigned && flowing;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let mut body = json!({
        "ready": ready,
        "schema_registry": word(registry),
        "broker": word(broker),
        "assignment": if assigned { "assigned" } else { "waiting" },
        "pipeline": if flowing { "flowing" } else { "stalled" },
    });
    if let Some(database) = database {
        body["database"] = json!(word(database));
    }
    (status, Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(stall_after: Option<Duration>) -> Health {
        let mut health = Health::new(
            prometheus::Registry::new(),
            None,
            RegistryEndpoint::new("http://127.0.0.1:1"),
        );
        health.stall_after = stall_after;
        health
    }

    #[test]
    fn a_pipeline_without_a_checkpoint_for_too_long_is_stalled() {
        let h = health(Some(Duration::from_secs(60)));
        assert!(h.pipeline_flowing(1_000_000), "before the first checkpoint");
        h.last_checkpoint_ms.store(1_000_000, Ordering::Relaxed);
        assert!(h.pipeline_flowing(1_060_000));
        assert!(!h.pipeline_flowing(1_060_001));
        let unchecked = health(None);
        unchecked.last_checkpoint_ms.store(1, Ordering::Relaxed);
        assert!(unchecked.pipeline_flowing(i64::MAX));
    }
}
