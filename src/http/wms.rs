//! Endpoints the WMS calls (`/wms/*`, CONTRACT.md §4.2), in the WMS's own conventions: every call
//! carries `authUsername` / `authPassword`; failures are a 4xx/5xx with
//! `{"hasError": true, "errorMessage": "..."}`; anything answered 200 is on stable storage first.
//! Each handler reads the request, calls one operation of `services::wms`, and answers.
//!
//! Every answer under `/wms` is in that convention, including those no handler wrote — axum's
//! own rejections (a query string it cannot read, a body over the limit, a wrong method, an
//! unknown path) and the server's limits (timeout, busy): [`wms_format`] rewrites them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::limits::{self, Admission};
use super::refusals::Refusals;
use crate::app::App;
use crate::flows::shipment::ShipmentQuery;
use crate::services::{wms, ServiceError};

/// A failure in the WMS's error convention.
///
/// What a call asked for and could not have (unknown order, bad body, conflict, not now, a store
/// that cannot write) comes from a service as a [`ServiceError`] and gets its status in one place,
/// `From<ServiceError>` below. Only the surface itself answers otherwise, before or beside any
/// service: credentials missing or wrong (401, checked before a request slot is taken or the body
/// read), an endpoint that does not exist or that channeld does not serve for Shopify (404, 400,
/// decided by the route), and axum's and the limits' own refusals rewritten by [`wms_format`].
#[derive(Debug)]
pub struct WmsError {
    status: StatusCode,
    message: String,
}

impl WmsError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

/// Marks an answer already in the WMS's error convention (for [`wms_format`]).
#[derive(Debug, Clone, Copy)]
struct InWmsFormat;

impl IntoResponse for WmsError {
    fn into_response(self) -> Response {
        let mut answer = (self.status, Json(json!({ "hasError": true, "errorMessage": self.message }))).into_response();
        answer.extensions_mut().insert(InWmsFormat);
        answer
    }
}

/// The one mapping from a service's refusal to the WMS's status and message. A store that cannot
/// take the request is a 503 whose message says only that (the cause goes to the log).
impl From<ServiceError> for WmsError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(m) => WmsError::new(StatusCode::NOT_FOUND, m),
            ServiceError::Invalid(m) => WmsError::new(StatusCode::BAD_REQUEST, m),
            ServiceError::Conflict(m) => WmsError::new(StatusCode::CONFLICT, m),
            ServiceError::Later(m) => WmsError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            ServiceError::Store(e) => {
                tracing::error!(error = %e, "store error on a WMS call; answering 503");
                WmsError::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily unable to store the request; try again")
            }
        }
    }
}

/// The `/wms/*` routes: authenticated first (a refused call takes no request slot, and its body is
/// never read), then admitted (see `limits`).
pub fn router(app: Arc<App>, admission: Arc<Admission>) -> Router<Arc<App>> {
    let w = &app.cfg.wms;
    let refusals = Refusals::new(
        Duration::from_millis(w.inbound_failure_delay_ms),
        Duration::from_millis(w.inbound_failure_max_delay_ms),
    );
    let guard = Arc::new(Guard { app: app.clone(), refusals });
    Router::new()
        .route("/wms/inventory", put(put_inventory))
        .route("/wms/orders/cancel", put(put_seller_cancel))
        .route("/wms/shipments", post(post_shipment))
        .route("/wms/invoice", get(get_invoice))
        .route("/wms/shipping-label", get(get_label))
        .route("/wms/handover", post(post_handover))
        .route("/wms/manifest", post(|| unsupported("manifest is")))
        .route("/wms/returns/acknowledgement", put(put_return_ack).post(put_return_ack))
        .route("/wms/returns", any(|| unsupported("return changes from the WMS are")))
        .route("/wms/returns/{*rest}", any(|| unsupported("return changes from the WMS are")))
        .route("/wms/acknowledgement", any(|| unsupported("acknowledgement is")))
        .route("/wms/{*rest}", any(no_such_endpoint))
        .route_layer(middleware::from_fn_with_state(admission, limits::admit))
        .route_layer(middleware::from_fn_with_state(guard, authenticate))
}

/// What authentication needs: the credentials, and the count of recent failures per address.
struct Guard {
    app: Arc<App>,
    refusals: Refusals,
}

impl Guard {
    /// Whether the call carries the configured inbound credentials (compared in constant time).
    fn admits(&self, headers: &HeaderMap) -> bool {
        let given = |name: &str| headers.get(name).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
        let w = &self.app.cfg.wms;
        let user_ok = given("authUsername").ct_eq(w.inbound_username.as_bytes());
        let pass_ok = given("authPassword").ct_eq(w.inbound_password.expose().as_bytes());
        let configured = !w.inbound_username.is_empty() && !w.inbound_password.is_empty();
        configured && bool::from(user_ok & pass_ok)
    }
}

