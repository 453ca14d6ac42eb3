//! Runs one outbox entry and records what came of it: done, dropped (nothing to send any
//! more), retried later with backoff, or dead-lettered.

use std::time::Duration;

use crate::app::{now_ms, App};
use crate::flows::intake::{cancel_body, create_body};
use crate::flows::model::{EntryState, OrderRecord, OrderStatus, OutboxEntry, Placement, Task, CREATION_UNCONFIRMED};
use crate::flows::retry::backoff;
use crate::flows::routing::{decide, RoutingDecision};
use crate::remote::CallError;
use crate::store::JobStatus;

use super::step::Step;

/// How long Shopify work waits after Shopify refused our credentials (not counted as an attempt).
/// (WMS work pauses for `wms.auth_pause_seconds` instead.)
const AUTH_PAUSE: Duration = Duration::from_secs(60);

/// Runs one entry; `false` when its outcome could not be recorded.
pub(super) async fn run_entry(app: &std::sync::Arc<App>, entry: OutboxEntry) -> bool {
    let step = match &entry.task {
        Task::WmsCreate => create(app, &entry).await,
        Task::WmsUpdate { body } => update(app, &entry, body).await,
        Task::WmsCancel => cancel(app, &entry).await,
        Task::ShopifyCancelOrder => done(app.shopify.cancel_order(entry.order_id, &app.cfg.cancellation).await),
        Task::ShopifyEditLines { lines, refund } => edit_lines(app, entry.order_id, lines, refund).await,
        Task::ShopifyRefund { transactions } => refund(app, entry.order_id, entry.seq, transactions).await,
        Task::ShopifyFulfill { shipment_id } => fulfill(app, entry.order_id, *shipment_id).await,
        Task::WmsReturn { return_id } => super::returns::send(app, *return_id).await,
        Task::ShopifyProcessReturn { return_id, ack } => super::returns::process(app, *return_id, *ack).await,
        Task::ShopifyCloseReturn { return_id } => super::returns::close(app, *return_id).await,
        Task::ShopifyFulfillmentEvent { shipment_id, step } => {
            super::tracking::fulfillment_event(app, entry.order_id, *shipment_id, *step).await
        }
    };
    let is_wms = entry.task.kind().starts_with("wms_");
    let reached_wms = is_wms && matches!(step, Step::Done(_) | Step::DoneThen(_) | Step::Refused { .. });
    if reached_wms {
        clear_wms_alert(app).await;
    }
    if let Err(e) = record(app, entry, step).await {
        // The entry stays as it was and runs again (the worker backs off first): at-least-once,
        // made safe by idempotent handling.
        tracing::error!(error = %e, "outbox: could not record a call's outcome");
        return false;
    }
    true
}

/// The WMS refused channeld's credentials: `doctor` names it until a WMS call goes through.
async fn raise_wms_alert(app: &App, message: &str) {
    if app.wms_auth_alert.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    let alert = JobStatus { last_run_ms: now_ms(), ok: false, summary: message.to_string() };
    if let Err(e) = app.store.call(move |s| s.set_alert("wms_credentials", Some(&alert))).await {
        tracing::warn!(error = %e, "could not record the WMS credentials alert");
    }
}

async fn clear_wms_alert(app: &App) {
    if app.wms_auth_alert.swap(false, std::sync::atomic::Ordering::AcqRel) {
        let _ = app.store.call(|s| s.set_alert("wms_credentials", None)).await;
    }
}

