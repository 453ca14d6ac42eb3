//! Returns (CONTRACT.md §9): the four return webhooks and the WMS's QC acknowledgement, recorded
//! durably and applied in journal order; `returns release` and `returns retry`. What each event
//! does to a return is decided in `flows::returns`; the calls it queues run in the outbox, in the
//! order's sequence (`outbox::returns`).

use std::convert::Infallible;
use std::sync::Arc;

use crate::app::{now_ms, App};
use crate::flows::model::{EntryState, Task};
use crate::flows::returns::{
    self as rules, flag, on_event, AckRefusal, ReturnEvent, ReturnRecord, ReturnStatus, ReturnTopic,
};
use crate::flows::wms_order::ReturnAckIn;
use crate::store::{Inbound, Replay, ReturnChange, ReturnWrite, StoreError, WmsCall};

use super::orders::IngestError;
use super::ServiceError;

/// What became of a return delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnIngested {
    /// `returns.enabled = false`: answered 200, nothing stored.
    Ignored,
    Duplicate,
    Applied(&'static str),
}

/// Records a verified return webhook (§9.4) and returns once it is durable and applied.
pub async fn ingest_webhook(
    app: &Arc<App>,
    topic: ReturnTopic,
    event_key: Option<&str>,
    body: &[u8],
) -> Result<ReturnIngested, IngestError> {
    if !app.cfg.returns.enabled {
        return Ok(ReturnIngested::Ignored);
    }
    let event = rules::read_event(topic, body).ok_or(IngestError::BadRequest("body is not JSON naming a return"))?;
    let (record, received_ms) = super::orders::webhook_record(topic.as_str(), event_key, body)?;
    let key = event_key.map(str::to_string);
    let applier = app.clone();
    let outcome = app
        .store
        .submit(record, move |_, _, _| apply_webhook(&applier, topic, key.as_deref(), &event, received_ms))
        .await?;
    if let ReturnIngested::Applied(_) = outcome {
        app.outbox_wake.notify_one();
    }
    Ok(outcome)
}

impl ReturnIngested {
    /// `Ignored` for a delivery that changed nothing.
    fn filter_repeated(self) -> Self {
        match self {
            ReturnIngested::Applied("repeated") => ReturnIngested::Ignored,
            other => other,
        }
    }
}

/// What a return webhook does to the state (live, and again in a replay).
fn apply_webhook(
    app: &App,
    topic: ReturnTopic,
    event_key: Option<&str>,
    event: &ReturnEvent,
    received_ms: i64,
) -> Result<ReturnIngested, StoreError> {
    let stored_order = match event.order_id {
        Some(id) => Some(id),
        None => app.store.return_record(event.return_id)?.map(|r| r.order_id),
    };
    let order = match stored_order {
        Some(id) => app.store.order(id)?,
        None => None,
    };
    let dedupe = event_key.map(|k| (topic.as_str(), k));
    let changed = app.store.change_return(event.return_id, dedupe, received_ms, |stored| {
        let d = on_event(topic, event, stored, order.as_ref(), received_ms);
        Ok::<_, Infallible>(ReturnWrite { record: d.record, tasks: d.tasks, answer: (d.outcome, d.alert) })
    })?;
    Ok(match changed {
        ReturnChange::Duplicate => ReturnIngested::Duplicate,
        ReturnChange::Refused(never) => match never {},
        ReturnChange::Done((outcome, alert)) => {
            report(event.return_id, topic, outcome, alert.as_deref());
            ReturnIngested::Applied(outcome)
        }
    })
}

fn report(return_id: u64, topic: ReturnTopic, outcome: &'static str, alert: Option<&str>) {
    match outcome {
        "held" => tracing::warn!(
            return_id,
            "return held: its order never reached the WMS (`channeld returns show {return_id}`; `returns release` sends it)"
        ),
        "cancelled_after_send" => {
            metrics::counter!("channeld_return_flags_total", "flag" => flag::CANCELLED_AFTER_SEND).increment(1);
        }
        "changed_after_send" => {
            metrics::counter!("channeld_return_flags_total", "flag" => flag::CHANGED_AFTER_SEND).increment(1);
        }
        "tracking_after_send" => {
            metrics::counter!("channeld_return_flags_total", "flag" => flag::TRACKING_AFTER_SEND).increment(1);
        }
        _ => {}
    }
    if let Some(alert) = alert {
        tracing::warn!(return_id, "{alert}");
    }
    tracing::info!(return_id, topic = topic.as_str(), outcome, "return webhook recorded");
}

