//! Endpoints the WMS calls (`/wms/*`, CONTRACT.md §4.2), in the WMS's own conventions: every call
//! carries `authUsername` / `authPassword`; failures are a 4xx/5xx with
//! `{"hasError": true, "errorMessage": "..."}`; anything answered 200 is on disk first.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::app::{now_ms, App};
use crate::flows::inventory::{check_atp, AtpIn, AtpVerdict, MAX_ATP_ROWS};

/// A failure in the WMS's error convention.
#[derive(Debug)]
pub struct WmsError {
    status: StatusCode,
    message: String,
}

impl WmsError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

impl IntoResponse for WmsError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "hasError": true, "errorMessage": self.message }))).into_response()
    }
}

impl From<crate::store::StoreError> for WmsError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store error on a WMS call; answering 503");
        WmsError::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily unable to store the request; try again")
    }
}

pub fn router(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/wms/inventory", put(put_inventory))
        .route("/wms/orders/cancel", put(put_seller_cancel))
        .route("/wms/shipments", post(post_shipment))
        .route("/wms/invoice", get(get_invoice))
        .route("/wms/shipping-label", get(get_label))
        .route("/wms/handover", post(post_handover))
        .route("/wms/manifest", post(|| unsupported("manifest")))
        .route("/wms/returns", any(|| unsupported("returns")))
        .route("/wms/returns/{*rest}", any(|| unsupported("returns")))
        .route("/wms/acknowledgement", any(|| unsupported("acknowledgement")))
        .route_layer(middleware::from_fn_with_state(app, authenticate))
}

/// Every `/wms/*` call must carry the configured inbound credentials (compared in constant time).
async fn authenticate(State(app): State<Arc<App>>, headers: HeaderMap, req: Request, next: Next) -> Response {
    let given = |name: &str| headers.get(name).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    let w = &app.cfg.wms;
    let user_ok = given("authUsername").ct_eq(w.inbound_username.as_bytes());
    let pass_ok = given("authPassword").ct_eq(w.inbound_password.expose().as_bytes());
    let configured = !w.inbound_username.is_empty() && !w.inbound_password.is_empty();
    if configured && bool::from(user_ok & pass_ok) {
        next.run(req).await
    } else {
        metrics::counter!("channeld_wms_inbound_total", "call" => "any", "result" => "unauthorized").increment(1);
        WmsError::new(StatusCode::UNAUTHORIZED, "authUsername / authPassword missing or wrong").into_response()
    }
}

async fn unsupported(what: &str) -> WmsError {
    WmsError::new(StatusCode::BAD_REQUEST, format!("{what} is not supported for Shopify"))
}

/// Reads a JSON body into `T`, answering the WMS's 400 when it does not fit.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, WmsError> {
    serde_json::from_slice(body)
        .map_err(|e| WmsError::new(StatusCode::BAD_REQUEST, format!("invalid request body: {e}")))
}

/// The order a WMS `orderCode` names (channeld sends the Shopify order id as `orderCode`).
fn known_order(app: &App, code: &str) -> Result<crate::flows::model::OrderRecord, WmsError> {
    code.trim()
        .parse::<u64>()
        .ok()
        .and_then(|id| app.store.order(id).ok().flatten())
        .ok_or_else(|| WmsError::new(StatusCode::NOT_FOUND, format!("unknown orderCode {code:?}")))
}

/// `PUT /wms/orders/cancel` (Seller Cancellation): absolute cancelled quantities, executed on
/// Shopify through the outbox; the same numbers again change nothing.
async fn put_seller_cancel(State(app): State<Arc<App>>, body: Bytes) -> Result<Json<serde_json::Value>, WmsError> {
    use crate::flows::seller_cancel::{plan, SellerCancelError, SellerCancelIn};
    let req: SellerCancelIn = parse(&body)?;
    let rec = known_order(&app, &req.order_code)?;
    let refund = app.cfg.cancellation.refund;
    let queued = app
        .store
        .record_seller_cancel(rec.id, now_ms(), |r| {
            let p = plan(r, &req, refund)?;
            r.seller_cancelled = p.cancelled;
            r.seller_cancelled_all |= p.all;
            Ok(p.task)
        })?
        .map_err(|e| match e {
            SellerCancelError::NotFound(m) => WmsError::new(StatusCode::NOT_FOUND, m),
            SellerCancelError::Invalid(m) => WmsError::new(StatusCode::BAD_REQUEST, m),
        })?;
    app.store.durable().await?;
    if queued.is_some() {
        app.outbox_wake.notify_one();
    }
    tracing::info!(order = rec.id, changed = queued.is_some(), "seller cancellation recorded");
    Ok(Json(json!({ "hasError": false })))
}

