//! The shared application context, and the order services built on it that both the HTTP
//! handlers and the admin commands call: record a webhook, re-run an order.
//!
//! [`App`] is created once and shared as `Arc<App>`; it owns no background task itself, so the
//! same context serves `serve` and a one-shot CLI command that opened the store directly.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Config;
use crate::flows::intake::{self, Topic};
use crate::flows::model::OrderStatus;
use crate::flows::OrderRules;
use crate::remote::CallError;
use crate::shopify::order::parse_webhook_body;
use crate::shopify::ShopifyClient;
use crate::store::{Ingested, Store, StoreError};
use crate::wms::WmsClient;

pub struct App {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub wms: WmsClient,
    pub shopify: ShopifyClient,
    pub shipping: crate::shipping::Shipping,
    pub rules: OrderRules,
    /// Woken whenever new outbox work is stored, so the worker does not wait for its next tick.
    pub outbox_wake: Notify,
    /// Set once the server listens and its workers run (`/readyz`).
    pub ready: AtomicBool,
    /// When the store-derived gauges were last computed (unix ms): they need a scan.
    gauges_at: AtomicI64,
}

/// How long store-derived gauges (orders by status, inventory rows, jobs) may be reused.
const GAUGES_TTL_MS: i64 = 30_000;

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

impl App {
    pub fn new(cfg: Config, store: Store) -> anyhow::Result<Arc<Self>> {
        let now = now_ms();
        let since_ms = match cfg.orders.since_time()? {
            Some(t) => t.timestamp_millis(),
            None => store.first_start_ms(now)?,
        };
        let shipping = crate::shipping::Shipping::new(&cfg)?;
        if let Some((token, at)) = store.courier_token("shiprocket")? {
            shipping.shiprocket.seed_token(crate::config::Secret::new(token), at);
        }
        Ok(Arc::new(Self {
            shipping,
            wms: WmsClient::new(&cfg.wms)?,
            shopify: ShopifyClient::new(&cfg)?,
            rules: OrderRules::new(&cfg.orders, since_ms),
            cfg: Arc::new(cfg),
            store,
            outbox_wake: Notify::new(),
            ready: AtomicBool::new(false),
            gauges_at: AtomicI64::new(0),
        }))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Records a verified webhook durably and returns once it is on disk. The WMS is never called
    /// from here: the outbox worker is woken instead.
    pub async fn ingest_webhook(
        &self,
        topic: Topic,
        event_key: Option<&str>,
        body: &[u8],
    ) -> Result<Ingested, IngestError> {
        let (id, order) =
            parse_webhook_body(body).ok_or(IngestError::BadRequest("body is not JSON with a numeric id"))?;
        let now = now_ms();
        let result = {
            let order = order.as_ref().map_err(String::as_str);
            self.store.record_event(topic.as_str(), event_key, id, body, now, |existing| {
                intake::apply(existing, topic, id, order, &self.rules, now)
            })?
        };
        self.store.durable().await?;
        if let Ingested::Applied { status, outcome, queued } = &result {
            if *status == OrderStatus::Rejected {
                tracing::warn!(order = id, topic = topic.as_str(), "order rejected; see `channeld orders show {id}`");
            } else {
                tracing::info!(order = id, topic = topic.as_str(), outcome, queued, "webhook recorded");
            }
            metrics::counter!("channeld_orders_total", "outcome" => *outcome).increment(1);
            if *queued > 0 {
                self.outbox_wake.notify_one();
            }
        }
        Ok(result)
    }

    /// Re-fetches an order from Shopify and runs it again (`orders retry`). Returns what happened.
    pub async fn retry_order(&self, id_or_name: &str) -> Result<String, RetryError> {
        let id = match self.store.find_order(id_or_name)? {
            Some(rec) if rec.wms_created => {
                return Ok(format!("order {} is already at the WMS: nothing to do", rec.id))
            }
            Some(rec) => rec.id,
            None => id_or_name.trim().parse::<u64>().map_err(|_| {
                RetryError::NotFound(format!(
                    "no order {id_or_name} is stored; give its numeric Shopify id to fetch it"
                ))
            })?,
        };
        let order = self
            .shopify
            .order(id)
            .await?
            .ok_or_else(|| RetryError::NotFound(format!("Shopify does not know order {id}")))?;
        let now = now_ms();
        let result =
            self.store.record_event("orders/retry", None, id, b"(fetched by orders retry)", now, |existing| {
                intake::rerun(existing, &order, &self.rules, now)
            })?;
        let replayed = self.store.replay_order_dead(id, now)?;
        self.store.durable().await?;
        self.outbox_wake.notify_one();
        Ok(match result {
            Ingested::Applied { status, outcome, queued } => format!(
                "order {id}: {outcome}, now {}; {queued} call(s) queued, {replayed} dead call(s) replayed",
                status.as_str()
            ),
            Ingested::Duplicate => format!("order {id}: nothing to do"),
        })
    }
}

impl App {
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
        if let Ok(jobs) = self.store.job_statuses() {
            for (job, s) in jobs {
                metrics::gauge!("channeld_job_last_run_timestamp_seconds", "job" => job.clone())
                    .set(s.last_run_ms as f64 / 1000.0);
                metrics::gauge!("channeld_job_last_success", "job" => job).set(if s.ok { 1.0 } else { 0.0 });
            }
        }
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
