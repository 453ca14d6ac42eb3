//! Tracking (CONTRACT.md §10): what a courier's status webhook does to a shipment channeld booked.
//! Plain rules on plain data, no I/O:
//!
//! - [`events`]: Clickpost's and Shiprocket's webhook bodies read into one [`CourierEvent`], their
//!   timestamps (zoneless ones are IST) into instants;
//! - [`statuses`]: each courier's status codes as a [`ShipmentStatus`], and Clickpost's as a
//!   Shopify `FulfillmentEventStatus` (the table of §10.3);
//! - [`machine`]: one event applied to a shipment's [`TrackingRecord`]: de-duplicated by (waybill,
//!   status code, timestamp), driven by Clickpost's `latest_status`, never backwards; NDR attempts
//!   counted, RTO detected, the Shopify fulfillment events to create;
//! - [`rto`]: the `RETURN_TO_ORIGIN` return order an RTO sends to the WMS (§10.4).
//!
//! Key invariants: a shipment's status only moves forward (out for delivery ⇄ NDR being the one
//! loop, each way only for a newer event); every event received is on the timeline, applied or not,
//! with why; a Shopify step once planned keeps its index (the outbox names it by index).

pub mod events;
pub mod machine;
pub mod rto;
pub mod statuses;

use serde::{Deserialize, Serialize};

pub use events::{Courier, CourierEvent, Scan};
pub use machine::{on_event, Decision, TrackingRules};

/// Where a shipment stands (CONTRACT.md §10.2), in order: `booked` < `picked_up` < `in_transit` <
/// `out_for_delivery` ⇄ `ndr` < `delivered` | `rto` | `lost` | `damaged`, and `rto` → `rto_delivered`.
///
/// Stored (bincode, by variant index): new statuses go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    Booked,
    PickedUp,
    /// Also delayed or held on the way.
    InTransit,
    OutForDelivery,
    /// A failed delivery attempt (non-delivery report).
    Ndr,
    Delivered,
    /// Returning to origin.
    Rto,
    RtoDelivered,
    Lost,
    Damaged,
}

impl ShipmentStatus {
    pub const ALL: [ShipmentStatus; 10] = [
        ShipmentStatus::Booked,
        ShipmentStatus::PickedUp,
        ShipmentStatus::InTransit,
        ShipmentStatus::OutForDelivery,
        ShipmentStatus::Ndr,
        ShipmentStatus::Delivered,
        ShipmentStatus::Rto,
        ShipmentStatus::RtoDelivered,
        ShipmentStatus::Lost,
        ShipmentStatus::Damaged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::Booked => "booked",
            ShipmentStatus::PickedUp => "picked_up",
            ShipmentStatus::InTransit => "in_transit",
            ShipmentStatus::OutForDelivery => "out_for_delivery",
            ShipmentStatus::Ndr => "ndr",
            ShipmentStatus::Delivered => "delivered",
            ShipmentStatus::Rto => "rto",
            ShipmentStatus::RtoDelivered => "rto_delivered",
            ShipmentStatus::Lost => "lost",
            ShipmentStatus::Damaged => "damaged",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Its place in the order above (out for delivery and NDR share one).
    fn rank(self) -> u8 {
        match self {
            ShipmentStatus::Booked => 0,
            ShipmentStatus::PickedUp => 1,
            ShipmentStatus::InTransit => 2,
            ShipmentStatus::OutForDelivery | ShipmentStatus::Ndr => 3,
            ShipmentStatus::Delivered | ShipmentStatus::Rto | ShipmentStatus::Lost | ShipmentStatus::Damaged => 4,
            ShipmentStatus::RtoDelivered => 5,
        }
    }

    /// Nothing follows it (an RTO still becomes RTO delivered).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ShipmentStatus::Delivered | ShipmentStatus::RtoDelivered | ShipmentStatus::Lost | ShipmentStatus::Damaged
        )
    }
}

/// Flags a shipment can carry (shown by `shipments show`, and on its order).
pub mod flag {
    /// A failed delivery attempt was reported.
    pub const NDR: &str = "ndr";
    /// Three or more failed attempts without a later forward step.
    pub const NDR_REPEATED: &str = "ndr-repeated";
    pub const RTO: &str = "rto";
    pub const RTO_DELIVERED: &str = "rto-delivered";
    /// Its `RETURN_TO_ORIGIN` return order is queued for the WMS.
    pub const RTO_TO_WMS: &str = "rto-to-wms";
}

