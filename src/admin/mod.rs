//! Admin commands (`orders`, `outbox`, `listings`, `inventory`, `returns`, `shipments`) and how they
//! reach the store; the operator console runs the very same [`execute`] for every page and action.
//!
//! sled allows one process per database. While `serve` runs, commands are sent over the unix
//! socket `{storage.path}/admin.sock` (mode 0660, never on the network) as one JSON line each way
//! and executed inside the daemon; when nothing answers there, the CLI opens the store itself
//! and executes the same [`execute`] function. Both paths therefore give the same answers.

pub mod overview;
pub mod returns;
pub mod shipments;
pub mod socket;
pub mod timeline;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::app::{now_ms, App};
use crate::flows::inventory::InventoryRow;
use crate::flows::listings::Listing;
use crate::flows::model::{EntryState, OrderRecord, OrderStatus, OutboxEntry, Placement};
use crate::store::{OrderCursor, Replay};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// One page, newest first.
    OrdersList {
        status: Option<OrderStatus>,
        #[serde(default)]
        since_ms: Option<i64>,
        /// The `next` of the previous page.
        #[serde(default)]
        before: Option<String>,
        #[serde(default = "default_limit")]
        limit: usize,
    },
    OrdersShow {
        id: String,
    },
    OrdersRetry {
        id: String,
    },
    /// One page, in queue order (by order, then by when queued); with `since_ms`, only entries
    /// queued at or after it, oldest first; with `dead_only`, only dead letters (in queue order).
    OutboxList {
        #[serde(default)]
        since_ms: Option<i64>,
        #[serde(default)]
        after: Option<String>,
        #[serde(default = "default_limit")]
        limit: usize,
        #[serde(default)]
        dead_only: bool,
    },
    /// One entry by its id, or every dead letter when `seq` is `None`.
    OutboxRetry {
        seq: Option<u64>,
    },
    /// Replace every listing (already validated by the CLI, including against Shopify).
    ListingsReplace {
        listings: Vec<Listing>,
    },
    /// One page, by SKU.
    ListingsList {
        #[serde(default)]
        after: Option<String>,
        #[serde(default = "default_limit")]
        limit: usize,
    },
    InventoryStatus,
    InventoryRelease {
        sku: String,
    },
    InventoryResync,
    JobStatuses,
    /// Alerts raised for the operator (e.g. the WMS refusing channeld's credentials).
    Alerts,
    /// One page of returns, newest first.
    ReturnsList {
        status: Option<crate::flows::returns::ReturnStatus>,
        #[serde(default)]
        before: Option<String>,
        #[serde(default = "default_limit")]
        limit: usize,
    },
    ReturnsShow {
        id: String,
    },
    ReturnsRelease {
        id: String,
    },
    ReturnsRetry {
        id: String,
    },
    /// The console's overview: counts, per-hour activity, jobs, alerts.
    Overview,
    /// How many calls are queued, pending and dead.
    OutboxCounts,
    /// One page of shipments, newest order first.
    ShipmentsList {
        status: Option<crate::flows::tracking::ShipmentStatus>,
        #[serde(default)]
        before: Option<String>,
        #[serde(default = "default_limit")]
        limit: usize,
    },
    /// One shipment with its tracking timeline (`id`: the WMS's shipmentId or an AWB).
    ShipmentsShow {
        id: String,
    },
}

/// How many rows a list answers when not told.
pub const DEFAULT_LIMIT: usize = 100;

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

/// One page of a list: its rows, and where the next page starts (`None` on the last page).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// A page of at most `limit` rows read as `limit + 1`: the extra row only says there is more.
    fn of(mut rows: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(cursor) } else { None };
        Self { items: rows, next }
    }
}

/// `inventory status`: rows waiting to be pushed, and quarantined rows with Shopify's reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryStatusView {
    pub pending: Vec<InventoryRow>,
    pub quarantined: Vec<InventoryRow>,
    pub total_rows: usize,
}

/// What a command answers: data for the CLI to print, or an error message.
pub type Response = Result<serde_json::Value, String>;

