//! The stored domain records: an order as channeld knows it, and the outbound work queued for it.
//!
//! These are plain data. `store` encodes them (with a format version) and `flows` decides how they
//! change; neither needs the other's internals. Payload bodies are kept as JSON text rather than
//! typed values because the record codec (bincode) cannot carry `serde_json::Value`.

use serde::{Deserialize, Serialize};

/// Where an order stands, as `orders list --status` shows it (CONTRACT.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Stored; waiting for Shopify's routing to assign a location before it can be sent.
    Received,
    /// Creation is queued in the outbox for the WMS.
    Queued,
    /// The WMS has the order.
    Sent,
    /// Failed validation: never sent; every reason is kept.
    Rejected,
    /// Cancelled on Shopify (before or after it reached the WMS).
    Cancelled,
    /// Not for the WMS: a test order, nothing to ship, or created before `orders.since`.
    Skipped,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Received,
        OrderStatus::Queued,
        OrderStatus::Sent,
        OrderStatus::Rejected,
        OrderStatus::Cancelled,
        OrderStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Received => "received",
            OrderStatus::Queued => "queued",
            OrderStatus::Sent => "sent",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One WMS order item as it was queued at creation, remembered for cancellations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentItem {
    pub sku: String,
    /// The `orderItemCode` sent: the first Shopify line id carrying this SKU.
    pub item_code: String,
    pub quantity: u32,
    /// The Shopify lines behind this item, with their quantities at creation, first line first
    /// (Increff takes each SKU once, so lines sharing a SKU are merged into one item).
    pub lines: Vec<(u64, u32)>,
}

/// What channeld queued for the WMS when it accepted the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WmsSnapshot {
    /// The Create Outward Order body (JSON), without the routed location.
    pub create_body: String,
    pub items: Vec<SentItem>,
    /// The last on-hold value queued for the WMS.
    pub on_hold: bool,
    /// The last dispatch-by time queued for the WMS (RFC 3339 UTC).
    pub dispatch_by: String,
    pub start_processing: String,
    /// Shipping and billing address as mapped, to notice changes that are not forwarded.
    pub address_digest: String,
    pub refunds_seen: u32,
    /// What a COD courier collects: the order's outstanding amount, else its total.
    pub cod_amount: f64,
}

/// The routed WMS location of an order, once decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placement {
    /// Not decided yet (routing = shopify: asked when the creation is sent).
    Pending,
    Decided {
        location_code: Option<String>,
        split: bool,
    },
}

/// An order as channeld knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub id: u64,
    /// Shopify's order name, e.g. `#1001`.
    pub name: String,
    pub status: OrderStatus,
    /// Why the order is rejected or skipped (every reason, not only the first).
    pub reasons: Vec<String>,
    /// Changes seen after creation that are not forwarded to the WMS.
    pub flags: Vec<String>,
    /// Shopify `updated_at` of the newest update applied (unix ms), to ignore stale updates.
    pub last_updated_ms: Option<i64>,
    pub wms: Option<WmsSnapshot>,
    pub placement: Placement,
    /// The WMS acknowledged the creation: updates and cancellations may follow.
    pub wms_created: bool,
    /// Shopify says the order is cancelled.
    pub cancelled: bool,
    /// Units the WMS cancelled (seller cancellation), absolute per `orderItemCode`, as last accepted.
    pub seller_cancelled: Vec<(String, u32)>,
    /// The WMS cancelled every unit: Shopify's `orders/cancelled` echo is not sent back to it.
    pub seller_cancelled_all: bool,
    pub first_seen_ms: i64,
    pub changed_ms: i64,
}

/// The flag of an order whose creation may have reached the WMS without channeld knowing: an
/// attempt timed out, failed in transit or with a 5xx, or was cut short by a crash (it is set,
/// durably, before each creation is sent, and taken off again when the WMS answers clearly).
/// While it is set a customer cancellation is always sent (the WMS answering that it does not
/// know the order counts as done), so an order the customer cancelled is never shipped because
/// its creation's answer was lost. A flag rather than a field: the stored record keeps its
/// format, so an older channeld still reads the store.
pub const CREATION_UNCONFIRMED: &str = "a creation was sent to the WMS without a clear answer (timeout, network \
     error, 5xx or a crash): the WMS may hold the order, so a cancellation is always sent to it";

/// The flag of an order closed (archived) on Shopify: nothing will fulfil it any more, so its
/// addresses and prices, and after the retention the order itself, may go (retention). A flag,
/// like [`CREATION_UNCONFIRMED`], so the stored record keeps its shape.
pub const CLOSED_ON_SHOPIFY: &str = "closed on Shopify";

impl OrderRecord {
    /// What the WMS holds of this order, when a WMS call about it is acceptable: its creation was
    /// acknowledged, or is in flight — the WMS naming the order proves the creation arrived even
    /// when channeld has not recorded the answer yet (or lost it to a timeout).
    pub fn at_wms(&self) -> Option<&WmsSnapshot> {
        let in_flight = (self.status == OrderStatus::Queued || self.creation_unconfirmed()) && !self.cancelled;
        self.wms.as_ref().filter(|_| self.wms_created || in_flight)
    }