/// How many failed attempts make an NDR repeated (§10.4).
pub const NDR_REPEATED_AFTER: u32 = 3;

/// The most timeline entries kept per shipment: beyond, the oldest repeated deliveries go first
/// (couriers retry until answered 200), then the oldest entries (counted in `dropped`).
pub const TIMELINE_MAX: usize = 200;

/// What channeld knows of a shipment's journey: created when channeld fulfils the shipment on
/// Shopify (to keep the fulfillment's id) or when the first courier event arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackingRecord {
    pub order_id: u64,
    /// The WMS's pack `shipmentId`.
    pub shipment_id: u64,
    /// `clickpost` or `shiprocket`: which webhook may speak for it.
    pub courier: String,
    pub awb: String,
    /// The Shopify fulfillment channeld created for the shipment (`gid://shopify/Fulfillment/N`);
    /// `None` until known (a shipment fulfilled before channeld kept it is looked up once).
    pub fulfillment_id: Option<String>,
    pub status: ShipmentStatus,
    /// When the event behind `status` happened (unix ms): an event of the same rank must be newer.
    pub status_at_ms: Option<i64>,
    /// Every event received, applied or not, oldest first (at most [`TIMELINE_MAX`]).
    pub timeline: Vec<TimelineEntry>,
    /// Entries dropped from the front of the timeline to keep it bounded.
    pub dropped: u32,
    /// The Shopify fulfillment events planned, in order; an outbox call names one by its index.
    pub shopify: Vec<ShopifyStep>,
    /// Failed delivery attempts, and the last one's reason.
    pub ndr_attempts: u32,
    pub ndr_reason: String,
    /// See [`flag`].
    pub flags: Vec<String>,
    /// The newest journal record applied to it: a replay of that one, or of an older one, changes
    /// nothing (journal records are applied in order).
    pub journal_seq: u64,
    pub changed_ms: i64,
}

/// How an event was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It moved the shipment, or confirmed its status with a newer event.
    Applied,
    /// The same (status code, timestamp) was received before.
    Duplicate,
    /// It would move the shipment backwards, or is older than what is applied: recorded only.
    Stale,
    /// A status channeld does not follow (a cancellation, an exchange leg): recorded only.
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::Ignored => "ignored",
        }
    }
}

/// One event on a shipment's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub received_ms: i64,
    /// The courier's status code (Clickpost's `clickpost_status_code`, Shiprocket's
    /// `shipment_status_id`) and its name.
    pub code: u32,
    pub description: String,
    /// The courier's own words (Clickpost's `status` / `remark`, Shiprocket's `current_status`).
    pub status: String,
    pub location: String,
    /// As sent, and as an instant when it could be read.
    pub timestamp: String,
    pub at_ms: Option<i64>,
    /// The NDR reason the event gave, if any.
    pub ndr_reason: String,
    pub outcome: Outcome,
    /// Why it was taken so (shown by `shipments show`).
    pub note: String,
    /// Its de-duplication key, and that of the `latest_status` it applied instead of itself.
    pub key: String,
    pub latest_key: Option<String>,
}

/// Where a planned Shopify fulfillment event stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepState {
    Queued,
    /// The call was (or may have been) sent and its answer is not recorded: before another one,
    /// the fulfillment's events are read and an event already there counts as this one.
    InFlight,
    Done,
    /// Not sent, with why (`tracking.shopify_events` turned off meanwhile).
    Dropped(String),
}

/// One `fulfillmentEventCreate` (§10.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopifyStep {
    /// `FulfillmentEventStatus`.
    pub status: String,
    /// RFC 3339 UTC.
    pub happened_at: String,
    pub message: String,
    /// The event's `location`, as given.
    pub city: String,
    pub state: StepState,
}

impl TrackingRecord {
    pub fn new(order_id: u64, shipment_id: u64, courier: &str, awb: &str, now_ms: i64) -> Self {
        Self {
            order_id,
            shipment_id,
            courier: courier.to_string(),
            awb: awb.to_string(),
            fulfillment_id: None,
            status: ShipmentStatus::Booked,
            status_at_ms: None,
            timeline: Vec::new(),
            dropped: 0,
            shopify: Vec::new(),
            ndr_attempts: 0,
            ndr_reason: String::new(),
            flags: Vec::new(),
            journal_seq: 0,
            changed_ms: now_ms,
        }
    }

