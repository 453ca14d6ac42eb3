//! The calls the WMS makes (`/wms/*`, CONTRACT.md §4.2), as operations: each checks what needs no
//! state, journals the request, and applies it in journal order once it is on stable storage.
//! Because one thread applies every record in turn, two calls about one order never decide from
//! the same state (two pack calls cannot both claim the same units).

use std::sync::Arc;

use serde_json::Value;

use crate::app::{now_ms, App};
use crate::flows::handover::{entries, HandoverIn};
use crate::flows::inventory::{check_atp, AtpIn, AtpVerdict, MAX_ATP_ROWS};
use crate::flows::model::OrderRecord;
use crate::flows::seller_cancel::{plan, SellerCancelError, SellerCancelIn};
use crate::flows::shipment::{new_shipment, Booked, PackError, PackIn, ShipmentQuery, ShipmentRecord, ShipmentState};
use crate::store::{Inbound, StoreError, WmsCall};

use super::ServiceError;

/// What `PUT /wms/inventory` answers: the SKUs accepted and refused.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InventoryOutcome {
    pub success: Vec<String>,
    pub failure: Vec<String>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ServiceError> {
    serde_json::from_str(body).map_err(|e| ServiceError::Invalid(format!("invalid request body: {e}")))
}

fn body_text(body: &[u8]) -> Result<&str, ServiceError> {
    std::str::from_utf8(body).map_err(|_| ServiceError::Invalid("the request body is not UTF-8".into()))
}

/// Journals a WMS call and applies it with `apply` once it is durable.
async fn submit<T: Send + 'static>(
    app: &Arc<App>,
    call: WmsCall,
    body: &str,
    apply: impl FnOnce(&App, i64) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ServiceError> {
    let received_ms = now_ms();
    let event = Inbound::Wms { call, received_ms, body: body.to_string() };
    let applier = app.clone();
    Ok(app.store.submit(event, move |_, _, _| apply(&applier, received_ms)).await?)
}

/// A WMS record applied again by a replay (its answer went out before the crash).
pub(super) fn apply_again(app: &App, call: WmsCall, body: &str, received_ms: i64) -> Result<(), StoreError> {
    let refused = |e: ServiceError| {
        tracing::debug!(error = %e, "a replayed WMS call is refused as it was then");
        Ok(())
    };
    match call {
        WmsCall::Inventory => match checked_inventory(app, body) {
            Ok(Some((req, location))) => apply_inventory(app, &req, location, received_ms).map(drop),
            Ok(None) => Ok(()),
            Err(e) => refused(e),
        },
        WmsCall::SellerCancel => match parse::<SellerCancelIn>(body) {
            Ok(req) => apply_seller_cancel(app, &req, received_ms).map(drop),
            Err(e) => refused(e),
        },
        WmsCall::Pack => match parse::<PackIn>(body) {
            Ok(req) => apply_pack(app, &req, received_ms).map(drop),
            Err(e) => refused(e),
        },
        // Applied by `services::returns` (dispatched before this).
        WmsCall::ReturnAck => Ok(()),
        WmsCall::Handover => match parse::<HandoverIn>(body).and_then(|r| handover_entries(&r).map(|e| (r, e))) {
            Ok((req, orders)) => apply_handover(app, &req, &orders, received_ms),
            Err(e) => refused(e),
        },
    }
}

/// The order a WMS `orderCode` names (channeld sends the Shopify order id as `orderCode`).
fn known_order(app: &App, code: &str) -> Result<Result<OrderRecord, ServiceError>, StoreError> {
    let unknown = || ServiceError::NotFound(format!("unknown orderCode {code:?}"));
    let Ok(id) = code.trim().parse::<u64>() else { return Ok(Err(unknown())) };
    Ok(app.store.order(id)?.ok_or_else(unknown))
}

// --- PUT /wms/inventory -------------------------------------------------------------------------

/// A mapped location: (Shopify location id, WMS location code).
type MappedLocation = (u64, String);

/// The request, when it is well-formed and for a mapped location (`None`: unmapped, every row
/// refused, nothing to store).
fn checked_inventory(app: &App, body: &str) -> Result<Option<(AtpIn, MappedLocation)>, ServiceError> {
    let req: AtpIn = parse(body)?;
    if req.inventories.len() > MAX_ATP_ROWS {
        return Err(ServiceError::Invalid(format!(
            "{} rows sent; at most {MAX_ATP_ROWS} per call",
            req.inventories.len()
        )));
    }
    let location = app.cfg.locations.iter().find(|l| l.wms_location_code == req.location_code.trim());
    Ok(location.map(|l| (l.shopify_location_id, l.wms_location_code.clone())).map(|l| (req, l)))
}

