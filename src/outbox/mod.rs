//! The delivery worker: runs queued outbound calls from the store's outbox.
//!
//! The loop only decides what is due and how long to sleep; [`deliver`] runs one entry and
//! records its outcome. Invariants:
//! - at most one call per order is in flight, and only the first entry of an order is ever due,
//!   so an update or cancellation never overtakes the order's creation;
//! - `outbox.concurrency` orders are served at once (a semaphore);
//! - on shutdown no new call starts; calls in flight get a few seconds to finish, and whatever did
//!   not finish is still pending in the store and runs after the restart.

mod deliver;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::{now_ms, App};

/// How long in-flight calls may take to finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(7);
/// The longest the loop sleeps without looking at the store (new work also wakes it at once).
const IDLE: Duration = Duration::from_secs(1);

pub async fn worker_loop(app: Arc<App>, shutdown: CancellationToken) {
    let busy: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(app.cfg.outbox.concurrency));
    let mut running = JoinSet::new();
    while !shutdown.is_cancelled() {
        let snapshot = busy.lock().map(|b| b.clone()).unwrap_or_default();
        let work = match app.store.due_work(now_ms(), &snapshot, permits.available_permits()) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "outbox: could not read the queue");
                tokio::time::sleep(IDLE).await;
                continue;
            }
        };
        metrics::gauge!("channeld_outbox_pending").set(work.pending as f64);
        metrics::gauge!("channeld_outbox_dead").set(work.dead as f64);
        for entry in work.due {
            // The limit passed to due_work keeps this from waiting; the semaphore is never closed.
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            if let Ok(mut b) = busy.lock() {
                b.insert(entry.order_id);
            }
            let (app, busy) = (app.clone(), busy.clone());
            running.spawn(async move {
                let order_id = entry.order_id;
                deliver::run_entry(&app, entry).await;
                if let Ok(mut b) = busy.lock() {
                    b.remove(&order_id);
                }
                drop(permit);
                app.outbox_wake.notify_one();
            });
        }
        let sleep = work
            .next_due_ms
            .map(|t| Duration::from_millis((t - now_ms()).clamp(1, IDLE.as_millis() as i64) as u64))
            .unwrap_or(IDLE);
        tokio::select! {
            _ = app.outbox_wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.cancelled() => {}
        }
        while running.try_join_next().is_some() {}
    }
    if tokio::time::timeout(DRAIN, async { while running.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(left = running.len(), "outbox: calls still running at shutdown stay queued for the next start");
        running.abort_all();
    }
}
