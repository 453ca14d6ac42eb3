//! The archive job: closes each handed-over order on Shopify (`orderClose`), once. With
//! `handover.archive = false` handovers are only recorded.

use crate::app::{now_ms, App};
use crate::remote::CallError;

pub async fn run(app: &App) -> anyhow::Result<String> {
    if !app.cfg.handover.archive {
        return Ok("handover.archive = false: nothing to archive".into());
    }
    let pending: Vec<u64> =
        app.store.handovers()?.into_iter().filter(|h| h.archived_ms.is_none()).map(|h| h.order_id).collect();
    let (mut closed, mut failed) = (0, 0);
    for order_id in &pending {
        match app.shopify.close_order(*order_id).await {
            Ok(()) => {
                app.store.set_archive_outcome(*order_id, Ok(now_ms()))?;
                closed += 1;
            }
            Err(CallError::Unauthorized { message }) => anyhow::bail!("Shopify refused our credentials: {message}"),
            Err(e) => {
                tracing::warn!(order = order_id, error = %e, "could not archive a handed-over order; retried next run");
                app.store.set_archive_outcome(*order_id, Err(e.to_string()))?;
                failed += 1;
            }
        }
    }
    app.store.flush()?;
    let summary = format!("{closed} order(s) archived, {failed} failed");
    if failed > 0 {
        anyhow::bail!(summary);
    }
    Ok(summary)
}
