//! Reconciliation: finds orders whose webhooks never arrived by polling Shopify for orders updated
//! since the watermark (minus `jobs.reconcile_overlap_minutes`), and runs each through the same
//! intake as an `orders/updated` webhook: missed creations are created, hold/SLA changes forwarded,
//! cancellations forwarded; what was already delivered is never sent again.
//!
//! Only orders channeld does not already hold at that version are fetched (a full order costs
//! hundreds of query points). The watermark advances only when a whole run succeeded. An order
//! Shopify answers but channeld cannot map (Shopify refuses the query, or the answer cannot be
//! read) does not stop the run: it is recorded on the order (a reason for an order channeld did
//! not know, which is then `rejected`; a flag on one it knows), counted in
//! `channeld_reconcile_orders_skipped_total`, and skipped; `orders retry` runs it again.
//!
//! With returns on, it also reads the returns of every order it visits and runs the approvals and
//! cancellations whose webhooks never arrived (CONTRACT.md §9.9).

use std::sync::Arc;

use crate::app::{now_ms, App};
use crate::flows::intake::{self, Topic};
use crate::flows::returns::{ReturnEvent, ReturnTopic};
use crate::flows::{fmt_time, parse_time};
use crate::remote::CallError;

pub async fn run(app: &Arc<App>) -> anyhow::Result<String> {
    let watermark = app.store.call(|s| s.reconcile_watermark()).await?.unwrap_or(app.rules.since_ms);
    let overlap = i64::from(app.cfg.jobs.reconcile_overlap_minutes) * 60_000;
    let since = chrono::DateTime::from_timestamp_millis(watermark - overlap).map(fmt_time).unwrap_or_default();
    let (mut seen, mut fetched, mut queued, mut skipped) = (0usize, 0usize, 0usize, 0usize);
    let mut newest = watermark;
    let mut after: Option<String> = None;
    loop {
        let (page, next) = app.shopify.orders_updated_since(&since, after.as_deref()).await?;
        for (id, updated_at) in page {
            seen += 1;
            let updated_ms = parse_time(&updated_at).map_or(0, |t| t.timestamp_millis());
            newest = newest.max(updated_ms);
            if app.cfg.returns.enabled {
                queued += missed_returns(app, id).await?;
            }
            if already_known(app, id, updated_ms).await? {
                continue;
            }
            let order = match app.shopify.order(id).await {
                Ok(Some(order)) => Ok(order),
                Ok(None) => continue,
                Err(CallError::Refused { message }) => {
                    tracing::warn!(order = id, reason = %message, "reconciliation cannot map an order: recorded and skipped");
                    metrics::counter!("channeld_reconcile_orders_skipped_total").increment(1);
                    skipped += 1;
                    Err(format!("reconciliation could not map it from Shopify: {message}"))
                }
                Err(e) => return Err(e.into()),
            };
            let now = now_ms();
            // A skipped version has a key of its own: once it can be read, the same version is applied.
            let key = format!("{id}@{updated_at}{}", if order.is_ok() { "" } else { ":unmapped" });
            fetched += usize::from(order.is_ok());
            let rules = app.rules.clone();
            let result = app
                .store
                .call(move |s| {
                    s.record_event("reconcile", Some(&key), id, now, |existing| {
                        intake::apply(existing, Topic::Updated, id, order.as_ref().map_err(String::as_str), &rules, now)
                    })
                })
                .await?;
            if let crate::store::Ingested::Applied { queued: n, outcome, .. } = result {
                if n > 0 {
                    tracing::info!(order = id, outcome, "reconciliation found a missed change");
                }
                queued += n;
            }
        }
        match next {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    app.store.call(move |s| s.set_reconcile_watermark(newest)).await?;
    app.store.sync_state().await?;
    if queued > 0 {
        app.outbox_wake.notify_one();
    }
    metrics::counter!("channeld_reconcile_orders_fetched_total").increment(fetched as u64);
    Ok(format!(
        "{seen} order(s) updated since {since}; {fetched} fetched; {skipped} skipped (could not be mapped); {queued} call(s) queued"
    ))
}

/// Runs the approvals and cancellations of the order's returns that channeld missed; returns how
/// many calls that queued.
async fn missed_returns(app: &Arc<App>, order_id: u64) -> anyhow::Result<usize> {
    let mut queued = 0;
    for (return_id, status) in app.shopify.order_returns(order_id).await? {
        let topic = match status.as_str() {
            "OPEN" => ReturnTopic::Approve,
            "CANCELED" => ReturnTopic::Cancel,
            _ => continue,
        };
        let event = ReturnEvent { return_id, order_id: Some(order_id) };
        if crate::services::returns::reconcile(app, topic, event).await? == Some("queued") {
            tracing::info!(order = order_id, return_id, "reconciliation found a missed return approval");
            queued += 1;
        }
    }
    Ok(queued)
}

/// True when the stored order already reflects this Shopify version (or is finished with).
async fn already_known(app: &App, id: u64, updated_ms: i64) -> anyhow::Result<bool> {
    Ok(match app.store.call(move |s| s.order(id)).await? {
        Some(rec) => rec.cancelled || rec.last_updated_ms.is_some_and(|t| t >= updated_ms),
        None => false,
    })
}
