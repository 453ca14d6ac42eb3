//! The three Shopify webhook endpoints (CONTRACT.md §4.1).
//!
//! Order of checks: body size (the router's limit, 413), signature (401), shop domain (401),
//! JSON with a numeric id (400); then the event is journaled, synced and applied, and only then 200.
//! A store that cannot write answers 503 so Shopify retries; nothing is acknowledged that is not
//! on disk.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::app::App;
use crate::flows::intake::Topic;
use crate::services::orders::{ingest_webhook, IngestError};
use crate::shopify::webhook;
use crate::store::Ingested;

pub async fn orders_create(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&app, Topic::Create, &headers, &body).await
}

pub async fn orders_updated(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&app, Topic::Updated, &headers, &body).await
}

pub async fn orders_cancelled(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&app, Topic::Cancelled, &headers, &body).await
}

async fn receive(app: &Arc<App>, topic: Topic, headers: &HeaderMap, body: &[u8]) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    let s = &app.cfg.shopify;
    let (status, result, message) = if !webhook::verify(
        s.webhook_secret.expose(),
        s.previous_webhook_secret.expose(),
        body,
        header("X-Shopify-Hmac-Sha256"),
    ) {
        (StatusCode::UNAUTHORIZED, "bad_signature", "invalid or missing X-Shopify-Hmac-Sha256")
    } else if !header("X-Shopify-Shop-Domain").eq_ignore_ascii_case(&app.cfg.shop_domain()) {
        (StatusCode::UNAUTHORIZED, "wrong_shop", "X-Shopify-Shop-Domain is not the configured shop")
    } else {
        let event_key =
            [header("X-Shopify-Event-Id"), header("X-Shopify-Webhook-Id")].into_iter().find(|k| !k.is_empty());
        match ingest_webhook(app, topic, event_key, body).await {
            Ok(Ingested::Duplicate) => (StatusCode::OK, "duplicate", "already received"),
            Ok(Ingested::Applied { outcome, .. }) => (StatusCode::OK, outcome, "ok"),
            Err(IngestError::BadRequest(m)) => (StatusCode::BAD_REQUEST, "bad_request", m),
            Err(IngestError::Store(e)) => {
                tracing::error!(error = %e, topic = topic.as_str(), "could not store a webhook; answering 503 so Shopify retries");
                (StatusCode::SERVICE_UNAVAILABLE, "store_error", "temporarily unable to store the event")
            }
        }
    };
    metrics::counter!("channeld_webhooks_total", "topic" => topic.as_str(), "result" => result).increment(1);
    if status != StatusCode::OK {
        tracing::warn!(topic = topic.as_str(), status = status.as_u16(), reason = message, "webhook refused");
    }
    (status, Json(json!({ "status": message }))).into_response()
}