    pub fn flagged(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn flag(&mut self, flag: &str) {
        if !self.flagged(flag) {
            self.flags.push(flag.to_string());
        }
    }

    /// Whether an event with this key was taken before (as itself, or as the latest status another
    /// event carried).
    pub fn seen(&self, key: &str) -> bool {
        self.timeline
            .iter()
            .filter(|e| e.outcome != Outcome::Duplicate)
            .any(|e| e.key == key || e.latest_key.as_deref() == Some(key))
    }

    /// The last event that was applied.
    pub fn last_applied(&self) -> Option<&TimelineEntry> {
        self.timeline.iter().rev().find(|e| e.outcome == Outcome::Applied)
    }

    /// Adds an entry, keeping the timeline bounded (see [`TIMELINE_MAX`]).
    fn record(&mut self, entry: TimelineEntry) {
        self.timeline.push(entry);
        while self.timeline.len() > TIMELINE_MAX {
            let at = self.timeline.iter().position(|e| e.outcome == Outcome::Duplicate).unwrap_or(0);
            self.timeline.remove(at);
            self.dropped += 1;
        }
    }
}

/// The words Shiprocket refuses anywhere in a webhook URL (case-insensitive), as its webhook
/// settings say.
const SHIPROCKET_REFUSES: [&str; 4] = ["shiprocket", "kartrocket", "sr", "kr"];

/// The words of [`SHIPROCKET_REFUSES`] that `url` contains.
pub fn shiprocket_refuses(url: &str) -> Vec<&'static str> {
    let url = url.to_ascii_lowercase();
    SHIPROCKET_REFUSES.into_iter().filter(|w| url.contains(w)).collect()
}

/// The order's flag edits an event asks for: each `(prefix, flag)` replaces the flags starting
/// with `prefix` (one per shipment and kind, so a second NDR updates the first's line).
pub type FlagEdits = Vec<(String, String)>;

/// A courier status in words: its description, else its code (`status 27`).
pub fn status_name(code: u32, description: &str) -> String {
    if description.is_empty() {
        format!("status {code}")
    } else {
        description.to_string()
    }
}

/// Applies flag edits to an order.
pub fn flag_order(order: &mut crate::flows::model::OrderRecord, edits: &FlagEdits) {
    for (prefix, flag) in edits {
        order.flags.retain(|f| !f.starts_with(prefix.as_str()));
        order.flag(flag.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_and_rank_as_the_contract_orders_them() {
        for s in ShipmentStatus::ALL {
            assert_eq!(ShipmentStatus::parse(s.as_str()), Some(s));
        }
        use ShipmentStatus::*;
        assert!(Booked.rank() < PickedUp.rank() && PickedUp.rank() < InTransit.rank());
        assert!(InTransit.rank() < OutForDelivery.rank() && OutForDelivery.rank() == Ndr.rank());
        assert!(Ndr.rank() < Delivered.rank() && Rto.rank() < RtoDelivered.rank());
        assert!(Delivered.is_final() && !Rto.is_final() && RtoDelivered.is_final());
    }

    #[test]
    fn shiprocket_s_refused_words_are_found_anywhere_in_any_case() {
        assert!(shiprocket_refuses("https://connector.example.com/tracking/rocket").is_empty());
        assert_eq!(shiprocket_refuses("https://SRV.example.com"), ["sr"]);
        assert_eq!(shiprocket_refuses("https://shiprocket-hook.example.com"), ["shiprocket"]);
        assert_eq!(shiprocket_refuses("https://hooks.KRate.io/kartrocket"), ["kartrocket", "kr"]);
        assert_eq!(shiprocket_refuses("https://x.example.com/ops/usr"), ["sr"]);
    }

    #[test]
    fn a_flag_edit_replaces_the_line_of_its_shipment_only() {
        let mut o = crate::flows::model::OrderRecord::new(1, "#1".into(), 0);
        o.flag("ndr: shipment 8 failed delivery attempt 1: x".into());
        let edit =
            |n: u32| vec![("ndr: shipment 7 ".to_string(), format!("ndr: shipment 7 failed delivery attempt {n}: y"))];
        flag_order(&mut o, &edit(1));
        flag_order(&mut o, &edit(2));
        assert_eq!(
            o.flags,
            ["ndr: shipment 8 failed delivery attempt 1: x", "ndr: shipment 7 failed delivery attempt 2: y"]
        );
    }
}