async fn record(app: &App, mut entry: OutboxEntry, step: Step) -> Result<(), crate::store::StoreError> {
    let (order, kind) = (entry.order_id, entry.task.kind());
    let store = &app.store;
    let finish = |entry: OutboxEntry, effect: Box<dyn Fn(&mut OrderRecord) + Send>, next: Vec<Task>, note: String| {
        store.call(move |s| s.finish_entry(&entry, effect, &next, &note))
    };
    let save = |entry: OutboxEntry, note: String| store.call(move |s| s.save_entry(&entry, &note));
    match step {
        Step::Done(effect) => {
            tracing::info!(order, call = kind, "delivered");
            finish(entry, Box::new(effect), Vec::new(), format!("{kind} delivered")).await
        }
        Step::DoneThen(next) => {
            tracing::info!(order, call = kind, follow_ups = next.len(), "delivered");
            let note = format!("{kind} delivered; {} follow-up call(s) queued", next.len());
            finish(entry, Box::new(|_| {}), next, note).await
        }
        Step::Dropped(why) => {
            tracing::info!(order, call = kind, why, "not sent");
            finish(entry, Box::new(|_| {}), Vec::new(), format!("{kind} not sent: {why}")).await
        }
        Step::Reject(reason) => {
            tracing::warn!(order, %reason, "order rejected at delivery");
            metrics::counter!("channeld_orders_total", "outcome" => "rejected").increment(1);
            let note = format!("{kind}: the order is rejected at delivery: {reason}");
            let effect = move |r: &mut OrderRecord| {
                r.status = OrderStatus::Rejected;
                r.reasons = vec![reason.clone()];
            };
            finish(entry, Box::new(effect), Vec::new(), note).await
        }
        Step::Refused { error, effect } => {
            entry.attempts += 1;
            tracing::warn!(order, call = kind, error = %error, "the WMS refused the order: rejected; replay with `channeld outbox retry {}`", entry.seq);
            metrics::counter!("channeld_outbox_dead_letters_total", "call" => kind).increment(1);
            metrics::counter!("channeld_orders_total", "outcome" => "rejected").increment(1);
            entry.state = EntryState::Dead;
            entry.last_error = Some(error.to_string());
            let note = format!("{kind} refused by the WMS (dead letter {}): {error}", entry.seq);
            store.call(move |s| s.bury_entry(&entry, effect, &note)).await
        }
        Step::Failed(CallError::Unauthorized { message }) => {
            if kind.starts_with("wms_") {
                raise_wms_alert(app, &message).await;
            }
            let pause =
                if kind.starts_with("wms_") { Duration::from_secs(app.cfg.wms.auth_pause_seconds) } else { AUTH_PAUSE };
            entry.next_attempt_ms = now_ms() + pause.as_millis() as i64;
            let note = format!("{kind}: our credentials were refused; paused: {message}");
            entry.last_error = Some(message);
            save(entry, note).await
        }
        Step::Failed(CallError::Transient { message, retry_after })
            if entry.attempts + 1 < app.cfg.outbox.max_attempts =>
        {
            entry.attempts += 1;
            let o = &app.cfg.outbox;
            let wait = backoff(
                entry.attempts,
                Duration::from_millis(o.initial_backoff_ms),
                Duration::from_secs(o.max_backoff_seconds),
                rand::random::<f64>(),
            )
            .max(retry_after.unwrap_or_default());
            tracing::warn!(order, call = kind, attempt = entry.attempts, retry_in_ms = wait.as_millis() as u64, error = %message, "call failed; will retry");
            entry.next_attempt_ms = now_ms() + wait.as_millis() as i64;
            let note = format!("{kind} attempt {} failed, will retry: {message}", entry.attempts);
            entry.last_error = Some(message);
            save(entry, note).await
        }
        Step::Failed(e) => {
            entry.attempts += 1;
            tracing::error!(order, call = kind, attempts = entry.attempts, error = %e, "call dead-lettered; replay with `channeld outbox retry {}`", entry.seq);
            metrics::counter!("channeld_outbox_dead_letters_total", "call" => kind).increment(1);
            entry.state = EntryState::Dead;
            entry.last_error = Some(e.to_string());
            let note = format!("{kind} dead-lettered after {} attempt(s) (entry {}): {e}", entry.attempts, entry.seq);
            save(entry, note).await
        }
    }
}

async fn load(app: &App, order_id: u64) -> Result<OrderRecord, Step> {
    match app.store.call(move |s| s.order(order_id)).await {
        Ok(Some(rec)) => Ok(rec),
        Ok(None) => Err(Step::Dropped("the order is no longer stored".into())),
        Err(e) => Err(Step::from(e)),
    }
}

async fn create(app: &std::sync::Arc<App>, entry: &OutboxEntry) -> Step {
    let mut rec = match load(app, entry.order_id).await {
        Ok(r) => r,
        Err(step) => return step,
    };
    if rec.wms_created {
        return Step::Dropped("the WMS already has the order".into());
    }
    let routed = if rec.placement == Placement::Pending && !rec.cancelled {
        match route(app, &rec).await {
            Ok(p) => Some(p),
            Err(step) => return step,
        }
    } else {
        None
    };
    if let Some(p) = &routed {
        rec.placement = p.clone();
    }
    let Some(body) = create_body(&rec) else {
        return Step::Dropped(if rec.creation_unconfirmed() {
            "cancelled on Shopify: not sent again; an earlier attempt may have reached the WMS, so the cancellation is sent"
                .into()
        } else {
            "cancelled on Shopify before it reached the WMS".into()
        });
    };
    let unconfirmed_before = rec.creation_unconfirmed();
    if routed.is_some() || !unconfirmed_before {
        if let Err(e) = crate::services::orders::mark_sending(app, rec.id, routed).await {
            return Step::from(e);
        }
    }
    match app.wms.create_order(&body).await {
        Ok(_) => Step::Done(|r| {
            r.wms_created = true;
            r.unflag(CREATION_UNCONFIRMED);
            if !r.cancelled {
                r.status = OrderStatus::Sent;
            }
        }),
        Err(error @ CallError::Refused { .. }) => {
            let reason = format!("the WMS refused the order: {error}");
            let effect = move |r: &mut OrderRecord| {
                if !unconfirmed_before {
                    // A clear refusal, and no earlier attempt in doubt: the WMS does not have it.
                    r.unflag(CREATION_UNCONFIRMED);
                }
                if !r.cancelled && !r.wms_created {
                    r.status = OrderStatus::Rejected;
                    r.reasons = vec![reason.clone()];
                }
            };
            Step::Refused { error, effect: Box::new(effect) }
        }
        Err(e @ CallError::Unauthorized { .. }) => {
            if !unconfirmed_before {
                let id = rec.id;
                let _ = app.store.call(move |s| s.update_order(id, |r| r.unflag(CREATION_UNCONFIRMED))).await;
            }
            Step::Failed(e)
        }
        // No clear answer: the WMS may have created it; the flag stays.
        Err(e) => Step::Failed(e),
    }
}