/// `PUT /wms/inventory`: absolute quantities per SKU at one location.
pub async fn inventory(app: &Arc<App>, body: &[u8]) -> Result<InventoryOutcome, ServiceError> {
    let body = body_text(body)?;
    let Some((req, location)) = checked_inventory(app, body)? else {
        let req: AtpIn = parse(body)?;
        tracing::warn!(location = %req.location_code, rows = req.inventories.len(), "inventory for an unmapped location refused");
        metrics::counter!("channeld_inventory_rows_refused_total").increment(req.inventories.len() as u64);
        let failure = req.inventories.iter().map(|r| r.channel_sku_code.trim().to_string()).collect();
        return Ok(InventoryOutcome { success: Vec::new(), failure });
    };
    let outcome =
        submit(app, WmsCall::Inventory, body, move |app, at| apply_inventory(app, &req, location, at)).await?;
    metrics::counter!("channeld_inventory_rows_accepted_total").increment(outcome.success.len() as u64);
    metrics::counter!("channeld_inventory_rows_refused_total").increment(outcome.failure.len() as u64);
    Ok(outcome)
}

fn apply_inventory(
    app: &App,
    req: &AtpIn,
    (location_id, location_code): MappedLocation,
    received_ms: i64,
) -> Result<InventoryOutcome, StoreError> {
    let store = &app.store;
    let mut listings = std::collections::HashMap::new();
    for row in &req.inventories {
        let sku = row.channel_sku_code.trim();
        listings.insert(sku.to_string(), store.listing(sku)?);
    }
    let mut outcome = InventoryOutcome::default();
    let mut accepted = Vec::new();
    for verdict in check_atp(&req.inventories, |sku| listings.get(sku).copied().flatten()) {
        match verdict {
            AtpVerdict::Accept { sku, item_id, quantity } => {
                outcome.success.push(sku.clone());
                accepted.push((sku, item_id, quantity));
            }
            AtpVerdict::Reject { sku, reason } => {
                tracing::warn!(%sku, location = %location_code, %reason, "inventory row refused");
                outcome.failure.push(sku);
            }
        }
    }
    store.set_desired(location_id, &location_code, &accepted, received_ms)?;
    Ok(outcome)
}

// --- PUT /wms/orders/cancel ---------------------------------------------------------------------

/// `PUT /wms/orders/cancel` (Seller Cancellation): absolute cancelled quantities, executed on
/// Shopify through the outbox; the same numbers again change nothing. Returns whether anything
/// was queued.
pub async fn seller_cancel(app: &Arc<App>, body: &[u8]) -> Result<bool, ServiceError> {
    let body = body_text(body)?;
    let req: SellerCancelIn = parse(body)?;
    let order = req.order_code.clone();
    let queued = submit(app, WmsCall::SellerCancel, body, move |app, at| apply_seller_cancel(app, &req, at)).await??;
    if queued {
        app.outbox_wake.notify_one();
    }
    tracing::info!(order = %order, changed = queued, "seller cancellation recorded");
    Ok(queued)
}

fn apply_seller_cancel(
    app: &App,
    req: &SellerCancelIn,
    received_ms: i64,
) -> Result<Result<bool, ServiceError>, StoreError> {
    let rec = match known_order(app, &req.order_code)? {
        Ok(rec) => rec,
        Err(e) => return Ok(Err(e)),
    };
    let refund = app.cfg.cancellation.refund;
    let planned = app.store.record_seller_cancel(rec.id, received_ms, |r| {
        let p = plan(r, req, refund)?;
        r.seller_cancelled = p.cancelled;
        r.seller_cancelled_all |= p.all;
        Ok(p.task)
    })?;
    Ok(planned.map(|task| task.is_some()).map_err(|e| match e {
        SellerCancelError::NotFound(m) => ServiceError::NotFound(m),
        SellerCancelError::Invalid(m) => ServiceError::Invalid(m),
    }))
}

// --- POST /wms/shipments ------------------------------------------------------------------------

/// `POST /wms/shipments` (Pack Order): records the shipment durably, then books it with the
/// configured courier (idempotently on `shipmentId`), waiting at most
/// `shipping.answer_within_seconds`. Returns the shipment as booked.
pub async fn pack(app: &Arc<App>, body: &[u8]) -> Result<ShipmentRecord, ServiceError> {
    let body = body_text(body)?;
    let req: PackIn = parse(body)?;
    let id = req.shipment_id.ok_or_else(|| ServiceError::Invalid("shipmentId is missing".into()))?;
    let recorded = submit(app, WmsCall::Pack, body, move |app, at| apply_pack(app, &req, at)).await??;
    if recorded.state == ShipmentState::Booked {
        return Ok(recorded);
    }
    let wait = std::time::Duration::from_secs(app.cfg.shipping.answer_within_seconds);
    match super::shipments::book(app, recorded.order_id, id, wait).await {
        Some(Booked::Done(s)) => Ok(*s),
        Some(Booked::Refused(m)) => Err(ServiceError::Invalid(m)),
        Some(Booked::Later(_)) => Err(ServiceError::Later("the courier could not book it now; try again".into())),
        None => Err(ServiceError::Later("in progress".into())),
    }
}