/// An order as `orders list` / `orders show` print it (no personal data beyond the order name).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderView {
    pub id: u64,
    pub name: String,
    pub status: OrderStatus,
    pub reasons: Vec<String>,
    pub flags: Vec<String>,
    pub wms_created: bool,
    pub cancelled: bool,
    pub location_code: Option<String>,
    pub items: Vec<ItemView>,
    pub first_seen: String,
    pub changed: String,
    /// The order's returns (`orders show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub returns: Vec<returns::ReturnSummary>,
    /// The order's shipments with their last status (`orders show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shipments: Vec<shipments::ShipmentSummary>,
    /// The calls still queued for it, pending or dead (`orders show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<EntryView>,
    /// Everything known to have happened to it, oldest first (`orders show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<timeline::TimelineEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemView {
    pub sku: String,
    pub order_item_code: String,
    pub quantity: u32,
}

/// An outbox entry as `outbox list` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryView {
    pub id: u64,
    pub order_id: u64,
    pub call: String,
    pub state: String,
    pub attempts: u32,
    /// When it was queued.
    #[serde(default)]
    pub queued: String,
    pub next_attempt: String,
    pub last_error: Option<String>,
}

/// Runs one command. Store work runs on a blocking thread; whatever a command changes is durable
/// before it answers.
pub async fn execute(app: &Arc<App>, req: Request) -> Response {
    match req {
        Request::OrdersRetry { id } => crate::services::orders::retry_order(app, &id)
            .await
            .map(serde_json::Value::String)
            .map_err(|e| e.to_string()),
        Request::ListingsReplace { listings } => match crate::services::replace_listings(app, listings).await {
            Ok(change) => to_json(&change),
            Err(e) => Err(e.to_string()),
        },
        req => {
            let wake = matches!(
                req,
                Request::OutboxRetry { .. } | Request::ReturnsRelease { .. } | Request::ReturnsRetry { .. }
            );
            let app = app.clone();
            let answer = tokio::task::spawn_blocking({
                let app = app.clone();
                move || execute_blocking(&app, req)
            })
            .await
            .unwrap_or_else(|e| Err(format!("the command failed: {e}")));
            if wake {
                app.outbox_wake.notify_one();
            }
            answer
        }
    }
}

fn execute_blocking(app: &App, req: Request) -> Response {
    let store = &app.store;
    let err = |e: crate::store::StoreError| e.to_string();
    let changed = |answer: Response| -> Response {
        store.sync_state_blocking().map_err(err)?;
        answer
    };
    match req {
        Request::OrdersList { status, since_ms, before, limit } => {
            let cursor = match before.as_deref() {
                Some(c) => Some(OrderCursor::parse(c).ok_or_else(|| format!("--before {c:?} is not a page cursor"))?),
                None => None,
            };
            let rows = store.orders_page(status, since_ms, cursor, limit + 1).map_err(err)?;
            let page = Page::of(rows, limit, |r| OrderCursor::of(r).to_string());
            to_json(&Page { items: page.items.iter().map(order_view).collect::<Vec<_>>(), next: page.next })
        }
        Request::OrdersShow { id } => match store.find_order(&id).map_err(err)? {
            Some(rec) => {
                let known = timeline::OrderReads::of(app, rec.id).map_err(err)?;
                to_json(&OrderView {
                    returns: returns::summaries(&known.returns),
                    shipments: shipments::summaries(app, &known.shipments),
                    outbox: known.queued.iter().map(entry_view).collect(),
                    timeline: known.timeline(&rec),
                    ..order_view(&rec)
                })
            }
            None => Err(format!("no order {id} is stored")),
        },
        Request::OrdersRetry { .. } => Err("orders retry runs in the async path".into()),
        Request::OutboxList { since_ms: Some(since_ms), after, limit, .. } => {
            let after = match after.as_deref() {
                Some(c) => {
                    Some(parse_triple(c).ok_or_else(|| format!("--after {c:?} is not a page cursor of --since"))?)
                }
                None => None,
            };
            let rows = store.outbox_since(since_ms, after, limit + 1).map_err(err)?;
            let page = Page::of(rows, limit, |e| format!("{}:{}:{}", e.created_ms, e.order_id, e.seq));
            to_json(&Page { items: page.items.iter().map(entry_view).collect::<Vec<_>>(), next: page.next })
        }
        Request::OutboxList { since_ms: None, after, limit, dead_only } => {
            let after = match after.as_deref() {
                Some(c) => Some(parse_pair(c).ok_or_else(|| format!("--after {c:?} is not a page cursor"))?),
                None => None,
            };
            let rows = if dead_only {
                store.outbox_dead_page(after, limit + 1).map_err(err)?
            } else {
                store.outbox_page(after, limit + 1).map_err(err)?
            };
            let page = Page::of(rows, limit, |e| format!("{}:{}", e.order_id, e.seq));
            to_json(&Page { items: page.items.iter().map(entry_view).collect::<Vec<_>>(), next: page.next })
        }
        Request::OutboxRetry { seq } => {
            let which = seq.map_or(Replay::AllDead, Replay::One);
            let n = store.replay_entries(which, now_ms()).map_err(err)?;
            changed(Ok(serde_json::Value::String(format!("{n} call(s) queued again"))))
        }
        Request::ListingsReplace { .. } => Err("listings are replaced in the async path".into()),
        Request::ListingsList { after, limit } => {
            let rows = store.listings_page(after.as_deref(), limit + 1).map_err(err)?;
            to_json(&Page::of(rows, limit, |l| l.sku.clone()))
        }
        Request::InventoryStatus => {
            let rows = store.inventory_rows().map_err(err)?;
            let total_rows = rows.len();
            let (quarantined, rest): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.quarantine.is_some());
            let pending = rest.into_iter().filter(InventoryRow::is_pending).collect();
            to_json(&InventoryStatusView { pending, quarantined, total_rows })
        }
        Request::InventoryRelease { sku } => {
            let n = store.release_sku(&sku).map_err(err)?;
            if n == 0 {
                return Err(format!("no quarantined row for SKU {sku}"));
            }
            changed(Ok(serde_json::Value::String(format!("{n} row(s) of {sku} released; pushed at the next run"))))
        }
        Request::JobStatuses => to_json(&store.job_statuses().map_err(err)?),
        Request::Alerts => to_json(&store.alerts().map_err(err)?),
        Request::InventoryResync => {
            let n = store.resync_inventory().map_err(err)?;
            changed(Ok(serde_json::Value::String(format!("{n} row(s) will be pushed again at the next run"))))
        }
        Request::ReturnsList { status, before, limit } => returns::list(app, status, before.as_deref(), limit),
        Request::ReturnsShow { id } => returns::show(app, &id),
        Request::ReturnsRelease { id } => returns::release(app, &id),
        Request::ReturnsRetry { id } => returns::retry(app, &id),
        Request::ShipmentsList { status, before, limit } => shipments::list(app, status, before.as_deref(), limit),
        Request::ShipmentsShow { id } => shipments::show(app, &id),
        Request::Overview => overview::overview(app),
        Request::OutboxCounts => to_json(&store.outbox_counts().map_err(err)?),
    }
}

