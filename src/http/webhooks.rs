//! The Shopify webhook endpoints: the three order topics (CONTRACT.md §4.1) and the four return
//! topics (§9.4, taken when `returns.enabled`, else answered 200 and ignored).
//!
//! Order of checks: body size (the router's limit, 413), signature (401), shop domain (401),
//! JSON with a numeric id (400); then the event is journaled, synced and applied, and only then 200.
//! A store that cannot write answers 503 so Shopify retries; nothing is acknowledged that is not
//! on disk.
//!
//! A handler checks where the delivery comes from ([`verified`]), hands it to
//! `services::orders`, and answers. Every refusal is a [`WebhookError`], whose status, metric
//! label and body are decided in one place ([`WebhookError::answer`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::app::App;
use crate::config::Config;
use crate::flows::intake::Topic;
use crate::flows::returns::ReturnTopic;
use crate::services::orders::{ingest_webhook, IngestError};
use crate::services::returns::{self, ReturnIngested};
use crate::shopify::webhook;
use crate::store::{Ingested, StoreError};

pub async fn orders_create(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&app, Topic::Create, &headers, &body).await
}

pub async fn orders_updated(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&app, Topic::Updated, &headers, &body).await
}

pub async fn orders_cancelled(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&app, Topic::Cancelled, &headers, &body).await
}

pub async fn return_approve(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive_return(&app, ReturnTopic::Approve, &headers, &body).await
}

pub async fn return_update(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive_return(&app, ReturnTopic::Update, &headers, &body).await
}

pub async fn return_cancel(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive_return(&app, ReturnTopic::Cancel, &headers, &body).await
}

pub async fn return_delivery(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive_return(&app, ReturnTopic::Delivery, &headers, &body).await
}

/// Why a delivery was not taken.
#[derive(Debug)]
pub enum WebhookError {
    /// `X-Shopify-Hmac-Sha256` missing, or not the body's under either secret: nothing stored.
    BadSignature,
    /// `X-Shopify-Shop-Domain` is not the configured shop: nothing stored.
    WrongShop,
    /// Not JSON with a numeric id, or not UTF-8.
    BadRequest(&'static str),
    /// The store cannot write now: Shopify must retry (the cause goes to the log, not the body).
    Store(StoreError),
}

impl WebhookError {
    /// The one mapping: the status, the `result` label of `channeld_webhooks_total`, and the
    /// message answered (`{"status": message}`) and logged.
    fn answer(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            WebhookError::BadSignature => {
                (StatusCode::UNAUTHORIZED, "bad_signature", "invalid or missing X-Shopify-Hmac-Sha256")
            }
            WebhookError::WrongShop => {
                (StatusCode::UNAUTHORIZED, "wrong_shop", "X-Shopify-Shop-Domain is not the configured shop")
            }
            WebhookError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            WebhookError::Store(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_error", "temporarily unable to store the event")
            }
        }
    }
}

impl From<IngestError> for WebhookError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::BadRequest(m) => WebhookError::BadRequest(m),
            IngestError::Store(e) => WebhookError::Store(e),
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let (status, _, message) = self.answer();
        (status, Json(json!({ "status": message }))).into_response()
    }
}

/// A delivery taken (stored, or already stored): 200, with the outcome as the metric's `result`.
struct Accepted {
    result: &'static str,
    message: &'static str,
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        (StatusCode::OK, Json(json!({ "status": self.message }))).into_response()
    }
}

/// An order delivery, counted and answered by [`respond`].
async fn receive(app: &Arc<App>, topic: Topic, headers: &HeaderMap, body: &[u8]) -> Response {
    let started = std::time::Instant::now();
    let result = accept(app, topic, headers, body).await;
    respond(app, topic.as_str(), started, result)
}

