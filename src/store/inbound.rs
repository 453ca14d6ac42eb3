//! What the journal holds: every inbound event channeld acknowledges, one record each, as it
//! arrived. Applying a record again (a replay after a crash) must change nothing that applying it
//! once did not: each kind is idempotent by its own key (the webhook's event id, the WMS call's
//! absolute quantities, the shipment id), and its time is the record's, never the replay's.

use serde::{Deserialize, Serialize};

/// One journal record. Bodies are kept as text: they were read as JSON before being accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Inbound {
    /// A verified Shopify webhook (topic as Shopify names it, e.g. `orders/create`).
    Webhook { topic: String, event_key: Option<String>, received_ms: i64, body: String },
    /// A `/wms/*` call that records something.
    Wms { call: WmsCall, received_ms: i64, body: String },
    /// The outbox is about to send an order's creation: from now on it may be at the WMS (so a
    /// cancellation is always sent), with where Shopify routed it. Journaled rather than
    /// checkpointed: a record costs one shared `fdatasync`, a checkpoint holds up every write.
    Sending { order_id: u64, placement: Option<crate::flows::model::Placement>, received_ms: i64 },
    /// The listings replaced as a whole by the operator (`listings import` / `discover`).
    Listings { received_ms: i64, listings: Vec<crate::flows::listings::Listing> },
    /// A webhook body moved out of the `raw_events` tree of an older store: kept for support and
    /// export, never applied.
    Legacy { topic: String, received_ms: i64, body: String },
    /// A courier's status webhook (`/tracking/*`) for a shipment channeld booked; `courier` as
    /// shipments name their provider (`clickpost`, `shiprocket`). Idempotent by the event's
    /// (waybill, status code, timestamp).
    Tracking { courier: String, received_ms: i64, body: String },
}

/// The WMS calls whose effect is journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WmsCall {
    Inventory,
    SellerCancel,
    Pack,
    Handover,
    /// A return's QC acknowledgement (`/wms/returns/acknowledgement`).
    ReturnAck,
}

impl Inbound {
    /// When it arrived (unix ms).
    pub fn received_ms(&self) -> i64 {
        match self {
            Inbound::Webhook { received_ms, .. }
            | Inbound::Wms { received_ms, .. }
            | Inbound::Listings { received_ms, .. }
            | Inbound::Sending { received_ms, .. }
            | Inbound::Legacy { received_ms, .. }
            | Inbound::Tracking { received_ms, .. } => *received_ms,
        }
    }

    /// The raw webhook body and its topic, for support and export (WMS calls carry none; a
    /// courier's webhook is `tracking/{courier}`).
    pub fn webhook_body(&self) -> Option<(&str, &str)> {
        match self {
            Inbound::Webhook { topic, body, .. } | Inbound::Legacy { topic, body, .. } => Some((topic, body)),
            Inbound::Tracking { courier, body, .. } => Some((tracking_topic(courier), body)),
            Inbound::Wms { .. } | Inbound::Listings { .. } | Inbound::Sending { .. } => None,
        }
    }
}

/// The topic under which a courier's webhook bodies are exported.
fn tracking_topic(courier: &str) -> &'static str {
    match courier {
        "shiprocket" => "tracking/shiprocket",
        _ => "tracking/clickpost",
    }
}