/// Routing `shopify`: ask Shopify where its routing put the order.
async fn route(app: &App, rec: &OrderRecord) -> Result<Placement, Step> {
    let fos = app.shopify.fulfillment_orders(rec.id).await.map_err(Step::Failed)?.unwrap_or_default();
    match decide(&fos, |id| app.cfg.wms_location_for(id).map(str::to_string)) {
        RoutingDecision::Single(code) => Ok(Placement::Decided { location_code: Some(code), split: false }),
        RoutingDecision::Split => Ok(Placement::Decided { location_code: None, split: true }),
        RoutingDecision::Unmapped(id) => Err(Step::Reject(format!(
            "Shopify assigned location {id}, which no [[locations]] entry maps to a WMS location"
        ))),
        RoutingDecision::NotYet => {
            let id = rec.id;
            let _ = app.store.call(move |s| s.update_order(id, |r| r.status = OrderStatus::Received)).await;
            Err(Step::Failed(CallError::transient(
                "Shopify has no open fulfillment order for this order yet (routing still running)",
            )))
        }
    }
}

async fn update(app: &App, entry: &OutboxEntry, body: &str) -> Step {
    let rec = match load(app, entry.order_id).await {
        Ok(r) => r,
        Err(step) => return step,
    };
    if !rec.wms_created {
        return Step::Dropped("the WMS never got the order".into());
    }
    match app.wms.update_order(&rec.id.to_string(), body).await {
        Ok(()) => Step::Done(|_| {}),
        Err(e) => Step::Failed(e),
    }
}

async fn cancel(app: &App, entry: &OutboxEntry) -> Step {
    let rec = match load(app, entry.order_id).await {
        Ok(r) => r,
        Err(step) => return step,
    };
    let Some(body) = cancel_body(&rec) else {
        return Step::Dropped("no creation of the order can have reached the WMS: nothing to cancel".into());
    };
    match app.wms.cancel_order(&rec.id.to_string(), &body).await {
        Ok(()) => Step::Done(|_| {}),
        Err(e) => Step::Failed(e),
    }
}

fn done(result: Result<(), CallError>) -> Step {
    match result {
        Ok(()) => Step::Done(|_| {}),
        Err(e) => Step::Failed(e),
    }
}

/// Seller cancellation of some units: the refund Shopify suggests is worked out before the edit
/// removes the units, and sent as a follow-up call once the edit is committed.
async fn edit_lines(app: &App, order_id: u64, lines: &[(u64, u32)], refund_units: &[(u64, u32)]) -> Step {
    let c = &app.cfg.cancellation;
    let transactions = if c.refund && !refund_units.is_empty() {
        match app.shopify.suggested_refund(order_id, refund_units).await {
            Ok(t) => t,
            Err(e) => return Step::Failed(e),
        }
    } else {
        Vec::new()
    };
    if let Err(e) = app.shopify.edit_lines(order_id, lines, c).await {
        return Step::Failed(e);
    }
    if transactions.is_empty() {
        return Step::Done(|_| {});
    }
    let transactions = serde_json::to_string(&transactions).unwrap_or_default();
    Step::DoneThen(vec![Task::ShopifyRefund { transactions }])
}

async fn refund(app: &App, order_id: u64, seq: u64, transactions: &str) -> Step {
    let txs: Vec<serde_json::Value> = serde_json::from_str(transactions).unwrap_or_default();
    done(app.shopify.refund(order_id, seq, &txs, app.cfg.cancellation.notify_customer).await)
}

/// Clickpost's acknowledgement to Shopify: a fulfillment with the tracking number. Its id is kept
/// (tracking sends the shipment's events to it) before the call counts as done; a run cut short
/// finds the fulfillment by its tracking number and keeps the id then.
async fn fulfill(app: &App, order_id: u64, shipment_id: u64) -> Step {
    let s = match app.store.call(move |s| s.shipment(order_id, shipment_id)).await {
        Ok(Some(s)) => s,
        Ok(None) => return Step::Dropped(format!("shipment {shipment_id} is not stored")),
        Err(e) => return Step::from(e),
    };
    let lines: Vec<(u64, u32)> = s.lines.iter().flat_map(|l| l.shopify_lines.iter().copied()).collect();
    let tracking =
        crate::shopify::Tracking { number: s.awb.clone(), company: s.transporter.clone(), url: String::new() };
    let id = match app.shopify.fulfill(s.order_id, &lines, &tracking).await {
        Ok(Some(id)) => id,
        Ok(None) => return Step::Done(|_| {}),
        Err(e) => return Step::Failed(e),
    };
    match app.store.call(move |store| store.note_fulfillment(&s, &id, now_ms())).await {
        Ok(()) => Step::Done(|_| {}),
        Err(e) => Step::from(e),
    }
}