/// A return approval or cancellation found by reconciliation (its webhook never arrived), run as
/// that webhook would; what it did (`None`: nothing).
pub async fn reconcile(
    app: &Arc<App>,
    topic: ReturnTopic,
    event: ReturnEvent,
) -> Result<Option<&'static str>, StoreError> {
    let applier = app.clone();
    let outcome = app.store.call(move |_| apply_webhook(&applier, topic, None, &event, now_ms())).await?;
    if let ReturnIngested::Applied(outcome) = outcome.filter_repeated() {
        app.store.sync_state().await?;
        app.outbox_wake.notify_one();
        return Ok(Some(outcome));
    }
    Ok(None)
}

/// A return webhook record applied again by a replay.
pub(super) fn apply_again(
    app: &App,
    topic: ReturnTopic,
    event_key: Option<&str>,
    body: &str,
    received_ms: i64,
) -> Result<(), StoreError> {
    match rules::read_event(topic, body.as_bytes()) {
        Some(event) => apply_webhook(app, topic, event_key, &event, received_ms).map(drop),
        None => Ok(()),
    }
}

// --- PUT /wms/returns/acknowledgement -------------------------------------------------------------

/// The WMS's QC result for units of a return it got (§9.5): checked as a whole against what was
/// sent, recorded durably, and executed on Shopify through the outbox.
pub async fn acknowledge(app: &Arc<App>, body: &[u8]) -> Result<(), ServiceError> {
    if !app.cfg.returns.enabled {
        return Err(ServiceError::Invalid("returns are not enabled in channeld (returns.enabled = false)".into()));
    }
    let text = std::str::from_utf8(body).map_err(|_| ServiceError::Invalid("the request body is not UTF-8".into()))?;
    let ack = parse_ack(text)?;
    let received_ms = now_ms();
    let event = Inbound::Wms { call: WmsCall::ReturnAck, received_ms, body: text.to_string() };
    let applier = app.clone();
    let result = app.store.submit(event, move |_, _, _| apply_ack(&applier, &ack, received_ms)).await?;
    let label = match &result {
        Ok(true) => "accepted",
        Ok(false) => "repeated",
        Err(_) => "refused",
    };
    metrics::counter!("channeld_return_acknowledgements_total", "result" => label).increment(1);
    if result.is_ok() {
        app.outbox_wake.notify_one();
    }
    result.map(drop)
}

fn parse_ack(body: &str) -> Result<ReturnAckIn, ServiceError> {
    let ack: ReturnAckIn =
        serde_json::from_str(body).map_err(|e| ServiceError::Invalid(format!("invalid request body: {e}")))?;
    if ack.return_order_code.trim().is_empty() {
        return Err(ServiceError::Invalid("returnOrderCode is missing".into()));
    }
    Ok(ack)
}

/// Applies an acknowledgement: `Ok(true)` when it QC'd new units, `Ok(false)` for a repeat.
fn apply_ack(app: &App, ack: &ReturnAckIn, received_ms: i64) -> Result<Result<bool, ServiceError>, StoreError> {
    let code = ack.return_order_code.trim();
    let Some(found) = app.store.return_by_code(code)? else {
        return Ok(Err(ServiceError::NotFound(format!("returnOrderCode {code} was never sent by channeld"))));
    };
    let changed = app.store.change_return(found.id, None, received_ms, |stored| {
        let Some(mut rec) = stored else { return Err(AckRefusal::NotFound(format!("return {code} is gone"))) };
        let outcome = rules::acknowledge(&mut rec, code, ack)?;
        let fresh = !outcome.new.is_empty();
        // An RTO's QC is recorded and executes nothing on Shopify (no Shopify return exists).
        let tasks = if fresh && !rec.finished_on_shopify() && !rec.is_rto() {
            vec![Task::ShopifyProcessReturn { return_id: rec.id, ack: rec.acks }]
        } else {
            Vec::new()
        };
        Ok(ReturnWrite { record: Some(rec), tasks, answer: outcome })
    })?;
    Ok(match changed {
        ReturnChange::Done(outcome) => {
            for (_, pass) in &outcome.new {
                metrics::counter!("channeld_return_units_total", "qc" => if *pass { "pass" } else { "fail" })
                    .increment(1);
            }
            tracing::info!(
                return_code = code,
                new = outcome.new.len(),
                repeated = outcome.repeated,
                "return QC acknowledged"
            );
            Ok(!outcome.new.is_empty())
        }
        ReturnChange::Refused(AckRefusal::NotFound(m)) => Err(ServiceError::NotFound(m)),
        ReturnChange::Refused(AckRefusal::Invalid(m)) => Err(ServiceError::Invalid(m)),
        ReturnChange::Refused(AckRefusal::Conflict(m)) => Err(ServiceError::Conflict(m)),
        ReturnChange::Duplicate => Ok(false),
    })
}