/// Records a pack call: a new shipment (state `Booking`) taking the order's open units, or the
/// order's shipment already recorded under that `shipmentId` (a refused one is marked `Booking`
/// again, so a crash resumes its rebooking). A `shipmentId` another order uses is a conflict:
/// that order's shipment is never handed out.
fn apply_pack(app: &App, pack: &PackIn, received_ms: i64) -> Result<Result<ShipmentRecord, ServiceError>, StoreError> {
    let rec = match known_order(app, &pack.order_code)? {
        Ok(rec) => rec,
        Err(e) => return Ok(Err(e)),
    };
    let Some(id) = pack.shipment_id else { return Ok(Err(ServiceError::Invalid("shipmentId is missing".into()))) };
    let store = &app.store;
    if let Some(other) = store.shipment_orders(id)?.into_iter().find(|o| *o != rec.id) {
        return Ok(Err(ServiceError::Conflict(format!(
            "shipmentId {id} is already used by order {other}; each shipment needs its own shipmentId"
        ))));
    }
    match store.shipment(rec.id, id)? {
        Some(mut s) => {
            if let ShipmentState::Failed(_) = s.state {
                // The courier refused before; the WMS asks again (perhaps after fixing data): rebook.
                s.state = ShipmentState::Booking;
                store.save_shipment(&s, &[], received_ms)?;
            }
            Ok(Ok(s))
        }
        None => {
            let sh = &app.cfg.shipping;
            let provider = format!("{:?}", sh.provider).to_lowercase();
            let defaults = (sh.default_weight_grams, sh.default_dimensions_cm);
            let others = store.order_shipments(rec.id)?;
            match new_shipment(&rec, pack, &others, &provider, defaults, received_ms) {
                Ok(s) => {
                    store.save_shipment(&s, &[], received_ms)?;
                    Ok(Ok(s))
                }
                Err(PackError::NotFound(m)) => Ok(Err(ServiceError::NotFound(m))),
                Err(PackError::Invalid(m)) => Ok(Err(ServiceError::Invalid(m))),
            }
        }
    }
}

// --- POST /wms/handover -------------------------------------------------------------------------

fn handover_entries(req: &HandoverIn) -> Result<Vec<(u64, String)>, ServiceError> {
    entries(req).map_err(ServiceError::Invalid)
}

/// `POST /wms/handover`: recorded durably; the archive job closes the orders on Shopify. Returns
/// how many orders it named.
pub async fn handover(app: &Arc<App>, body: &[u8]) -> Result<usize, ServiceError> {
    let body = body_text(body)?;
    let req: HandoverIn = parse(body)?;
    let orders = handover_entries(&req)?;
    let n = orders.len();
    submit(app, WmsCall::Handover, body, move |app, at| apply_handover(app, &req, &orders, at)).await?;
    tracing::info!(orders = n, "handover recorded");
    Ok(n)
}

fn apply_handover(app: &App, req: &HandoverIn, orders: &[(u64, String)], received_ms: i64) -> Result<(), StoreError> {
    for (id, shipment) in orders {
        app.store.record_handover(*id, req.location_code.trim(), shipment, received_ms)?;
    }
    Ok(())
}

// --- lookups ------------------------------------------------------------------------------------

/// `GET /wms/invoice`: the invoice the pack call sent (Clickpost), or Shiprocket's; not found
/// while none is known.
pub async fn invoice(app: &App, query: &ShipmentQuery) -> Result<Value, ServiceError> {
    let not_yet = || ServiceError::NotFound("no invoice is known for this shipment yet".into());
    find_shipment(app, query).await?.ok_or_else(not_yet)?.invoice_answer().ok_or_else(not_yet)
}

/// `GET /wms/shipping-label`: AWB, transporter and label URL; not found while any is missing.
pub async fn label(app: &App, query: &ShipmentQuery) -> Result<Value, ServiceError> {
    let not_yet = || ServiceError::NotFound("no shipping label is available for this shipment yet".into());
    find_shipment(app, query).await?.ok_or_else(not_yet)?.label_answer().ok_or_else(not_yet)
}

/// The shipment a Get Invoice / Get Shipping Label call names: the order's shipment under
/// `shipmentCode`, then `shipmentId`. Without an `orderCode`, the one order using that id.
async fn find_shipment(app: &App, query: &ShipmentQuery) -> Result<Option<ShipmentRecord>, ServiceError> {
    let order = query.order().map_err(ServiceError::NotFound)?;
    let ids = query.shipment_ids();
    let found = app
        .store
        .call(move |s| {
            for id in ids {
                let orders = match order {
                    Some(order) => vec![order],
                    None => s.shipment_orders(id)?,
                };
                if let [order] = orders[..] {
                    if let Some(sh) = s.shipment(order, id)? {
                        return Ok(Some(sh));
                    }
                }
            }
            Ok(None)
        })
        .await?;
    Ok(found)
}
