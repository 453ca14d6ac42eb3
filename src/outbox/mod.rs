//! The delivery worker: runs queued outbound calls from the store's outbox.
//!
//! The loop only decides what is due and how long to sleep; [`deliver`] runs one entry and
//! records its outcome. Invariants:
//! - at most one call per order is in flight, and only the first entry of an order is ever due,
//!   so an update or cancellation never overtakes the order's creation;
//! - `outbox.concurrency` orders are served at once (a semaphore);
//! - nothing is sent before the state it comes from is durable (a checkpoint precedes each round);
//! - on shutdown no new call starts; calls in flight get a few seconds to finish, and whatever did
//!   not finish is still pending in the store and runs after the restart.

mod deliver;
mod returns;
mod step;
mod tracking;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::{now_ms, App};

/// How long in-flight calls may take to finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(7);
/// The longest the loop sleeps without looking at the store (new work also wakes it at once).
const IDLE: Duration = Duration::from_secs(1);
/// How often the queue gauges are recounted (a full scan).
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// The loop rests at least this many times as long as its last scan took, so that scanning a long
/// queue (a WMS outage under steady intake) never takes more than a fraction of a core.
const SCAN_REST_FACTOR: u32 = 4;

/// Orders whose last call's outcome could not be recorded: each waits with capped exponential
/// backoff before its call runs again, so a store that cannot write is not hammered with the same
/// call back to back.
#[derive(Default)]
struct Cooldowns(HashMap<u64, (Instant, u32)>);

impl Cooldowns {
    /// Records the outcome of one run of an order's call.
    fn ran(&mut self, order_id: u64, recorded: bool, now: Instant, cfg: &crate::config::Outbox) {
        if recorded {
            self.0.remove(&order_id);
            return;
        }
        let failures = self.0.get(&order_id).map_or(0, |(_, n)| *n) + 1;
        let wait = crate::flows::retry::backoff(
            failures,
            Duration::from_millis(cfg.initial_backoff_ms),
            Duration::from_secs(cfg.max_backoff_seconds),
            rand::random::<f64>(),
        );
        self.0.insert(order_id, (now + wait, failures));
    }

    /// Orders still waiting at `now`.
    fn waiting(&self, now: Instant) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().filter(move |(_, (until, _))| *until > now).map(|(id, _)| *id)
    }
}

type Cooling = Arc<Mutex<Cooldowns>>;

pub async fn worker_loop(app: Arc<App>, shutdown: CancellationToken) {
    let busy: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let cooling: Cooling = Arc::default();
    let permits = Arc::new(Semaphore::new(app.cfg.outbox.concurrency));
    let mut running = JoinSet::new();
    let mut gauges_at: Option<Instant> = None;
    while !shutdown.is_cancelled() {
        if gauges_at.is_none_or(|t| t.elapsed() >= GAUGES_EVERY) {
            gauges_at = Some(Instant::now());
            if let Ok(c) = app.store.call(|s| s.outbox_counts()).await {
                metrics::gauge!("channeld_outbox_pending").set(c.pending as f64);
                metrics::gauge!("channeld_outbox_dead").set(c.dead as f64);
            }
        }
        let mut snapshot = busy.lock().map(|b| b.clone()).unwrap_or_default();
        if let Ok(c) = cooling.lock() {
            snapshot.extend(c.waiting(Instant::now()));
        }
        let scan_started = Instant::now();
        let limit = permits.available_permits();
        let work = match app.store.call(move |s| s.due_work(now_ms(), &snapshot, limit)).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "outbox: could not read the queue");
                tokio::time::sleep(IDLE).await;
                continue;
            }
        };
        let rest = scan_started.elapsed() * SCAN_REST_FACTOR;
        if !work.due.is_empty() {
            // Due work may come from writes not yet durable (a follow-up queued by the last call's
            // outcome): nothing is sent on the strength of those.
            if let Err(e) = app.store.sync_outbox().await {
                tracing::error!(error = %e, "outbox: the store could not be made durable; nothing is sent");
                tokio::time::sleep(IDLE).await;
                continue;
            }
        }
        for entry in work.due {
            // The limit passed to due_work keeps this from waiting; the semaphore is never closed.
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            if let Ok(mut b) = busy.lock() {
                b.insert(entry.order_id);
            }
            let (app, busy, cooling) = (app.clone(), busy.clone(), cooling.clone());
            running.spawn(async move {
                let order_id = entry.order_id;
                let recorded = deliver::run_entry(&app, entry).await;
                if let Ok(mut c) = cooling.lock() {
                    c.ran(order_id, recorded, Instant::now(), &app.cfg.outbox);
                }
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
        tokio::time::sleep(rest).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_whose_outcome_could_not_be_recorded_waits_longer_each_time_until_one_is() {
        let cfg: crate::config::Outbox = toml::from_str("initial_backoff_ms = 100\nmax_backoff_seconds = 10").unwrap();
        let (mut c, t0) = (Cooldowns::default(), Instant::now());
        c.ran(7, false, t0, &cfg);
        assert_eq!(c.waiting(t0).collect::<Vec<_>>(), vec![7], "not run again at once");
        let first = c.0[&7].0 - t0;
        c.ran(7, false, t0, &cfg);
        c.ran(7, false, t0, &cfg);
        assert!(c.0[&7].0 - t0 > first, "the wait grows: {:?} after {first:?}", c.0[&7].0 - t0);
        assert!(c.waiting(t0 + Duration::from_secs(11)).next().is_none(), "capped");
        c.ran(7, true, t0, &cfg);
        assert!(c.0.is_empty(), "a recorded outcome ends the backoff");
    }
}
