//! The HTTP surface: Shopify webhooks, the WMS's calls, the couriers' status webhooks, health and
//! metrics. Handlers are thin: they read and check the request, call one service on [`App`], and
//! map the result to the contract's status.
//!
//! What every request goes through, outermost first (each a tower layer):
//! - `/wms/*` answers are put into the WMS's error convention ([`wms::wms_format`]);
//! - a request timeout (`server.request_timeout_seconds`, 408): a slow upload or a stuck handler
//!   cannot hold a connection, a request slot and its body's memory for ever;
//! - `/wms/*` only: authentication (refusals logged per address and slowed down, see `refusals`);
//! - admission (`limits`): a request slot and room for its body, else 503 at once; not `/healthz`;
//! - the body limit (`server.max_body_bytes`, 413).
//!
//! Connections themselves (idle and header-read timeouts, how many, the shutdown deadline) are
//! [`serve`]'s.

mod health;
mod limits;
pub(crate) mod refusals;
pub mod serve;
mod tracking;
mod webhooks;
pub mod wms;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tower_http::timeout::TimeoutLayer;

use crate::app::App;
use crate::flows::intake::Topic;
use crate::flows::returns::ReturnTopic;

pub use serve::{serve, ConnLimits};

pub fn router(app: Arc<App>) -> Router {
    let s = &app.cfg.server;
    let admission = limits::Admission::new(s);
    let timeout = Duration::from_secs(s.request_timeout_seconds);
    let admitted = Router::new()
        .route(Topic::Create.path(), post(webhooks::orders_create))
        .route(Topic::Updated.path(), post(webhooks::orders_updated))
        .route(Topic::Cancelled.path(), post(webhooks::orders_cancelled))
        .route(ReturnTopic::Approve.path(), post(webhooks::return_approve))
        .route(ReturnTopic::Update.path(), post(webhooks::return_update))
        .route(ReturnTopic::Cancel.path(), post(webhooks::return_cancel))
        .route(ReturnTopic::Delivery.path(), post(webhooks::return_delivery))
        .route("/tracking/clickpost", post(tracking::clickpost))
        .route("/tracking/rocket", post(tracking::rocket))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route_layer(middleware::from_fn_with_state(admission.clone(), limits::admit));
    Router::new()
        .merge(admitted)
        .merge(wms::router(app.clone(), admission))
        .route("/healthz", get(health::healthz))
        .layer(DefaultBodyLimit::max(s.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(middleware::from_fn(wms::wms_format))
        .with_state(app)
}
