//! The couriers' status webhooks (CONTRACT.md §10.2): `POST /tracking/clickpost` (header
//! `webhook_key`) and `POST /tracking/rocket` (header `x-api-key`; Shiprocket refuses a URL
//! containing its own name, hence "rocket").
//!
//! Order of checks: `tracking.enabled` (else 404, as if the path did not exist), the key compared
//! in constant time (401, nothing stored; an empty configured key matches nothing), the body (400
//! when not JSON or without a waybill); then the event is journaled, synced and applied, and only
//! then 200. A waybill channeld did not book is answered 200 (the courier would retry anything
//! else for ever) and only counted. A store that cannot write answers 503 so the courier retries.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::flows::tracking::Courier;
use crate::services::orders::IngestError;
use crate::services::tracking::{self, Tracked};

pub async fn clickpost(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&app, Courier::Clickpost, &headers, &body).await
}

pub async fn rocket(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&app, Courier::Shiprocket, &headers, &body).await
}

/// The header a courier's key comes in, and the key configured for it.
fn expected(app: &App, courier: Courier) -> (&'static str, &str) {
    match courier {
        Courier::Clickpost => ("webhook_key", app.cfg.clickpost.webhook_key.expose()),
        Courier::Shiprocket => ("x-api-key", app.cfg.shiprocket.webhook_token.expose()),
    }
}

/// Whether the request carries the courier's configured key (compared in constant time).
fn authentic(app: &App, courier: Courier, headers: &HeaderMap) -> bool {
    let (header, key) = expected(app, courier);
    let given = headers.get(header).map(|v| v.as_bytes()).unwrap_or_default();
    !key.is_empty() && bool::from(given.ct_eq(key.as_bytes()))
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "status": message }))).into_response()
}

async fn receive(app: &Arc<App>, courier: Courier, headers: &HeaderMap, body: &[u8]) -> Response {
    if !app.cfg.tracking.enabled {
        return answer(StatusCode::NOT_FOUND, "tracking is not enabled (tracking.enabled = false)");
    }
    if !authentic(app, courier, headers) {
        tracking::count(courier, "refused");
        let (header, _) = expected(app, courier);
        tracing::warn!(courier = courier.as_str(), header, "courier webhook refused: key missing or wrong");
        return answer(StatusCode::UNAUTHORIZED, &format!("{header} missing or wrong"));
    }
    match tracking::ingest(app, courier, body).await {
        Ok(Tracked::UnknownAwb) => answer(StatusCode::OK, "unknown waybill: not recorded"),
        Ok(Tracked::Recorded(outcome)) => answer(StatusCode::OK, outcome.as_str()),
        Err(IngestError::BadRequest(why)) => {
            tracking::count(courier, "refused");
            tracing::warn!(courier = courier.as_str(), reason = why, "courier webhook refused");
            answer(StatusCode::BAD_REQUEST, why)
        }
        Err(IngestError::Store(e)) => {
            tracing::error!(error = %e, courier = courier.as_str(), "could not store a courier webhook; answering 503 so it is sent again");
            answer(StatusCode::SERVICE_UNAVAILABLE, "temporarily unable to store the event")
        }
    }
}
