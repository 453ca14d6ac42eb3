//! `/healthz` (the process answers), `/readyz` (store open, workers running), `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;

use crate::app::App;

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, String) {
    // Readiness asks the filesystem for its free space: a hung disk must not hold an async worker.
    let readiness = tokio::task::spawn_blocking(move || app.readiness()).await;
    match readiness.unwrap_or_else(|_| Err("the readiness check failed".into())) {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

pub async fn metrics(State(app): State<Arc<App>>) -> String {
    // The counts scan the store: keep them off the async workers.
    let counted = app.clone();
    let _ = tokio::task::spawn_blocking(move || counted.refresh_gauges()).await;
    crate::telemetry::render_metrics()
}
