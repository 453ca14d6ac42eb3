//! How one Shopify event changes an order, and which outbound calls it queues.
//!
//! The webhook handler runs [`apply`] inside the store transaction that also records the event id,
//! so deciding and remembering are one atomic step. Guarantees kept here:
//! - one Shopify order never queues a second WMS creation (a known order's `orders/create` is a no-op);
//! - updates forward only on-hold and dispatch-by changes, and never an update older than one applied;
//! - a cancellation before the order reached the WMS sends neither (the queued creation sees
//!   `cancelled` when its turn comes, and the cancellation sees that nothing was created);
//! - once a creation may have reached the WMS (an attempt that did not end in a clear answer,
//!   [`CREATION_UNCONFIRMED`](super::model::CREATION_UNCONFIRMED)), a cancellation is always sent.

use super::model::{OrderRecord, OrderStatus, Placement, Task, WmsSnapshot, CLOSED_ON_SHOPIFY};
use super::order_map::{self, address_digest, items_of, properties, Evaluation};
use super::{parse_time, OrderRules};
use crate::config::Routing;
use crate::flows::shopify_order::ShopifyOrder;
use crate::flows::wms_order::{CancelledItem, CreateOutwardOrder, CustomerCancellation, UpdateOrderProperties};

/// The three webhook topics channeld subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Create,
    Updated,
    Cancelled,
}

impl Topic {
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Create => "orders/create",
            Topic::Updated => "orders/updated",
            Topic::Cancelled => "orders/cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Topic::Create, Topic::Updated, Topic::Cancelled].into_iter().find(|t| t.as_str() == s)
    }

    /// The webhook path Shopify posts this topic to (kept from the existing integration).
    pub fn path(self) -> &'static str {
        match self {
            Topic::Create => "/shopify/api/push/orders",
            Topic::Updated => "/shopify/api/push/orderUpdate",
            Topic::Cancelled => "/shopify/api/push/orderCancel",
        }
    }
}

/// The result of applying an event: the order as it is now and the calls to queue, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub record: OrderRecord,
    pub tasks: Vec<Task>,
    /// A short word for logs and metrics: `queued`, `rejected`, `update`, `not_forwarded`, ...
    pub outcome: &'static str,
    /// Changes made on Shopify after creation that this event showed for the first time and that
    /// are not forwarded to the WMS (`address`, `lines`, `refund`): flagged on the order, logged
    /// and counted.
    pub not_forwarded: Vec<&'static str>,
}

/// Why an order under id 0 is refused: Shopify never gives that id, and the WMS would get order
/// code "0". It is stored as rejected (every topic), so it is seen, never lost and never sent.
const ID_ZERO: &str = "order id 0 is not a Shopify order id (nothing is sent for it)";

/// Applies one event. `order` is `Err(reason)` when the body had an id but could not be read.
pub fn apply(
    existing: Option<OrderRecord>,
    topic: Topic,
    id: u64,
    order: Result<&ShopifyOrder, &str>,
    rules: &OrderRules,
    now_ms: i64,
) -> Change {
    let order = match order {
        Ok(_) if id == 0 => return unreadable(existing, id, ID_ZERO, now_ms),
        Ok(o) => o,
        Err(reason) => return unreadable(existing, id, reason, now_ms),
    };
    match (topic, existing) {
        (Topic::Cancelled, rec) => cancel(rec, order, now_ms),
        (_, None) => admit(OrderRecord::new(id, order.name.clone(), now_ms), order, rules, now_ms),
        // A rejected order is never sent: its creation event validates it again (reconciliation
        // may have recorded it, unmappable, before its webhook came).
        (Topic::Create, Some(rec)) if rec.status == OrderStatus::Rejected => admit(rec, order, rules, now_ms),
        (Topic::Create, Some(rec)) => unchanged(rec),
        (Topic::Updated, Some(rec)) if !order.cancelled_at.is_empty() => cancel(Some(rec), order, now_ms),
        (Topic::Updated, Some(rec)) => update(rec, order, rules, now_ms),
    }
}

