//! The HTTP surface: Shopify webhooks, the WMS's calls, health and metrics. Handlers are thin: they read and
//! check the request, call one service on [`App`], and map the result to the contract's status.
//! Every `/wms/*` answer, the router's own refusals included, is in the WMS's error convention
//! ([`wms::wms_format`], the outermost layer).

mod health;
mod webhooks;
pub mod wms;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

use crate::app::App;
use crate::flows::intake::Topic;

pub fn router(app: Arc<App>) -> Router {
    let limit = app.cfg.server.max_body_bytes;
    Router::new()
        .route(Topic::Create.path(), post(webhooks::orders_create))
        .route(Topic::Updated.path(), post(webhooks::orders_updated))
        .route(Topic::Cancelled.path(), post(webhooks::orders_cancelled))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(wms::router(app.clone()))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(wms::wms_format))
        .with_state(app)
}
