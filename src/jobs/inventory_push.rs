//! The inventory push: desired quantities that differ from what Shopify last accepted go out in
//! `inventorySetQuantities` batches of at most `inventory.batch_size` rows.
//!
//! One faulty row never fails a batch: rows Shopify refuses (named by index in `userErrors`)
//! are quarantined with Shopify's message and the rest of the batch is sent again at once, under a
//! new idempotency key; a batch refused without a row named is halved until the refused row is
//! found ([`push_batch`]). Throttling is absorbed by the GraphQL client (it waits for the budget).

use crate::app::App;
use crate::flows::inventory::{halves, idempotency_key, PushRow};
use crate::remote::CallError;
use crate::shopify::SetQuantities;

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

/// Sends one batch; quarantines the rows Shopify refuses and sends the rest again until nothing is
/// refused. Rows refused by index are quarantined at once. A batch refused for its rows without
/// naming one (a value Shopify's types cannot take, a `userError` without a row index) is sent in
/// halves, each half again refused split again, until the refused row is alone: only it is
/// quarantined, and every other row still goes out in this run. When every row of a batch is
/// refused even alone, the refusal was about no row: the batch fails (and is tried again next run)
/// and nothing is quarantined.
async fn push_batch(
    app: &App,
    batch: Vec<PushRow>,
    run_id: &str,
    reference: &str,
    report: &mut PushReport,
) -> Result<(), CallError> {
    let rows = batch.len();
    // Rows pushed, or refused by name: evidence that Shopify judges this batch row by row.
    let (mut settled, mut alone) = (0usize, Vec::new());
    let mut todo = vec![batch];
    while let Some(batch) = todo.pop() {
        if batch.is_empty() {
            continue;
        }
        let key = idempotency_key(run_id, &batch);
        report.calls += 1;
        match app.shopify.set_quantities(&batch, &key, reference).await? {
            SetQuantities::Applied => {
                settled += batch.len();
                let pushed = batch.clone();
                app.store.call(move |s| s.mark_pushed(&pushed)).await.map_err(store_error)?;
                report.pushed += batch.len();
                metrics::counter!("channeld_inventory_rows_pushed_total").increment(batch.len() as u64);
            }
            SetQuantities::Rows(refused) => {
                // A row Shopify names twice is quarantined once, with its first message.
                let mut named = std::collections::BTreeMap::new();
                for (i, message) in refused {
                    named.entry(i).or_insert(message);
                }
                for (i, message) in &named {
                    quarantine(app, &batch[*i], message, report).await?;
                }
                settled += named.len();
                todo.push(
                    batch.into_iter().enumerate().filter(|(i, _)| !named.contains_key(i)).map(|(_, r)| r).collect(),
                );
            }
            SetQuantities::Unnamed(message) if batch.len() == 1 => {
                alone.extend(batch.into_iter().map(|r| (r, message.clone())))
            }
            SetQuantities::Unnamed(message) => {
                tracing::debug!(rows = batch.len(), reason = %message, "Shopify refused a batch without naming a row: sending it in halves");
                let [first, second] = halves(batch);
                todo.push(second);
                todo.push(first);
            }
        }
    }
    if settled == 0 && rows > 1 {
        if let Some((_, message)) = alone.first() {
            return Err(CallError::Refused {
                message: format!("every row of the batch was refused, each on its own, naming none: {message}"),
            });
        }
    }
    for (row, message) in &alone {
        quarantine(app, row, message, report).await?;
    }
    Ok(())
}

async fn quarantine(app: &App, row: &PushRow, message: &str, report: &mut PushReport) -> Result<(), CallError> {
    tracing::warn!(sku = %row.sku, item = row.item_id, location = row.location_id, reason = %message, "Shopify refused an inventory row: quarantined");
    let (row, why) = (row.clone(), message.to_string());
    app.store.call(move |s| s.quarantine_row(&row, &why)).await.map_err(store_error)?;
    report.quarantined += 1;
    metrics::counter!("channeld_inventory_rows_quarantined_total").increment(1);
    Ok(())
}

fn store_error(e: crate::store::StoreError) -> CallError {
    CallError::transient(e.to_string())
}
