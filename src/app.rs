//! The shared application context: configuration, the store, the clients of every external
//! party, and what the workers share. The operations built on it are in `services`.
//!
//! [`App`] is created once and shared as `Arc<App>`; it owns no background task itself (`serve`
//! starts them, and hands it the scheduler's handle), so the same context serves `serve` and a
//! one-shot CLI command that opened the store directly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{watch, Mutex, Notify};
use tokio_cron_scheduler::JobScheduler;

use crate::config::Config;
use crate::courier::Couriers;
use crate::flows::shipment::Booked;
use crate::flows::OrderRules;
use crate::shopify::ShopifyClient;
use crate::store::Store;
use crate::wms::WmsClient;

pub struct App {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub wms: WmsClient,
    pub shopify: ShopifyClient,
    pub couriers: Couriers,
    /// Bookings under way, by shipment id: a repeated pack call joins the running one.
    pub bookings: Mutex<HashMap<u64, watch::Receiver<Option<Booked>>>>,
    pub rules: OrderRules,
    /// Woken whenever new outbox work is stored, so the worker does not wait for its next tick.
    pub outbox_wake: Notify,
    /// Set once the server listens and its workers run (`/readyz`).
    pub ready: AtomicBool,
    /// The job scheduler, once `serve` started it. Stopping it stops every scheduled job, and its
    /// watcher then stops the daemon (`jobs::Scheduler::watch_loop`).
    pub scheduler: OnceLock<JobScheduler>,
    /// Why a worker that must run is not running (it panicked or ended): not ready.
    stopped_worker: std::sync::Mutex<Option<String>>,
    /// The WMS refused our credentials and the alert for `doctor` is raised.
    pub wms_auth_alert: AtomicBool,
    /// When store-derived gauges were last computed (unix ms): they need a scan.
    gauges_at: AtomicI64,
    /// Webhook acknowledgement latency per hour (the console's chart; in memory).
    pub ack_latency: crate::telemetry::AckLatency,
    /// Where the console listens, once `serve` bound it (tests bind port 0 and read it here).
    pub console_addr: OnceLock<std::net::SocketAddr>,
}

/// How long store-derived gauges (orders by status, inventory rows, jobs) may be reused.
const GAUGES_TTL_MS: i64 = 30_000;

impl App {
    /// The context over an open store. Use `services::open`, which also replays the journal.
    pub fn new(cfg: Config, store: Store) -> anyhow::Result<Arc<Self>> {
        let now = now_ms();
        let since_ms = match cfg.orders.since_time()? {
            Some(t) => t.timestamp_millis(),
            None => store.first_start_ms(now)?,
        };
        let couriers = Couriers::new(&cfg)?;
        let store_alert = store.alerts()?.iter().any(|(name, _)| name == "wms_credentials");
        if let Some((token, at)) = store.courier_token("shiprocket")? {
            couriers.shiprocket.seed_token(crate::config::Secret::new(token), at);
        }
        Ok(Arc::new(Self {
            couriers,
            bookings: Mutex::new(HashMap::new()),
            wms: WmsClient::new(&cfg.wms)?,
            shopify: ShopifyClient::new(&cfg)?,
            rules: OrderRules::new(&cfg.orders, since_ms),
            cfg: Arc::new(cfg),
            store,
            outbox_wake: Notify::new(),
            ready: AtomicBool::new(false),
            scheduler: OnceLock::new(),
            stopped_worker: std::sync::Mutex::new(None),
            wms_auth_alert: AtomicBool::new(store_alert),
            gauges_at: AtomicI64::new(0),
            ack_latency: crate::telemetry::AckLatency::default(),
            console_addr: OnceLock::new(),
        }))
    }

    /// Serving, with every worker running and a store that can write; else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if let Some(why) = self.stopped_worker() {
            return Err(why);
        }
        if !self.ready.load(Ordering::Acquire) {
            return Err("starting".into());
        }
        self.store.can_write().map_err(|why| format!("the store cannot write: {why}"))
    }
}

impl App {
    /// Records that a worker stopped (see `server::run`); the first reason is kept.
    pub fn worker_stopped(&self, why: String) {
        if let Ok(mut w) = self.stopped_worker.lock() {
            w.get_or_insert(why);
        }
    }

    pub fn stopped_worker(&self) -> Option<String> {
        self.stopped_worker.lock().ok().and_then(|w| w.clone())
    }

    /// Sets the gauges that come from counting stored records (orders by status, inventory rows,
    /// last job runs), at most once per [`GAUGES_TTL_MS`]: counting means a scan.
    pub fn refresh_gauges(&self) {
        let now = now_ms();
        let last = self.gauges_at.load(Ordering::Relaxed);
        if now - last < GAUGES_TTL_MS
            || self.gauges_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        if let Ok(counts) = self.store.order_counts() {
            for (status, n) in counts {
                metrics::gauge!("channeld_orders", "status" => status.as_str()).set(n as f64);
            }
        }
        if let Ok(rows) = self.store.inventory_rows() {
            let count = |f: &dyn Fn(&crate::flows::inventory::InventoryRow) -> bool| {
                rows.iter().filter(|r| f(r)).count() as f64
            };
            metrics::gauge!("channeld_inventory_rows", "state" => "pending").set(count(&|r| r.is_pending()));
            metrics::gauge!("channeld_inventory_rows", "state" => "quarantined")
                .set(count(&|r| r.quarantine.is_some()));
            metrics::gauge!("channeld_inventory_rows", "state" => "pushed")
                .set(count(&|r| r.pushed == Some(r.desired)));
        }
        if self.cfg.returns.enabled {
            self.return_gauges(now);
        }
        if self.cfg.tracking.enabled {
            self.shipment_gauges();
        }
        if let Ok(jobs) = self.store.job_statuses() {
            for (job, s) in jobs {
                metrics::gauge!("channeld_job_last_run_timestamp_seconds", "job" => job.clone())
                    .set(s.last_run_ms as f64 / 1000.0);
                metrics::gauge!("channeld_job_last_success", "job" => job).set(if s.ok { 1.0 } else { 0.0 });
            }
        }
    }

    /// `channeld_shipments{status}`: booked shipments by tracking status (their index entries, not
    /// their records).
    fn shipment_gauges(&self) {
        if let Ok(counts) = self.store.shipment_status_counts() {
            for status in crate::flows::tracking::ShipmentStatus::ALL {
                let n = counts.get(status.as_str()).copied().unwrap_or(0);
                metrics::gauge!("channeld_shipments", "status" => status.as_str()).set(n as f64);
            }
        }
    }

    /// `channeld_returns{status}` and `channeld_returns_stale` (returns are few: one pass).
    fn return_gauges(&self, now: i64) {
        if let Ok((by_status, stale)) = self.store.return_counts(self.cfg.returns.stale_after_days, now) {
            for (status, n) in by_status {
                metrics::gauge!("channeld_returns", "status" => status.as_str()).set(n as f64);
            }
            metrics::gauge!("channeld_returns_stale").set(stale as f64);
        }
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