/// `orders retry`: runs an order fetched from Shopify again. A new, rejected or skipped order goes
/// through the new-order flow (rules or data may have changed); an order already queued forwards
/// hold/SLA changes like an update; a sent or cancelled order is left as it is.
pub fn rerun(existing: Option<OrderRecord>, order: &ShopifyOrder, rules: &OrderRules, now_ms: i64) -> Change {
    if order.id == 0 {
        return unreadable(existing, 0, ID_ZERO, now_ms);
    }
    match existing {
        None => admit(OrderRecord::new(order.id, order.name.clone(), now_ms), order, rules, now_ms),
        Some(rec) if matches!(rec.status, OrderStatus::Rejected | OrderStatus::Skipped) => {
            admit(rec, order, rules, now_ms)
        }
        Some(rec) if rec.wms_created || rec.cancelled => unchanged(rec),
        Some(rec) if !order.cancelled_at.is_empty() => cancel(Some(rec), order, now_ms),
        Some(rec) => update(rec, order, rules, now_ms),
    }
}

fn unchanged(record: OrderRecord) -> Change {
    Change { record, tasks: Vec::new(), outcome: "duplicate", not_forwarded: Vec::new() }
}

fn unreadable(existing: Option<OrderRecord>, id: u64, reason: &str, now_ms: i64) -> Change {
    match existing {
        Some(mut rec) => {
            rec.flag(format!("an event could not be read: {reason}"));
            rec.changed_ms = now_ms;
            Change { record: rec, tasks: Vec::new(), outcome: "unreadable", not_forwarded: Vec::new() }
        }
        None => {
            let mut rec = OrderRecord::new(id, String::new(), now_ms);
            rec.status = OrderStatus::Rejected;
            rec.reasons = vec![reason.to_string()];
            Change { record: rec, tasks: Vec::new(), outcome: "rejected", not_forwarded: Vec::new() }
        }
    }
}

/// The new-order flow: skip, reject, or accept and queue the creation.
fn admit(mut rec: OrderRecord, order: &ShopifyOrder, rules: &OrderRules, now_ms: i64) -> Change {
    rec.name = order.name.clone();
    rec.changed_ms = now_ms;
    rec.last_updated_ms = parse_time(&order.updated_at).map(|t| t.timestamp_millis());
    if !order.cancelled_at.is_empty() {
        rec.cancelled = true;
        rec.status = OrderStatus::Cancelled;
        rec.reasons = vec!["cancelled on Shopify before it was sent".into()];
        return Change { record: rec, tasks: Vec::new(), outcome: "cancelled", not_forwarded: Vec::new() };
    }
    match order_map::evaluate(order, rules) {
        Evaluation::Skip(reasons) => {
            rec.status = OrderStatus::Skipped;
            rec.reasons = reasons;
            Change { record: rec, tasks: Vec::new(), outcome: "skipped", not_forwarded: Vec::new() }
        }
        Evaluation::Reject(reasons) => {
            rec.status = OrderStatus::Rejected;
            rec.reasons = reasons;
            Change { record: rec, tasks: Vec::new(), outcome: "rejected", not_forwarded: Vec::new() }
        }
        Evaluation::Accept(m) => {
            rec.status = OrderStatus::Queued;
            rec.reasons.clear();
            rec.placement = match rules.routing {
                Routing::Shopify => Placement::Pending,
                _ => {
                    Placement::Decided { location_code: m.body.location_code.clone(), split: m.body.is_split_required }
                }
            };
            rec.wms = Some(WmsSnapshot {
                create_body: serde_json::to_string(&m.body).unwrap_or_default(),
                items: m.items,
                on_hold: m.body.on_hold,
                dispatch_by: m.body.dispatch_by_time.clone(),
                start_processing: m.body.start_processing_time.clone(),
                address_digest: m.address_digest,
                refunds_seen: order.refunds.len() as u32,
                cod_amount: if order.total_outstanding > 0.0 { order.total_outstanding } else { order.total_price },
            });
            Change { record: rec, tasks: vec![Task::WmsCreate], outcome: "queued", not_forwarded: Vec::new() }
        }
    }
}

