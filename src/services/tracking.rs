//! Tracking (CONTRACT.md §10): a courier's status webhook for a shipment channeld booked is
//! journaled and synced, then applied by [`apply`] (the same function a replay runs): the shipment's
//! tracking record, the Shopify fulfillment events it queues, its order's NDR/RTO flags, and an RTO
//! return order for the WMS change together. What an event does is decided in `flows::tracking`.
//!
//! A waybill channeld did not book is answered 200 and counted, and nothing of it is stored.

use std::sync::Arc;

use crate::app::{now_ms, App};
use crate::flows::model::Task;
use crate::flows::tracking::{self, on_event, rto, Courier, CourierEvent, Outcome, TrackingRecord, TrackingRules};
use crate::store::{Inbound, StoreError, TrackingWrite};

use super::orders::IngestError;

/// What became of a courier's webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// The shipment's record took it (applied, duplicate, stale or ignored).
    Recorded(Outcome),
    /// No shipment channeld booked with this courier has the waybill: not stored.
    UnknownAwb,
}

impl Tracked {
    /// `channeld_tracking_events_total`'s `result`.
    pub fn label(self) -> &'static str {
        match self {
            Tracked::Recorded(o) => o.as_str(),
            Tracked::UnknownAwb => "unknown_awb",
        }
    }
}

/// Counts one webhook of `courier` by its result (`refused` for the refusals of the HTTP layer).
pub fn count(courier: Courier, result: &'static str) {
    metrics::counter!("channeld_tracking_events_total", "courier" => courier.as_str(), "result" => result).increment(1);
}

/// Records a courier's verified webhook (§10.2) and returns once it is durable and applied.
pub async fn ingest(app: &Arc<App>, courier: Courier, body: &[u8]) -> Result<Tracked, IngestError> {
    let event = courier.read(body).map_err(IngestError::BadRequest)?;
    let text = std::str::from_utf8(body).map_err(|_| IngestError::BadRequest("body is not UTF-8"))?;
    let awb = event.waybill.clone();
    if app.store.call(move |s| s.shipment_by_awb(courier.as_str(), &awb)).await?.is_none() {
        tracing::info!(courier = courier.as_str(), awb = %event.waybill, "a status for a waybill channeld did not book: not stored");
        count(courier, Tracked::UnknownAwb.label());
        return Ok(Tracked::UnknownAwb);
    }
    let received_ms = now_ms();
    let record = Inbound::Tracking { courier: courier.as_str().into(), received_ms, body: text.to_string() };
    let applier = app.clone();
    let (outcome, queued) =
        app.store.submit(record, move |_, seq, _| apply(&applier, seq, &event, received_ms)).await?;
    count(courier, outcome.label());
    if queued {
        app.outbox_wake.notify_one();
    }
    Ok(outcome)
}

/// A journaled courier webhook applied again by a replay (journal record `seq`).
pub(super) fn apply_again(app: &App, seq: u64, courier: &str, body: &str, received_ms: i64) -> Result<(), StoreError> {
    let Some(event) = Courier::parse(courier).and_then(|c| c.read(body.as_bytes()).ok()) else { return Ok(()) };
    apply(app, seq, &event, received_ms).map(drop)
}

/// What `[tracking]` allows for a shipment of this courier.
fn rules(app: &App, courier: Courier) -> TrackingRules {
    let t = &app.cfg.tracking;
    TrackingRules {
        // Only Clickpost shipments are fulfilled on Shopify by channeld (Shiprocket's own channel
        // fulfils the others).
        shopify_events: t.shopify_events && courier == Courier::Clickpost,
        rto_to_wms: t.rto_to_wms && app.cfg.returns.enabled,
    }
}

/// Applies a courier event (journal record `seq`) to its shipment, live and again in a replay: a
/// record the shipment has taken already (its record names a newer or the same journal record)
/// changes nothing. Returns the outcome, and whether outbound calls were queued.
fn apply(app: &App, seq: u64, event: &CourierEvent, received_ms: i64) -> Result<(Tracked, bool), StoreError> {
    let courier = event.courier;
    let Some((order_id, shipment_id)) = app.store.shipment_by_awb(courier.as_str(), &event.waybill)? else {
        return Ok((Tracked::UnknownAwb, false));
    };
    let Some(shipment) = app.store.shipment(order_id, shipment_id)? else { return Ok((Tracked::UnknownAwb, false)) };
    let rules = rules(app, courier);
    let d = app.store.change_tracking(order_id, shipment_id, received_ms, |stored| {
        let rec = stored.unwrap_or_else(|| {
            TrackingRecord::new(order_id, shipment_id, courier.as_str(), &shipment.awb, received_ms)
        });
        if rec.journal_seq >= seq {
            return TrackingWrite::record(None, None);
        }
        let mut d = on_event(rec, event, &rules, received_ms);
        d.record.journal_seq = seq;
        let tasks = d.new_steps.iter().map(|&step| Task::ShopifyFulfillmentEvent { shipment_id, step }).collect();
        let happened = event.latest.as_ref().unwrap_or(&event.scan).at_ms.unwrap_or(received_ms);
        let rto_return = d.rto_to_wms.then(|| rto::rto_return(&shipment, happened, received_ms));
        TrackingWrite {
            record: Some(d.record.clone()),
            tasks,
            order_flags: d.order_flags.clone(),
            rto_return,
            answer: Some(d),
        }
    })?;
    let Some(d) = d else {
        // Applied before this replay: what it did then stands.
        return Ok((Tracked::Recorded(Outcome::Duplicate), false));
    };
    report(&d, event, order_id, shipment_id);
    Ok((Tracked::Recorded(d.outcome), !d.new_steps.is_empty() || d.rto_to_wms))
}

fn report(d: &tracking::Decision, event: &CourierEvent, order_id: u64, shipment_id: u64) {
    let rec = &d.record;
    if let Some(reason) = d.ndr {
        // The label is from Clickpost's fixed list of NDR reasons (never the courier's free text,
        // which may name people).
        metrics::counter!("channeld_tracking_ndr_total", "reason" => reason).increment(1);
        tracing::info!(
            order = order_id,
            shipment = shipment_id,
            attempt = rec.ndr_attempts,
            reason,
            "failed delivery (NDR)"
        );
    }
    if d.ndr_repeated {
        tracing::warn!(
            order = order_id,
            shipment = shipment_id,
            attempts = rec.ndr_attempts,
            reason = d.ndr.unwrap_or_default(),
            "delivery failed {} times without a later forward step (ndr-repeated): the customer may need a call \
             (`channeld shipments show {shipment_id}`)",
            rec.ndr_attempts
        );
    }
    if d.rto {
        metrics::counter!("channeld_tracking_rto_total").increment(1);
        tracing::warn!(order = order_id, shipment = shipment_id, awb = %rec.awb, "shipment returning to origin (RTO)");
    }
    if d.rto_to_wms {
        tracing::info!(order = order_id, shipment = shipment_id, code = %rto::code(shipment_id), "RTO return order queued for the WMS");
    }
    tracing::info!(
        order = order_id,
        shipment = shipment_id,
        courier = event.courier.as_str(),
        code = event.scan.code,
        status = rec.status.as_str(),
        outcome = d.outcome.as_str(),
        "courier status recorded"
    );
}
