//! The inventory push: desired quantities that differ from what Shopify last accepted go out in
//! `inventorySetQuantities` batches of at most `inventory.batch_size` rows.
//!
//! One faulty serial never fails a batch: rows Shopify refuses (named by index in `userErrors`)
//! are quarantined with Shopify's message and the rest of the batch is sent again at once, under a
//! new idempotency key. Throttling is absorbed by the GraphQL client (it waits for the budget).

use crate::app::App;
use crate::flows::inventory::{idempotency_key, PushRow};
use crate::remote::CallError;

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub calls: usize,
    pub pushed: usize,
    pub quarantined: usize,
    pub failed_batches: usize,
}

/// One run of the job (also called directly by tests and `inventory resync`).
pub async fn run(app: &App) -> anyhow::Result<String> {
    let report = push_pending(app).await?;
    let summary = format!(
        "{} row(s) pushed in {} call(s), {} quarantined, {} batch(es) failed",
        report.pushed, report.calls, report.quarantined, report.failed_batches
    );
    if report.failed_batches > 0 {
        anyhow::bail!(summary);
    }
    Ok(summary)
}

pub async fn push_pending(app: &App) -> anyhow::Result<PushReport> {
    let rows: Vec<PushRow> = app
        .store
        .call(|s| s.inventory_rows())
        .await?
        .iter()
        // Only mapped locations are ever written: since 2026-10 Shopify stocks an item wherever it is told.
        .filter(|r| r.is_pending() && app.cfg.wms_location_for(r.location_id).is_some())
        .map(PushRow::of)
        .collect();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut report = PushReport::default();
    for (n, chunk) in rows.chunks(app.cfg.inventory.batch_size).enumerate() {
        let reference = format!("logistics://channeld/{}/inventory-push/{run_id}/{n}", app.cfg.shopify.shop);
        match push_batch(app, chunk.to_vec(), &run_id, &reference, &mut report).await {
            Ok(()) => {}
            Err(CallError::Unauthorized { message }) => anyhow::bail!("Shopify refused our credentials: {message}"),
            Err(e) => {
                tracing::warn!(batch = n, rows = chunk.len(), error = %e, "inventory batch failed; retried next run");
                report.failed_batches += 1;
            }
        }
    }
    app.store.sync_state().await?;
    Ok(report)
}

/// Sends one batch; quarantines refused rows and sends the rest again until nothing is refused.
async fn push_batch(
    app: &App,
    mut batch: Vec<PushRow>,
    run_id: &str,
    reference: &str,
    report: &mut PushReport,
) -> Result<(), CallError> {
    while !batch.is_empty() {
        let key = idempotency_key(run_id, &batch);
        report.calls += 1;
        let refused = app.shopify.set_quantities(&batch, &key, reference).await?;
        if refused.is_empty() {
            let pushed = batch.clone();
            app.store.call(move |s| s.mark_pushed(&pushed)).await.map_err(|e| CallError::transient(e.to_string()))?;
            report.pushed += batch.len();
            metrics::counter!("channeld_inventory_rows_pushed_total").increment(batch.len() as u64);
            return Ok(());
        }
        let mut refused_idx: Vec<usize> = Vec::new();
        for (i, message) in refused {
            let row = &batch[i];
            tracing::warn!(sku = %row.sku, item = row.item_id, location = row.location_id, reason = %message, "Shopify refused an inventory row: quarantined");
            let (row, why) = (row.clone(), message.clone());
            app.store
                .call(move |s| s.quarantine_row(&row, &why))
                .await
                .map_err(|e| CallError::transient(e.to_string()))?;
            refused_idx.push(i);
        }
        refused_idx.sort_unstable();
        refused_idx.dedup();
        report.quarantined += refused_idx.len();
        metrics::counter!("channeld_inventory_rows_quarantined_total").increment(refused_idx.len() as u64);
        batch = batch.into_iter().enumerate().filter(|(i, _)| !refused_idx.contains(i)).map(|(_, r)| r).collect();
    }
    Ok(())
}