fn update(mut rec: OrderRecord, order: &ShopifyOrder, rules: &OrderRules, now_ms: i64) -> Change {
    match rec.status {
        OrderStatus::Rejected => return admit(rec, order, rules, now_ms),
        OrderStatus::Skipped | OrderStatus::Cancelled => return unchanged(rec),
        OrderStatus::Received | OrderStatus::Queued | OrderStatus::Sent => {}
    }
    let updated_ms = parse_time(&order.updated_at).map(|t| t.timestamp_millis());
    if let (Some(last), Some(new)) = (rec.last_updated_ms, updated_ms) {
        if new < last {
            return Change { record: rec, tasks: Vec::new(), outcome: "stale", not_forwarded: Vec::new() };
        }
    }
    rec.last_updated_ms = updated_ms.or(rec.last_updated_ms);
    rec.changed_ms = now_ms;
    // Closed (archived) on Shopify: fulfilment is over there, so what it needed may be pruned
    // after the retention (reopened: needed again).
    if order.closed_at.is_empty() {
        rec.unflag(CLOSED_ON_SHOPIFY);
    } else {
        rec.flag(CLOSED_ON_SHOPIFY.to_string());
    }
    let (Some(snap), Some(props)) = (rec.wms.as_mut(), properties(order, rules)) else {
        return Change { record: rec, tasks: Vec::new(), outcome: "ignored", not_forwarded: Vec::new() };
    };
    let mut tasks = Vec::new();
    if props.on_hold != snap.on_hold || props.dispatch_by != snap.dispatch_by {
        snap.on_hold = props.on_hold;
        snap.dispatch_by = props.dispatch_by.clone();
        let body = UpdateOrderProperties {
            on_hold: props.on_hold,
            dispatch_by_time: props.dispatch_by,
            start_processing_time: snap.start_processing.clone(),
        };
        tasks.push(Task::WmsUpdate { body: serde_json::to_string(&body).unwrap_or_default() });
    }
    let mut flags = Vec::new();
    if address_digest(order, rules) != snap.address_digest {
        flags.push(("address", "address changed on Shopify after creation (not forwarded to the WMS)"));
    }
    let now_items: Vec<(String, u32)> = items_of(order).into_iter().map(|i| (i.sku, i.quantity)).collect();
    // Units the WMS itself cancelled are expected to be gone on Shopify.
    let seller_cancelled = |code: &str| rec.seller_cancelled.iter().find(|(c, _)| c == code).map_or(0, |(_, q)| *q);
    let sent_items: Vec<(String, u32)> = snap
        .items
        .iter()
        .map(|i| (i.sku.clone(), i.quantity - seller_cancelled(&i.item_code).min(i.quantity)))
        .filter(|(_, q)| *q > 0)
        .collect();
    if now_items != sent_items {
        flags.push(("lines", "line items changed on Shopify after creation (not forwarded to the WMS)"));
    }
    if order.refunds.len() as u32 > snap.refunds_seen {
        snap.refunds_seen = order.refunds.len() as u32;
        flags.push(("refund", "refund on Shopify after creation (not forwarded to the WMS)"));
    }
    let mut not_forwarded = Vec::new();
    for (kind, flag) in flags {
        // A flag already on the order was reported when it first appeared.
        if !rec.flags.iter().any(|f| f == flag) {
            not_forwarded.push(kind);
        }
        rec.flag(flag.to_string());
    }
    let outcome = match (tasks.is_empty(), not_forwarded.is_empty()) {
        (false, _) => "update",
        (true, false) => "not_forwarded",
        (true, true) => "no_change",
    };
    Change { record: rec, tasks, outcome, not_forwarded }
}

fn cancel(existing: Option<OrderRecord>, order: &ShopifyOrder, now_ms: i64) -> Change {
    let mut rec = match existing {
        Some(rec) if rec.cancelled => return unchanged(rec),
        Some(rec) => rec,
        None => {
            // Remembered so that a late `orders/create` is not sent either.
            let mut rec = OrderRecord::new(order.id, order.name.clone(), now_ms);
            rec.cancelled = true;
            rec.status = OrderStatus::Cancelled;
            rec.reasons = vec!["cancelled before channeld saw its creation".into()];
            return Change { record: rec, tasks: Vec::new(), outcome: "cancelled", not_forwarded: Vec::new() };
        }
    };
    let was_queued =
        matches!(rec.status, OrderStatus::Received | OrderStatus::Queued | OrderStatus::Sent) || rec.may_be_at_wms();
    rec.cancelled = true;
    rec.status = OrderStatus::Cancelled;
    rec.changed_ms = now_ms;
    // A cancellation channeld made itself for the WMS (seller cancellation) is not sent back to it.
    let tasks = if was_queued && !rec.seller_cancelled_all { vec![Task::WmsCancel] } else { Vec::new() };
    Change { record: rec, tasks, outcome: "cancelled", not_forwarded: Vec::new() }
}

/// The Create Outward Order to send now, or `None` when the creation must not be sent
/// (cancelled meanwhile, or no snapshot).
pub fn create_body(rec: &OrderRecord) -> Option<CreateOutwardOrder> {
    if rec.cancelled {
        return None;
    }
    let mut body: CreateOutwardOrder = serde_json::from_str(&rec.wms.as_ref()?.create_body).ok()?;
    if let Placement::Decided { location_code, split } = &rec.placement {
        body.location_code = location_code.clone();
        body.is_split_required = *split;
    }
    Some(body)
}