/// An acknowledgement record applied again by a replay (its answer went out before the crash).
pub(super) fn apply_ack_again(app: &App, body: &str, received_ms: i64) -> Result<(), StoreError> {
    match parse_ack(body) {
        Ok(ack) => apply_ack(app, &ack, received_ms).map(drop),
        Err(_) => Ok(()),
    }
}

// --- returns release / retry / lookups -------------------------------------------------------------

/// The return an operator names: Shopify's return id, its name (`#1001-R1`) or a `returnOrderCode`.
pub fn find(app: &App, which: &str) -> Result<Option<ReturnRecord>, StoreError> {
    let which = which.trim();
    if let Some(r) = app.store.return_by_code(which)? {
        return Ok(Some(r));
    }
    if let Ok(id) = which.parse::<u64>() {
        if let Some(r) = app.store.return_record(id)? {
            return Ok(Some(r));
        }
    }
    app.store.return_by_name(which)
}

/// `returns release ID`: a held return is sent (the operator vouches that the WMS knows its order).
pub fn release(app: &App, which: &str) -> Result<ReturnRecord, ServiceError> {
    let rec = find(app, which)?.ok_or_else(|| ServiceError::NotFound(format!("no return {which}")))?;
    let changed = app.store.change_return(rec.id, None, now_ms(), |stored| {
        let mut rec = stored.ok_or_else(|| format!("no return {which}"))?;
        let tasks = rules::release(&mut rec)?;
        Ok(ReturnWrite { record: Some(rec.clone()), tasks, answer: rec })
    })?;
    match changed {
        ReturnChange::Done(rec) => {
            app.store.sync_state_blocking()?;
            Ok(rec)
        }
        ReturnChange::Refused(m) => Err(ServiceError::Invalid(m)),
        ReturnChange::Duplicate => Err(ServiceError::Invalid("nothing to release".into())),
    }
}

/// `returns retry ID`: the return's dead-lettered calls go back in line; a step its state calls
/// for and nothing has queued (a return queued or waiting, units QC'd and not processed, a return
/// to close) is queued again. Each step reads the return from Shopify again and does only what is
/// left, so a retry of a step done changes nothing. Returns how many calls are in line for it.
pub fn retry(app: &App, which: &str) -> Result<usize, ServiceError> {
    let rec = find(app, which)?.ok_or_else(|| ServiceError::NotFound(format!("no return {which}")))?;
    let ours = |t: &Task| match t {
        Task::WmsReturn { return_id } | Task::ShopifyCloseReturn { return_id } => *return_id == rec.id,
        Task::ShopifyProcessReturn { return_id, .. } => *return_id == rec.id,
        _ => false,
    };
    let queued: Vec<_> = app.store.order_entries(rec.order_id)?.into_iter().filter(|e| ours(&e.task)).collect();
    for e in queued.iter().filter(|e| e.state == EntryState::Dead) {
        app.store.replay_entries(Replay::One(e.seq), now_ms())?;
    }
    let mut in_line = queued.len();
    if queued.is_empty() {
        let steps = pending_steps(&rec);
        in_line += steps.len();
        if !steps.is_empty() {
            app.store.change_return(rec.id, None, now_ms(), |stored| {
                Ok::<_, Infallible>(ReturnWrite { record: stored, tasks: steps.clone(), answer: () })
            })?;
        }
    }
    app.store.sync_state_blocking()?;
    Ok(in_line)
}

/// The calls a return's state asks for when none is queued.
fn pending_steps(rec: &ReturnRecord) -> Vec<Task> {
    match rec.status {
        ReturnStatus::Queued | ReturnStatus::Waiting => vec![Task::WmsReturn { return_id: rec.id }],
        _ if rec.finished_on_shopify() || rec.is_rto() => Vec::new(),
        _ if rec.units.iter().any(|u| u.due(u32::MAX)) => {
            vec![Task::ShopifyProcessReturn { return_id: rec.id, ack: rec.acks }]
        }
        ReturnStatus::Done if !rec.closed && rec.skipped.is_empty() && !rec.flagged(flag::QC_FAIL) => {
            vec![Task::ShopifyCloseReturn { return_id: rec.id }]
        }
        _ => Vec::new(),
    }
}
