//! An order's timeline for `orders show` and the console: everything channeld knows happened to
//! it, oldest first — the order's log (webhooks and what came of them, outbound calls and their
//! answers, seller cancellations, replays), calls still queued or dead-lettered, shipments, the
//! handover and returns.
//!
//! [`build`] is a pure function over records the caller read by order id (each keyed by order, so
//! nothing here walks a whole tree); [`OrderReads`] does those reads.

use serde::{Deserialize, Serialize};

use super::time;
use crate::app::App;
use crate::flows::model::{EntryState, OrderRecord, OutboxEntry};
use crate::flows::returns::ReturnRecord;
use crate::flows::shipment::{ShipmentRecord, ShipmentState};
use crate::store::{HandoverRecord, OrderEvent};

/// One thing that happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at_ms: i64,
    /// RFC 3339 UTC.
    pub at: String,
    /// `webhook`, `wms`, `shopify`, `cancellation`, `queued`, `dead`, `shipment`, `handover`,
    /// `return` or `order`: what the line is about, for grouping and styling.
    pub kind: String,
    pub text: String,
}

fn entry(at_ms: i64, kind: &str, text: String) -> TimelineEntry {
    TimelineEntry { at_ms, at: time(at_ms), kind: kind.to_string(), text }
}

/// What a log line is about, from how it starts.
fn kind_of(what: &str) -> &'static str {
    if what.starts_with("webhook ") {
        "webhook"
    } else if what.starts_with("wms_") {
        "wms"
    } else if what.starts_with("shopify_") {
        "shopify"
    } else if what.starts_with("seller cancellation") {
        "cancellation"
    } else {
        "order"
    }
}

/// The records behind a timeline, as read by order id.
pub struct Known<'a> {
    pub order: &'a OrderRecord,
    pub events: &'a [OrderEvent],
    pub queued: &'a [OutboxEntry],
    pub shipments: &'a [ShipmentRecord],
    pub handover: Option<&'a HandoverRecord>,
    pub returns: &'a [ReturnRecord],
}

/// The timeline, oldest first (lines at the same moment keep the order above).
pub fn build(k: &Known<'_>) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    let o = k.order;
    if !k.events.iter().any(|e| e.at_ms == o.first_seen_ms) {
        out.push(entry(o.first_seen_ms, "order", format!("first seen by channeld ({})", o.name)));
    }
    out.extend(k.events.iter().map(|e| entry(e.at_ms, kind_of(&e.what), e.what.clone())));
    for e in k.queued {
        out.push(queued(e));
    }
    for s in k.shipments {
        out.extend(shipment(s));
    }
    if let Some(h) = k.handover {
        out.extend(handover(h));
    }
    for r in k.returns {
        out.extend(returned(r));
    }
    out.sort_by_key(|e| e.at_ms);
    out
}

fn queued(e: &OutboxEntry) -> TimelineEntry {
    let kind = e.task.kind();
    let error = e.last_error.as_deref().map(|m| format!("; last error: {m}")).unwrap_or_default();
    match e.state {
        EntryState::Dead => entry(
            e.created_ms,
            "dead",
            format!("{kind} dead-lettered after {} attempt(s) (entry {}){error}", e.attempts, e.seq),
        ),
        EntryState::Pending => entry(
            e.created_ms,
            "queued",
            format!(
                "{kind} queued (entry {}), {} attempt(s), next at {}{error}",
                e.seq,
                e.attempts,
                time(e.next_attempt_ms)
            ),
        ),
    }
}

fn shipment(s: &ShipmentRecord) -> Vec<TimelineEntry> {
    let id = s.shipment_id;
    let mut out =
        vec![entry(s.created_ms, "shipment", format!("pack call: shipment {id}, to book with {}", s.provider))];
    match &s.state {
        ShipmentState::Booking => {
            out.push(entry(s.updated_ms, "shipment", format!("shipment {id}: booking under way")))
        }
        ShipmentState::Booked => {
            let label = if s.label_url.is_empty() { "label not yet available" } else { "label available" };
            out.push(entry(
                s.updated_ms,
                "shipment",
                format!("shipment {id} booked: AWB {} ({}), {label}", s.awb, s.transporter),
            ));
        }
        ShipmentState::Failed(why) => {
            out.push(entry(s.updated_ms, "shipment", format!("shipment {id}: the courier refused: {why}")))
        }
    }
    out
}