/// The Customer Cancellation to send now, or `None` when the WMS cannot have the order (no
/// creation was sent, or every one was clearly refused).
pub fn cancel_body(rec: &OrderRecord) -> Option<CustomerCancellation> {
    if !rec.may_be_at_wms() {
        return None;
    }
    let location_code = match &rec.placement {
        Placement::Decided { location_code, .. } => location_code.clone(),
        Placement::Pending => None,
    };
    let order_items = rec
        .wms
        .as_ref()?
        .items
        .iter()
        .map(|i| CancelledItem {
            channel_sku_code: i.sku.clone(),
            order_item_code: i.item_code.clone(),
            cancelled_quantity: i.quantity,
        })
        .collect();
    Some(CustomerCancellation { location_code, order_items })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::tests::{fixture_order, rules};

    fn run(existing: Option<OrderRecord>, topic: Topic, order: &ShopifyOrder) -> Change {
        apply(existing, topic, order.id, Ok(order), &rules(), 1)
    }

    #[test]
    fn create_queues_once() {
        let o = fixture_order();
        let c = run(None, Topic::Create, &o);
        assert_eq!((c.record.status, c.tasks.clone()), (OrderStatus::Queued, vec![Task::WmsCreate]));
        let again = run(Some(c.record), Topic::Create, &o);
        assert!(again.tasks.is_empty());
    }

    #[test]
    fn a_creation_event_for_a_rejected_order_validates_it_again() {
        let o = fixture_order();
        let unmapped = apply(None, Topic::Updated, o.id, Err("reconciliation could not map it"), &rules(), 1).record;
        assert_eq!(unmapped.status, OrderStatus::Rejected);
        let c = run(Some(unmapped), Topic::Create, &o);
        assert_eq!((c.record.status, c.tasks), (OrderStatus::Queued, vec![Task::WmsCreate]));
    }

    #[test]
    fn update_for_unknown_order_runs_creation() {
        let c = run(None, Topic::Updated, &fixture_order());
        assert_eq!(c.tasks, vec![Task::WmsCreate]);
    }

    #[test]
    fn hold_tag_sends_one_update_note_change_sends_none() {
        let mut o = fixture_order();
        let created = run(None, Topic::Create, &o).record;
        o.updated_at = "2008-01-10T12:00:00-05:00".into();
        let c = run(Some(created.clone()), Topic::Updated, &o);
        assert!(c.tasks.is_empty(), "{:?}", c.tasks);
        o.tags = "on-hold".into();
        let c = run(Some(c.record), Topic::Updated, &o);
        match &c.tasks[..] {
            [Task::WmsUpdate { body }] => assert!(body.contains("\"onHold\":true"), "{body}"),
            other => panic!("{other:?}"),
        }
        // The same hold again changes nothing.
        assert!(run(Some(c.record), Topic::Updated, &o).tasks.is_empty());
    }

    #[test]
    fn stale_update_is_ignored() {
        let mut o = fixture_order();
        o.updated_at = "2008-01-10T13:00:00-05:00".into();
        let created = run(None, Topic::Create, &o).record;
        o.updated_at = "2008-01-10T12:00:00-05:00".into();
        o.tags = "on-hold".into();
        let c = run(Some(created), Topic::Updated, &o);
        assert_eq!((c.outcome, c.tasks.len()), ("stale", 0));
    }

    #[test]
    fn other_changes_are_flagged_not_sent() {
        let mut o = fixture_order();
        let created = run(None, Topic::Create, &o).record;
        o.shipping_address.as_mut().unwrap().city = "Lexington".into();
        o.updated_at = "2008-01-11T11:00:00-05:00".into();
        let c = run(Some(created), Topic::Updated, &o);
        assert!(c.tasks.is_empty());
        assert!(c.record.flags.iter().any(|f| f.contains("address")), "{:?}", c.record.flags);
        // Logged and counted under what changed, not as "no change".
        assert_eq!((c.outcome, c.not_forwarded.clone()), ("not_forwarded", vec!["address"]));
        // The same change seen again was reported already.
        o.updated_at = "2008-01-11T12:00:00-05:00".into();
        let again = run(Some(c.record), Topic::Updated, &o);
        assert_eq!((again.outcome, again.not_forwarded), ("no_change", vec![]));
    }

    #[test]
    fn rejected_order_is_validated_again_on_update() {
        let mut o = fixture_order();
        o.shipping_address = None;
        let rejected = run(None, Topic::Create, &o).record;
        assert_eq!(rejected.status, OrderStatus::Rejected);
        let c = run(Some(rejected), Topic::Updated, &fixture_order());
        assert_eq!((c.record.status, c.tasks), (OrderStatus::Queued, vec![Task::WmsCreate]));
    }

    #[test]
    fn cancel_before_delivery_sends_nothing() {
        let o = fixture_order();
        let queued = run(None, Topic::Create, &o).record;
        let c = run(Some(queued), Topic::Cancelled, &o);
        assert_eq!(c.tasks, vec![Task::WmsCancel]);
        // When the queued tasks run: no creation (cancelled), no cancellation (never created).
        assert!(create_body(&c.record).is_none());
        assert!(cancel_body(&c.record).is_none());
    }

    #[test]
    fn cancel_after_an_unconfirmed_creation_is_sent_whatever_the_status() {
        let o = fixture_order();
        let mut queued = run(None, Topic::Create, &o).record;
        queued.flag(crate::flows::model::CREATION_UNCONFIRMED.into());
        let c = run(Some(queued.clone()), Topic::Cancelled, &o);
        assert_eq!(c.tasks, vec![Task::WmsCancel]);
        assert!(create_body(&c.record).is_none(), "the creation is not sent again");
        assert_eq!(cancel_body(&c.record).unwrap().order_items[0].cancelled_quantity, 1);
        // Refused on a later attempt: rejected, but the earlier attempt may still have arrived.
        queued.status = OrderStatus::Rejected;
        let c = run(Some(queued), Topic::Cancelled, &o);
        assert_eq!(c.tasks, vec![Task::WmsCancel]);
        assert!(cancel_body(&c.record).is_some());
    }

    #[test]
    fn cancel_after_delivery_cancels_every_item_fully() {
        let o = fixture_order();
        let mut sent = run(None, Topic::Create, &o).record;
        sent.wms_created = true;
        sent.status = OrderStatus::Sent;
        sent.placement = Placement::Decided { location_code: Some("WH-1".into()), split: false };
        let c = run(Some(sent), Topic::Cancelled, &o);
        let body = cancel_body(&c.record).unwrap();
        assert_eq!(body.location_code.as_deref(), Some("WH-1"));
        assert_eq!(body.order_items.len(), 1);
        assert_eq!(body.order_items[0].cancelled_quantity, 1);
        // A second cancellation event changes nothing.
        assert!(run(Some(c.record), Topic::Cancelled, &o).tasks.is_empty());
    }

    #[test]
    fn cancellation_of_unknown_order_blocks_late_creation() {
        let o = fixture_order();
        let c = run(None, Topic::Cancelled, &o);
        assert!(c.tasks.is_empty());
        assert!(run(Some(c.record), Topic::Create, &o).tasks.is_empty());
    }

    #[test]
    fn rerun_revalidates_rejected_and_leaves_sent_alone() {
        let mut o = fixture_order();
        o.shipping_address = None;
        let rejected = run(None, Topic::Create, &o).record;
        let c = rerun(Some(rejected), &fixture_order(), &rules(), 2);
        assert_eq!(c.tasks, vec![Task::WmsCreate]);
        let mut sent = c.record;
        sent.wms_created = true;
        sent.status = OrderStatus::Sent;
        assert!(rerun(Some(sent), &fixture_order(), &rules(), 3).tasks.is_empty());
    }

    #[test]
    fn order_id_0_is_a_rejection_on_every_topic() {
        let mut o = fixture_order();
        o.id = 0;
        for topic in [Topic::Create, Topic::Updated, Topic::Cancelled] {
            let c = apply(None, topic, 0, Ok(&o), &rules(), 1);
            assert_eq!((c.record.status, c.tasks.len()), (OrderStatus::Rejected, 0), "{topic:?}");
            assert!(c.record.reasons[0].contains("id 0"), "{:?}", c.record.reasons);
        }
        assert_eq!(rerun(None, &o, &rules(), 1).record.status, OrderStatus::Rejected);
    }

    #[test]
    fn unreadable_body_is_a_rejection_not_a_loss() {
        let c = apply(None, Topic::Create, 5, Err("bad"), &rules(), 1);
        assert_eq!((c.record.id, c.record.status), (5, OrderStatus::Rejected));
    }
}