/// An outbox cursor: `{order id}:{entry id}` (and a shipments cursor: `{order id}:{shipment id}`).
fn parse_pair(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// An outbox cursor of `--since`: `{queued at ms}:{order id}:{entry id}`.
fn parse_triple(s: &str) -> Option<(i64, u64, u64)> {
    let mut parts = s.trim().split(':');
    let cursor = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    parts.next().is_none().then_some(cursor)
}

fn to_json<T: Serialize>(v: &T) -> Response {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(crate::flows::fmt_time).unwrap_or_default()
}

fn order_view(r: &OrderRecord) -> OrderView {
    OrderView {
        id: r.id,
        name: r.name.clone(),
        status: r.status,
        reasons: r.reasons.clone(),
        flags: r.flags.clone(),
        wms_created: r.wms_created,
        cancelled: r.cancelled,
        location_code: match &r.placement {
            Placement::Decided { location_code, .. } => location_code.clone(),
            Placement::Pending => None,
        },
        items: r
            .wms
            .iter()
            .flat_map(|w| &w.items)
            .map(|i| ItemView { sku: i.sku.clone(), order_item_code: i.item_code.clone(), quantity: i.quantity })
            .collect(),
        first_seen: time(r.first_seen_ms),
        changed: time(r.changed_ms),
        returns: Vec::new(),
        shipments: Vec::new(),
        outbox: Vec::new(),
        timeline: Vec::new(),
    }
}

fn entry_view(e: &OutboxEntry) -> EntryView {
    EntryView {
        id: e.seq,
        order_id: e.order_id,
        call: e.task.kind().to_string(),
        state: match e.state {
            EntryState::Pending => "pending",
            EntryState::Dead => "dead",
        }
        .to_string(),
        attempts: e.attempts,
        queued: time(e.created_ms),
        next_attempt: time(e.next_attempt_ms),
        last_error: e.last_error.clone(),
    }
}