    /// A creation was sent without a clear answer: the WMS may hold the order
    /// ([`CREATION_UNCONFIRMED`]).
    pub fn creation_unconfirmed(&self) -> bool {
        self.flags.iter().any(|f| f == CREATION_UNCONFIRMED)
    }

    /// Closed on Shopify ([`CLOSED_ON_SHOPIFY`]).
    pub fn closed_on_shopify(&self) -> bool {
        self.flags.iter().any(|f| f == CLOSED_ON_SHOPIFY)
    }

    /// The WMS has the order, or may have it: a cancellation must reach it.
    pub fn may_be_at_wms(&self) -> bool {
        self.wms_created || self.creation_unconfirmed()
    }

    /// Takes a flag off.
    pub fn unflag(&mut self, flag: &str) {
        self.flags.retain(|f| f != flag);
    }

    pub fn new(id: u64, name: String, now_ms: i64) -> Self {
        Self {
            id,
            name,
            status: OrderStatus::Received,
            reasons: Vec::new(),
            flags: Vec::new(),
            last_updated_ms: None,
            wms: None,
            placement: Placement::Pending,
            wms_created: false,
            cancelled: false,
            seller_cancelled: Vec::new(),
            seller_cancelled_all: false,
            first_seen_ms: now_ms,
            changed_ms: now_ms,
        }
    }

    /// Adds a flag once (repeated updates carrying the same change do not pile up).
    pub fn flag(&mut self, flag: String) {
        if !self.flags.contains(&flag) {
            self.flags.push(flag);
        }
    }
}

/// One unit of outbound work for an order. Bodies that depend on what happened before (the routed
/// location, what the WMS acknowledged) are built when the task runs, not when it is queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// Create Outward Order from the order's snapshot.
    WmsCreate,
    /// Update Order Properties with this JSON body.
    WmsUpdate { body: String },
    /// Customer Cancellation of every item sent at creation.
    WmsCancel,
    /// Seller cancellation of every unit: `orderCancel` on Shopify.
    ShopifyCancelOrder,
    /// Seller cancellation of some units: an order edit setting these Shopify lines to these
    /// absolute quantities, then (when configured) a refund of `refund` units per line.
    ShopifyEditLines { lines: Vec<(u64, u32)>, refund: Vec<(u64, u32)> },
    /// Refund money for cancelled units, with the transactions Shopify suggested before the edit
    /// removed them (JSON list of `OrderTransactionInput`, each tagged `currency` when the order's
    /// presentment currency is not the shop's). Its `@idempotent` key derives from the entry's seq.
    ShopifyRefund { transactions: String },
    /// Tell Shopify a shipment left: `fulfillmentCreate` with its tracking number.
    ShopifyFulfill { shipment_id: u64 },
    /// Create Return Order at the WMS for each receiving location of a Shopify return (built from
    /// the return as first read; retries resend it unchanged).
    WmsReturn { return_id: u64 },
    /// `returnProcess` on Shopify for the units QC'd by acknowledgement `ack` (and any earlier).
    ShopifyProcessReturn { return_id: u64, ack: u32 },
    /// `returnClose` once every unit passed and is processed.
    ShopifyCloseReturn { return_id: u64 },
    /// `fulfillmentEventCreate` for step `step` (an index in the shipment's tracking record) of
    /// shipment `shipment_id` of the entry's order (tracking, CONTRACT.md §10.3).
    ShopifyFulfillmentEvent { shipment_id: u64, step: u32 },
}

impl Task {
    pub fn kind(&self) -> &'static str {
        match self {
            Task::WmsCreate => "wms_create",
            Task::WmsUpdate { .. } => "wms_update",
            Task::WmsCancel => "wms_cancel",
            Task::ShopifyCancelOrder => "shopify_cancel",
            Task::ShopifyEditLines { .. } => "shopify_edit",
            Task::ShopifyRefund { .. } => "shopify_refund",
            Task::ShopifyFulfill { .. } => "shopify_fulfill",
            Task::WmsReturn { .. } => "wms_return",
            Task::ShopifyProcessReturn { .. } => "shopify_return_process",
            Task::ShopifyCloseReturn { .. } => "shopify_return_close",
            Task::ShopifyFulfillmentEvent { .. } => "shopify_fulfillment_event",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryState {
    Pending,
    /// Gave up (a refusal, or `outbox.max_attempts` used): waits for `outbox retry`.
    Dead,
}

/// A queued outbound call. Entries of one order run strictly in `seq` order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Unique and increasing across the store's life (sled's id generator).
    pub seq: u64,
    pub order_id: u64,
    pub task: Task,
    pub state: EntryState,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub created_ms: i64,
}

impl OutboxEntry {
    pub fn new(seq: u64, order_id: u64, task: Task, now_ms: i64) -> Self {
        Self {
            seq,
            order_id,
            task,
            state: EntryState::Pending,
            attempts: 0,
            next_attempt_ms: now_ms,
            last_error: None,
            created_ms: now_ms,
        }
    }
}
