//! The archive job: closes each handed-over order on Shopify (`orderClose`), once. With
//! `handover.archive = false` handovers are only recorded.

use crate::app::{now_ms, App};
use crate::remote::CallError;

pub async fn run(app: &App) -> anyhow::Result<String> {
    if !app.cfg.handover.archive {
        return Ok("handover.archive = false: nothing to archive".into());
    }
    let pending: Vec<u64> = app
        .store
        .call(|s| Ok(s.handovers()?.into_iter().filter(|h| h.archived_ms.is_none()).map(|h| h.order_id).collect()))
        .await?;
    let (mut closed, mut failed) = (0, 0);
    for order_id in &pending {
        let order_id = *order_id;
        match app.shopify.close_order(order_id).await {
            Ok(()) => {
                app.store.call(move |s| s.set_archive_outcome(order_id, Ok(now_ms()))).await?;
                closed += 1;
            }
            Err(CallError::Unauthorized { message }) => anyhow::bail!("Shopify refused our credentials: {message}"),
            Err(e) => {
                tracing::warn!(order = order_id, error = %e, "could not archive a handed-over order; retried next run");
                let why = e.to_string();
                app.store.call(move |s| s.set_archive_outcome(order_id, Err(why))).await?;
                failed += 1;
            }
        }
    }
    app.store.sync_state().await?;
    let summary = format!("{closed} order(s) archived, {failed} failed");
    if failed > 0 {
        anyhow::bail!(summary);
    }
    Ok(summary)
}
