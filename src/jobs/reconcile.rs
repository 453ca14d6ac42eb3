//! Reconciliation: finds orders whose webhooks never arrived by polling Shopify for orders updated
//! since the watermark (minus `jobs.reconcile_overlap_minutes`), and runs each through the same
//! intake as an `orders/updated` webhook: missed creations are created, hold/SLA changes forwarded,
//! cancellations forwarded; what was already delivered is never sent again.
//!
//! Only orders channeld does not already hold at that version are fetched (a full order costs
//! hundreds of query points). The watermark advances only when a whole run succeeded.

use crate::app::{now_ms, App};
use crate::flows::intake::{self, Topic};
use crate::flows::{fmt_time, parse_time};

pub async fn run(app: &App) -> anyhow::Result<String> {
    let watermark = app.store.call(|s| s.reconcile_watermark()).await?.unwrap_or(app.rules.since_ms);
    let overlap = i64::from(app.cfg.jobs.reconcile_overlap_minutes) * 60_000;
    let since = chrono::DateTime::from_timestamp_millis(watermark - overlap).map(fmt_time).unwrap_or_default();
    let (mut seen, mut fetched, mut queued) = (0usize, 0usize, 0usize);
    let mut newest = watermark;
    let mut after: Option<String> = None;
    loop {
        let (page, next) = app.shopify.orders_updated_since(&since, after.as_deref()).await?;
        for (id, updated_at) in page {
            seen += 1;
            let updated_ms = parse_time(&updated_at).map_or(0, |t| t.timestamp_millis());
            newest = newest.max(updated_ms);
            if already_known(app, id, updated_ms).await? {
                continue;
            }
            let Some(order) = app.shopify.order(id).await? else { continue };
            fetched += 1;
            let now = now_ms();
            let key = format!("{id}@{updated_at}");
            let rules = app.rules.clone();
            let result = app
                .store
                .call(move |s| {
                    s.record_event("reconcile", Some(&key), id, now, |existing| {
                        intake::apply(existing, Topic::Updated, id, Ok(&order), &rules, now)
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
    Ok(format!("{seen} order(s) updated since {since}; {fetched} fetched; {queued} call(s) queued"))
}

/// True when the stored order already reflects this Shopify version (or is finished with).
async fn already_known(app: &App, id: u64, updated_ms: i64) -> anyhow::Result<bool> {
    Ok(match app.store.call(move |s| s.order(id)).await? {
        Some(rec) => rec.cancelled || rec.last_updated_ms.is_some_and(|t| t >= updated_ms),
        None => false,
    })
}