/// `POST /wms/shipments` (Pack Order): books the shipment with the configured courier,
/// idempotently on `shipmentId`.
async fn post_shipment(State(app): State<Arc<App>>, body: Bytes) -> Result<Json<serde_json::Value>, WmsError> {
    use crate::flows::shipment::{new_shipment, PackError, PackIn, ShipmentState};
    use crate::shipping::{book, Booked};
    let pack: PackIn = parse(&body)?;
    let rec = known_order(&app, &pack.order_code)?;
    let id = pack.shipment_id.ok_or_else(|| WmsError::new(StatusCode::BAD_REQUEST, "shipmentId is missing"))?;
    // One pack call at a time checks the order's other shipments and records its own (the
    // booking below runs outside it), so two calls cannot both claim the same open units.
    let recording = app.shipping.recording.lock().await;
    match app.store.shipment(id)? {
        Some(s) if s.state == ShipmentState::Booked => return Ok(Json(s.answer())),
        Some(s) if s.order_id != rec.id => {
            return Err(WmsError::new(
                StatusCode::BAD_REQUEST,
                format!("shipmentId {id} belongs to order {}", s.order_id),
            ))
        }
        Some(mut s) => {
            if let ShipmentState::Failed(_) = s.state {
                // The courier refused before; the WMS asks again (perhaps after fixing data): rebook.
                s.state = ShipmentState::Booking;
                app.store.save_shipment(&s, &[], now_ms())?;
                app.store.durable().await?;
            }
        }
        None => {
            let sh = &app.cfg.shipping;
            let provider = format!("{:?}", sh.provider).to_lowercase();
            let defaults = (sh.default_weight_grams, sh.default_dimensions_cm);
            let others = app.store.order_shipments(rec.id)?;
            let s = new_shipment(&rec, &pack, &others, &provider, defaults, now_ms()).map_err(|e| match e {
                PackError::NotFound(m) => WmsError::new(StatusCode::NOT_FOUND, m),
                PackError::Invalid(m) => WmsError::new(StatusCode::BAD_REQUEST, m),
            })?;
            app.store.save_shipment(&s, &[], now_ms())?;
            app.store.durable().await?;
        }
    }
    drop(recording);
    let wait = std::time::Duration::from_secs(app.cfg.shipping.answer_within_seconds);
    match book(&app, id, wait).await {
        Some(Booked::Done(s)) => Ok(Json(s.answer())),
        Some(Booked::Refused(m)) => Err(WmsError::new(StatusCode::BAD_REQUEST, m)),
        Some(Booked::Later(m)) => Err(WmsError::new(StatusCode::SERVICE_UNAVAILABLE, format!("try again: {m}"))),
        None => Err(WmsError::new(StatusCode::SERVICE_UNAVAILABLE, "in progress")),
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShipmentQuery {
    #[serde(default)]
    order_code: String,
    #[serde(default)]
    shipment_code: String,
    #[serde(default)]
    shipment_id: String,
}

impl ShipmentQuery {
    /// The shipment by `shipmentCode`, then `shipmentId`; it must belong to `orderCode` when given.
    fn find(&self, app: &App) -> Result<Option<crate::flows::shipment::ShipmentRecord>, WmsError> {
        for code in [&self.shipment_code, &self.shipment_id] {
            if let Some(s) = code.trim().parse::<u64>().ok().map(|id| app.store.shipment(id)).transpose()?.flatten() {
                if self.order_code.trim().is_empty() || self.order_code.trim() == s.order_id.to_string() {
                    return Ok(Some(s));
                }
            }
        }
        Ok(None)
    }
}

/// `GET /wms/invoice`: the invoice the pack call sent (Clickpost), or Shiprocket's.
async fn get_invoice(
    State(app): State<Arc<App>>,
    Query(q): Query<ShipmentQuery>,
) -> Result<Json<serde_json::Value>, WmsError> {
    let not_yet = || WmsError::new(StatusCode::NOT_FOUND, "no invoice is known for this shipment yet");
    let s = q.find(&app)?.ok_or_else(not_yet)?;
    let date = chrono::DateTime::from_timestamp_millis(s.updated_ms).map(crate::flows::fmt_time).unwrap_or_default();
    if s.provider == "shiprocket" {
        // Shiprocket makes the tax invoice: its URL, with the pack call's number and date when given.
        if s.invoice_url.is_empty() {
            return Err(not_yet());
        }
        let (code, date) =
            s.invoice.as_ref().map_or((s.shipment_id.to_string(), date), |i| (i.code.clone(), i.date.clone()));
        return Ok(Json(json!({ "invoiceCode": code, "invoiceDate": date, "invoiceUrl": s.invoice_url })));
    }
    // Clickpost makes no tax invoice: answer what the pack call sent.
    let inv = s.invoice.as_ref().ok_or_else(not_yet)?;
    Ok(Json(json!({ "invoiceCode": inv.code, "invoiceDate": inv.date, "invoiceUrl": inv.url })))
}

/// `GET /wms/shipping-label`: AWB, transporter and label URL once known.
async fn get_label(
    State(app): State<Arc<App>>,
    Query(q): Query<ShipmentQuery>,
) -> Result<Json<serde_json::Value>, WmsError> {
    let not_yet = || WmsError::new(StatusCode::NOT_FOUND, "no shipping label is available for this shipment yet");
    let s = q.find(&app)?.ok_or_else(not_yet)?;
    if s.label_url.is_empty() || s.awb.is_empty() {
        return Err(not_yet());
    }
    Ok(Json(json!({ "awbNumber": s.awb, "transporter": s.transporter, "shippingLabelUrl": s.label_url })))
}

/// `POST /wms/handover`: recorded durably; the archive job closes the orders on Shopify.
async fn post_handover(State(app): State<Arc<App>>, body: Bytes) -> Result<Json<serde_json::Value>, WmsError> {
    let req: crate::flows::handover::HandoverIn = parse(&body)?;
    let orders = crate::flows::handover::entries(&req).map_err(|m| WmsError::new(StatusCode::BAD_REQUEST, m))?;
    let now = now_ms();
    for (id, shipment) in &orders {
        app.store.record_handover(*id, req.location_code.trim(), shipment, now)?;
    }
    app.store.durable().await?;
    tracing::info!(orders = orders.len(), "handover recorded");
    Ok(Json(json!({ "hasError": false })))
}

/// `PUT /wms/inventory`: absolute quantities per SKU at one location.
async fn put_inventory(State(app): State<Arc<App>>, body: Bytes) -> Result<Json<serde_json::Value>, WmsError> {
    let req: AtpIn = parse(&body)?;
    if req.inventories.len() > MAX_ATP_ROWS {
        return Err(WmsError::new(
            StatusCode::BAD_REQUEST,
            format!("{} rows sent; at most {MAX_ATP_ROWS} per call", req.inventories.len()),
        ));
    }
    let skus = || req.inventories.iter().map(|r| r.channel_sku_code.trim().to_string());
    let Some(location) = app.cfg.locations.iter().find(|l| l.wms_location_code == req.location_code.trim()) else {
        tracing::warn!(location = %req.location_code, rows = req.inventories.len(), "inventory for an unmapped location refused");
        metrics::counter!("channeld_inventory_rows_refused_total").increment(req.inventories.len() as u64);
        return Ok(Json(json!({ "successList": [], "failureList": skus().collect::<Vec<_>>() })));
    };
    let store = &app.store;
    let verdicts = check_atp(&req.inventories, |sku| store.listing(sku).ok().flatten());
    let mut accepted = Vec::new();
    let (mut success, mut failure) = (Vec::new(), Vec::new());
    for v in verdicts {
        match v {
            AtpVerdict::Accept { sku, item_id, quantity } => {
                success.push(sku.clone());
                accepted.push((sku, item_id, quantity));
            }
            AtpVerdict::Reject { sku, reason } => {
                tracing::warn!(%sku, location = %location.wms_location_code, %reason, "inventory row refused");
                failure.push(sku);
            }
        }
    }
    store.set_desired(location.shopify_location_id, &location.wms_location_code, &accepted, now_ms())?;
    store.durable().await?;
    metrics::counter!("channeld_inventory_rows_accepted_total").increment(success.len() as u64);
    metrics::counter!("channeld_inventory_rows_refused_total").increment(failure.len() as u64);
    Ok(Json(json!({ "successList": success, "failureList": failure })))
}