/// Counts every delivery by outcome, times each one taken, and logs each refusal.
fn respond(
    app: &App,
    topic: &'static str,
    started: std::time::Instant,
    result: Result<Accepted, WebhookError>,
) -> Response {
    if result.is_ok() {
        app.ack_latency.record(crate::app::now_ms(), started.elapsed());
    }
    let label = result.as_ref().map_or_else(|e| e.answer().1, |a| a.result);
    metrics::counter!("channeld_webhooks_total", "topic" => topic, "result" => label).increment(1);
    match result {
        Ok(accepted) => accepted.into_response(),
        Err(e) => {
            log_refusal(topic, &e);
            e.into_response()
        }
    }
}

async fn accept(app: &Arc<App>, topic: Topic, headers: &HeaderMap, body: &[u8]) -> Result<Accepted, WebhookError> {
    let event_key = verified(&app.cfg, headers, body)?;
    Ok(match ingest_webhook(app, topic, event_key, body).await? {
        Ingested::Duplicate => Accepted { result: "duplicate", message: "already received" },
        Ingested::Applied { outcome, .. } => Accepted { result: outcome, message: "ok" },
    })
}

/// Checks that the delivery is signed with the shop's webhook secret (or the previous one) and
/// comes from the configured shop; returns its de-duplication key (`X-Shopify-Event-Id`, else
/// `X-Shopify-Webhook-Id`), if any.
fn verified<'h>(cfg: &Config, headers: &'h HeaderMap, body: &[u8]) -> Result<Option<&'h str>, WebhookError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    let s = &cfg.shopify;
    let signature = header("X-Shopify-Hmac-Sha256");
    if !webhook::verify(s.webhook_secret.expose(), s.previous_webhook_secret.expose(), body, signature) {
        return Err(WebhookError::BadSignature);
    }
    if !header("X-Shopify-Shop-Domain").eq_ignore_ascii_case(&cfg.shop_domain()) {
        return Err(WebhookError::WrongShop);
    }
    Ok([header("X-Shopify-Event-Id"), header("X-Shopify-Webhook-Id")].into_iter().find(|k| !k.is_empty()))
}

/// A return delivery: the same checks, answers and counting as an order's.
async fn receive_return(app: &Arc<App>, topic: ReturnTopic, headers: &HeaderMap, body: &[u8]) -> Response {
    let started = std::time::Instant::now();
    let result = accept_return(app, topic, headers, body).await;
    respond(app, topic.as_str(), started, result)
}

async fn accept_return(
    app: &Arc<App>,
    topic: ReturnTopic,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted, WebhookError> {
    let event_key = verified(&app.cfg, headers, body)?;
    Ok(match returns::ingest_webhook(app, topic, event_key, body).await? {
        ReturnIngested::Duplicate => Accepted { result: "duplicate", message: "already received" },
        ReturnIngested::Ignored => Accepted { result: "ignored", message: "returns are not enabled" },
        ReturnIngested::Applied(outcome) => Accepted { result: outcome, message: "ok" },
    })
}

fn log_refusal(topic: &str, e: &WebhookError) {
    if let WebhookError::Store(cause) = e {
        tracing::error!(error = %cause, topic, "could not store a webhook; answering 503 so Shopify retries");
    }
    let (status, _, message) = e.answer();
    tracing::warn!(topic, status = status.as_u16(), reason = message, "webhook refused");
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// CONTRACT §4.1: each refusal's status and body come from the one mapping.
    #[tokio::test]
    async fn each_refusal_answers_its_own_status_and_body() {
        let cases = [
            (WebhookError::BadSignature, 401, "invalid or missing X-Shopify-Hmac-Sha256"),
            (WebhookError::WrongShop, 401, "X-Shopify-Shop-Domain is not the configured shop"),
            (WebhookError::BadRequest("body is not UTF-8"), 400, "body is not UTF-8"),
            (WebhookError::Store(StoreError::Stopped), 503, "temporarily unable to store the event"),
        ];
        for (refusal, status, message) in cases {
            let answer = refusal.into_response();
            assert_eq!(answer.status().as_u16(), status, "{message}");
            let body = axum::body::to_bytes(answer.into_body(), 1024).await.unwrap();
            assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({ "status": message }));
        }
        let taken = Accepted { result: "queued", message: "ok" }.into_response();
        assert_eq!(taken.status(), StatusCode::OK);
    }
}
