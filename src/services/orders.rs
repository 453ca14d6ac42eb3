//! Orders: a verified Shopify webhook recorded durably, and `orders retry`.

use std::sync::Arc;

use crate::app::{now_ms, App};
use crate::flows::intake::{self, Topic};
use crate::flows::model::{OrderStatus, Placement, CREATION_UNCONFIRMED};
use crate::flows::shopify_order::{parse_webhook_body, ShopifyOrder};
use crate::remote::CallError;
use crate::store::{Inbound, Ingested, StoreError};

/// Why a webhook was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    BadRequest(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why `orders retry` could not run.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Shopify(#[from] CallError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records a verified webhook and returns once it is on stable storage and applied. The WMS is
/// never called from here: the outbox worker is woken instead.
pub async fn ingest_webhook(
    app: &Arc<App>,
    topic: Topic,
    event_key: Option<&str>,
    body: &[u8],
) -> Result<Ingested, IngestError> {
    let (id, order) = parse_webhook_body(body).ok_or(IngestError::BadRequest("body is not JSON with a numeric id"))?;
    let (event, received_ms) = webhook_record(topic.as_str(), event_key, body)?;
    let key = event_key.map(str::to_string);
    let applier = app.clone();
    // The order was read here, on the request's thread; the applier only maps and stores it.
    let result = app
        .store
        .submit(event, move |_, _, _| {
            record(&applier, topic, key.as_deref(), id, order.as_ref().map_err(String::as_str), received_ms)
        })
        .await?;
    report(app, topic, id, &result);
    Ok(result)
}

/// The journal record of a verified delivery (any topic), and when it arrived.
pub(super) fn webhook_record(topic: &str, event_key: Option<&str>, body: &[u8]) -> Result<(Inbound, i64), IngestError> {
    let text = std::str::from_utf8(body).map_err(|_| IngestError::BadRequest("body is not UTF-8"))?;
    let received_ms = now_ms();
    let record = Inbound::Webhook {
        topic: topic.to_string(),
        event_key: event_key.map(str::to_string),
        received_ms,
        body: text.to_string(),
    };
    Ok((record, received_ms))
}

/// What a webhook does to the state: the de-duplication key, the order, the calls it queues.
fn record(
    app: &App,
    topic: Topic,
    event_key: Option<&str>,
    id: u64,
    order: Result<&ShopifyOrder, &str>,
    received_ms: i64,
) -> Result<Ingested, StoreError> {
    app.store.record_event(topic.as_str(), event_key, id, received_ms, |existing| {
        intake::apply(existing, topic, id, order, &app.rules, received_ms)
    })
}

/// A webhook record applied again by a replay.
pub(super) fn apply_again(app: &App, event: &Inbound) -> Result<(), StoreError> {
    let Inbound::Webhook { topic, event_key, received_ms, body } = event else { return Ok(()) };
    let (Some(topic), Some((id, order))) = (Topic::parse(topic), parse_webhook_body(body.as_bytes())) else {
        return Ok(());
    };
    record(app, topic, event_key.as_deref(), id, order.as_ref().map_err(String::as_str), *received_ms).map(drop)
}

fn report(app: &App, topic: Topic, id: u64, result: &Ingested) {
    if let Ingested::Applied { status, outcome, queued, not_forwarded } = result {
        for change in not_forwarded {
            tracing::warn!(order = id, topic = topic.as_str(), change, "the order changed on Shopify after it was sent; this change is not forwarded to the WMS (flagged: `channeld orders show {id}`)");
            metrics::counter!("channeld_order_changes_not_forwarded_total", "change" => *change).increment(1);
        }
        if *status == OrderStatus::Rejected {
            tracing::warn!(order = id, topic = topic.as_str(), "order rejected; see `channeld orders show {id}`");
        } else {
            tracing::info!(order = id, topic = topic.as_str(), outcome, queued, "webhook recorded");
        }
        metrics::counter!("channeld_orders_total", "outcome" => *outcome).increment(1);
        if *queued > 0 {
            app.outbox_wake.notify_one();
        }
    }
}

/// Records durably, before the outbox sends an order's creation, that it may reach the WMS from
/// now on ([`CREATION_UNCONFIRMED`]: a crash or a lost answer must not let a later cancellation be
/// dropped), together with where Shopify routed it.
pub async fn mark_sending(app: &Arc<App>, order_id: u64, placement: Option<Placement>) -> Result<(), StoreError> {
    let event = Inbound::Sending { order_id, placement, received_ms: now_ms() };
    let applier = app.clone();
    app.store.submit(event, move |_, _, event| apply_sending(&applier, event)).await
}

pub(super) fn apply_sending(app: &App, event: &Inbound) -> Result<(), StoreError> {
    let Inbound::Sending { order_id, placement, .. } = event else { return Ok(()) };
    app.store.update_order(*order_id, |r| {
        if let Some(p) = placement {
            r.placement = p.clone();
            if r.status == OrderStatus::Received {
                r.status = OrderStatus::Queued;
            }
        }
        r.flag(CREATION_UNCONFIRMED.to_string());
    })?;
    Ok(())
}

/// Re-fetches an order from Shopify and runs it again (`orders retry`). Returns what happened.
pub async fn retry_order(app: &App, id_or_name: &str) -> Result<String, RetryError> {
    let wanted = id_or_name.to_string();
    let id = match app.store.call(move |s| s.find_order(&wanted)).await? {
        Some(rec) if rec.wms_created => return Ok(format!("order {} is already at the WMS: nothing to do", rec.id)),
        Some(rec) => rec.id,
        None => id_or_name.trim().parse::<u64>().map_err(|_| {
            RetryError::NotFound(format!("no order {id_or_name} is stored; give its numeric Shopify id to fetch it"))
        })?,
    };
    let order = app
        .shopify
        .order(id)
        .await?
        .ok_or_else(|| RetryError::NotFound(format!("Shopify does not know order {id}")))?;
    let now = now_ms();
    let rules = app.rules.clone();
    let (result, replayed) = app
        .store
        .call(move |s| {
            let result =
                s.record_event("orders/retry", None, id, now, |existing| intake::rerun(existing, &order, &rules, now))?;
            Ok((result, s.replay_order_dead(id, now)?))
        })
        .await?;
    app.store.sync_state().await?;
    app.outbox_wake.notify_one();
    Ok(match result {
        Ingested::Applied { status, outcome, queued, .. } => format!(
            "order {id}: {outcome}, now {}; {queued} call(s) queued, {replayed} dead call(s) replayed",
            status.as_str()
        ),
        Ingested::Duplicate => format!("order {id}: nothing to do"),
    })
}