/// Every `/wms/*` call must carry the configured inbound credentials. A refusal is logged with the
/// caller's address (rate limited) and, when that address failed recently, held back a while.
async fn authenticate(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if guard.admits(req.headers()) {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let verdict = guard.refusals.refused(peer, Instant::now());
    if let Some(refused) = verdict.log {
        let peer = peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        tracing::warn!(
            %peer,
            path = req.uri().path(),
            refused,
            recent_failures = verdict.failures,
            delay_ms = verdict.delay.as_millis() as u64,
            "WMS call refused: authUsername / authPassword missing or wrong (at most one line per address a minute; \
             refused = how many since the last line)"
        );
    }
    metrics::counter!("channeld_wms_inbound_total", "call" => "any", "result" => "unauthorized").increment(1);
    if !verdict.delay.is_zero() {
        metrics::counter!("channeld_wms_auth_delayed_total").increment(1);
        tokio::time::sleep(verdict.delay).await;
    }
    // The surface's own answer: no service has been reached (see [`WmsError`]).
    WmsError::new(StatusCode::UNAUTHORIZED, "authUsername / authPassword missing or wrong").into_response()
}

/// A path under `/wms` the contract does not name: decided by the router, no service involved.
async fn no_such_endpoint(req: Request) -> WmsError {
    WmsError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {}", req.uri().path()))
}

/// Puts every error answered under `/wms` that is not yet in the WMS's convention into it, with
/// its status (and its `Allow` or `Retry-After` header) kept: axum's rejections and the limits'
/// refusals are plain text or empty.
pub async fn wms_format(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path == "/wms" || path.starts_with("/wms/")) {
        return next.run(req).await;
    }
    let (method, path) = (req.method().clone(), path.to_string());
    let answer = next.run(req).await;
    let status = answer.status();
    if !(status.is_client_error() || status.is_server_error()) || answer.extensions().get::<InWmsFormat>().is_some() {
        return answer;
    }
    let kept: Vec<_> = [header::ALLOW, header::RETRY_AFTER]
        .into_iter()
        .filter_map(|h| answer.headers().get(&h).cloned().map(|v| (h, v)))
        .collect();
    // These bodies are short texts written by axum or by our own layers.
    let text = axum::body::to_bytes(answer.into_body(), 16 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let mut rewritten = WmsError::new(status, describe(status, &method, &path, text)).into_response();
    rewritten.headers_mut().extend(kept);
    rewritten
}

/// The message of an error that came without one.
fn describe(status: StatusCode, method: &Method, path: &str, text: String) -> String {
    match status {
        StatusCode::NOT_FOUND => format!("no such endpoint: {path}"),
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
        StatusCode::REQUEST_TIMEOUT => "the request was not complete in time (server.request_timeout_seconds)".into(),
        _ if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    }
}

/// Endpoints of the WMS's contract that have no meaning for a Shopify channel: decided by the route,
/// whatever the request, so no service is asked. `what` names it with its verb (`manifest is`).
async fn unsupported(what: &str) -> WmsError {
    WmsError::new(StatusCode::BAD_REQUEST, format!("{what} not supported for Shopify"))
}

type Answer = Result<Json<Value>, WmsError>;

/// `PUT /wms/orders/cancel` (Seller Cancellation).
async fn put_seller_cancel(State(app): State<Arc<App>>, body: Bytes) -> Answer {
    wms::seller_cancel(&app, &body).await?;
    Ok(Json(json!({ "hasError": false })))
}

/// `POST /wms/shipments` (Pack Order).
async fn post_shipment(State(app): State<Arc<App>>, body: Bytes) -> Answer {
    Ok(Json(wms::pack(&app, &body).await?.answer()))
}

/// `GET /wms/invoice`: the invoice the pack call sent (Clickpost), or Shiprocket's.
async fn get_invoice(State(app): State<Arc<App>>, Query(q): Query<ShipmentQuery>) -> Answer {
    Ok(Json(wms::invoice(&app, &q).await?))
}

/// `GET /wms/shipping-label`: AWB, transporter and label URL once known.
async fn get_label(State(app): State<Arc<App>>, Query(q): Query<ShipmentQuery>) -> Answer {
    Ok(Json(wms::label(&app, &q).await?))
}

/// `PUT /wms/returns/acknowledgement` (Return Order Acknowledgement: QC results), POST accepted.
async fn put_return_ack(State(app): State<Arc<App>>, body: Bytes) -> Answer {
    crate::services::returns::acknowledge(&app, &body).await?;
    Ok(Json(json!({ "hasError": false })))
}

/// `POST /wms/handover`: recorded durably; the archive job closes the orders on Shopify.
async fn post_handover(State(app): State<Arc<App>>, body: Bytes) -> Answer {
    wms::handover(&app, &body).await?;
    Ok(Json(json!({ "hasError": false })))
}

/// `PUT /wms/inventory`: absolute quantities per SKU at one location.
async fn put_inventory(State(app): State<Arc<App>>, body: Bytes) -> Answer {
    let outcome = wms::inventory(&app, &body).await?;
    Ok(Json(json!({ "successList": outcome.success, "failureList": outcome.failure })))
}