fn handover(h: &HandoverRecord) -> Vec<TimelineEntry> {
    let codes = h.shipment_codes.join(", ");
    let mut out =
        vec![entry(h.first_ms, "handover", format!("handed over at {} (shipments {codes})", h.location_code))];
    if let Some(at) = h.archived_ms {
        out.push(entry(at, "handover", "archived (closed) on Shopify".into()));
    } else if let Some(e) = &h.last_error {
        out.push(entry(h.first_ms, "handover", format!("archiving on Shopify failed so far: {e}")));
    }
    out
}

fn returned(r: &ReturnRecord) -> Vec<TimelineEntry> {
    let name = if r.name.is_empty() { r.id.to_string() } else { r.name.clone() };
    let mut out = vec![entry(r.first_seen_ms, "return", format!("return {name} approved on Shopify"))];
    if r.changed_ms > r.first_seen_ms {
        out.push(entry(r.changed_ms, "return", format!("return {name} is {}", r.status.as_str())));
    }
    out
}

/// What `orders show` reads of an order, each by the order's id: the timeline is built from all of
/// it, and the queued calls, shipments and returns are also listed on their own (read once for both).
pub(super) struct OrderReads {
    pub events: Vec<OrderEvent>,
    pub queued: Vec<OutboxEntry>,
    pub shipments: Vec<ShipmentRecord>,
    pub handover: Option<HandoverRecord>,
    pub returns: Vec<ReturnRecord>,
}

impl OrderReads {
    pub(super) fn of(app: &App, order_id: u64) -> Result<Self, crate::store::StoreError> {
        let store = &app.store;
        Ok(Self {
            events: store.order_events(order_id)?,
            queued: store.order_entries(order_id)?,
            shipments: store.order_shipments(order_id)?,
            handover: store.handover(order_id)?,
            returns: store.returns_of_order(order_id)?,
        })
    }

    pub(super) fn timeline(&self, order: &OrderRecord) -> Vec<TimelineEntry> {
        build(&Known {
            order,
            events: &self.events,
            queued: &self.queued,
            shipments: &self.shipments,
            handover: self.handover.as_ref(),
            returns: &self.returns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::model::Task;

    #[test]
    fn every_source_is_merged_oldest_first() {
        let order = OrderRecord::new(7, "#1007".into(), 1_000);
        let events = [
            OrderEvent { at_ms: 1_000, what: "webhook orders/create: queued".into() },
            OrderEvent { at_ms: 3_000, what: "wms_create delivered".into() },
            OrderEvent { at_ms: 9_000, what: "seller cancellation from the WMS: nothing more to cancel".into() },
        ];
        let mut dead = OutboxEntry::new(12, 7, Task::WmsCancel, 8_000);
        (dead.state, dead.attempts, dead.last_error) = (EntryState::Dead, 3, Some("400 no".into()));
        let handover = HandoverRecord {
            order_id: 7,
            location_code: "WH-1".into(),
            shipment_codes: vec!["42".into()],
            first_ms: 5_000,
            archived_ms: Some(6_000),
            last_error: None,
        };
        let lines = build(&Known {
            order: &order,
            events: &events,
            queued: std::slice::from_ref(&dead),
            shipments: &[],
            handover: Some(&handover),
            returns: &[],
        });
        let kinds: Vec<(&str, i64)> = lines.iter().map(|l| (l.kind.as_str(), l.at_ms)).collect();
        assert_eq!(
            kinds,
            [
                ("webhook", 1_000),
                ("wms", 3_000),
                ("handover", 5_000),
                ("handover", 6_000),
                ("dead", 8_000),
                ("cancellation", 9_000)
            ]
        );
        assert!(lines[4].text.contains("wms_cancel dead-lettered after 3 attempt(s) (entry 12); last error: 400 no"));
        // Without a log line at its first sight (a store from before the log), that is a line.
        let bare =
            build(&Known { order: &order, events: &[], queued: &[], shipments: &[], handover: None, returns: &[] });
        assert_eq!(bare.len(), 1);
        assert_eq!(bare[0].text, "first seen by channeld (#1007)");
    }
}
