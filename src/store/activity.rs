//! `activity`: what happened, for the operator console — per hour, how many orders arrived and how
//! many entered each status; per order, a short log of what channeld did about it.
//!
//! Keys (one tree, two key spaces):
//! - `h` ‖ hour start (ms, BE) ‖ kind ‖ shard → count (i64 BE). Kind 0 is "received" (first seen),
//!   kind 1 + status code is "entered that status". Sharded by order id like `order_counts`, so
//!   concurrent outbox outcomes rarely touch the same counter. Written in the same transaction as
//!   the order change it counts (a replay applies the same change once: counted once), and kept
//!   for [`KEEP_HOURS`]: at most 8 days × 7 kinds × [`SHARDS`] small keys, so reading a week is a
//!   few thousand keys whatever the store holds.
//! - `e` ‖ order id (BE) ‖ at (ms, BE) ‖ tag (u32 BE) → one line of text: a webhook and what came
//!   of it, an outbound call's outcome, a seller cancellation, an operator's replay. The tag is a
//!   checksum of what the event is about, so writing the same event twice (a journal record
//!   applied again) leaves one. An order's lines go with the order (retention).
//!
//! What the console shows beside these lines (shipments, the handover, returns, calls still
//! queued) is read from their own trees, which are keyed by order already.

use sled::transaction::{TransactionalTree, UnabortableTransactionError};

use super::order_index::{code as status_code, Indexed};
use super::{be, codec, Result, Store};
use crate::flows::model::{OrderRecord, OrderStatus};

/// Hour counters older than this are pruned: the console charts seven days.
pub const KEEP_HOURS: i64 = 8 * 24;
/// An hour, the unit of the console's counters and charts.
pub const HOUR_MS: i64 = 3_600_000;
const SHARDS: u64 = 4;
const HOURS: u8 = b'h';
const EVENTS: u8 = b'e';
/// The most log lines kept per order: an order updated on Shopify every few minutes for months
/// must not grow without bound (the oldest go first).
pub(super) const MAX_EVENTS: usize = 200;
/// The longest line kept (another service's error text is cut).
const MAX_EVENT_CHARS: usize = 600;

/// The kind byte of "entered `status`".
fn entered(status: OrderStatus) -> u8 {
    1 + status_code(status)
}
const RECEIVED: u8 = 0;

/// The start of the hour `at_ms` falls in.
pub fn hour_of(at_ms: i64) -> i64 {
    at_ms.max(0) / HOUR_MS * HOUR_MS
}

fn hour_key(hour_ms: i64, kind: u8, shard: u8) -> [u8; 11] {
    let mut k = [0u8; 11];
    k[0] = HOURS;
    k[1..9].copy_from_slice(&be(hour_ms.max(0) as u64));
    k[9] = kind;
    k[10] = shard;
    k
}

fn event_key(order_id: u64, at_ms: i64, tag: u32) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[0] = EVENTS;
    k[1..9].copy_from_slice(&be(order_id));
    k[9..17].copy_from_slice(&be(at_ms.max(0) as u64));
    k[17..].copy_from_slice(&tag.to_be_bytes());
    k
}

fn order_prefix(order_id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = EVENTS;
    k[1..].copy_from_slice(&be(order_id));
    k
}

fn read_i64(v: &[u8]) -> i64 {
    v.try_into().map_or(0, i64::from_be_bytes)
}

fn bump(
    activity: &TransactionalTree,
    hour_ms: i64,
    kind: u8,
    order_id: u64,
) -> std::result::Result<(), UnabortableTransactionError> {
    let key = hour_key(hour_ms, kind, (order_id % SHARDS) as u8);
    let n = activity.get(key)?.as_deref().map_or(0, read_i64) + 1;
    activity.insert(&key, &n.to_be_bytes())?;
    Ok(())
}

/// Counts an order change made at `at_ms`: a new order is "received", and an order whose status
/// changed "entered" its new one. Call it beside `reindex`, in the same transaction.
pub(super) fn count_change(
    activity: &TransactionalTree,
    before: Option<Indexed>,
    after: &OrderRecord,
    at_ms: i64,
) -> std::result::Result<(), UnabortableTransactionError> {
    let hour = hour_of(at_ms);
    if before.is_none() {
        bump(activity, hour, RECEIVED, after.id)?;
    }
    if before.map(|b| b.status()) != Some(after.status) {
        bump(activity, hour, entered(after.status), after.id)?;
    }
    Ok(())
}

/// One line of an order's log, in a transaction. `about` names the event (a webhook's topic and
/// id, an outbox entry and attempt) and makes a repeat of it land on the same key.
pub(super) fn note(
    activity: &TransactionalTree,
    order_id: u64,
    at_ms: i64,
    about: &str,
    what: &str,
) -> std::result::Result<(), UnabortableTransactionError> {
    let (key, value) = event_entry(order_id, at_ms, about, what);
    activity.insert(&key, value)?;
    Ok(())
}

/// The key and value of a line of an order's log (the text cut to [`MAX_EVENT_CHARS`]).
fn event_entry(order_id: u64, at_ms: i64, about: &str, what: &str) -> ([u8; 21], Vec<u8>) {
    let mut text = what.to_string();
    super::cut_text(&mut text, MAX_EVENT_CHARS);
    let value = codec::encode(&text).unwrap_or_else(|_| vec![codec::FORMAT_VERSION, 0]);
    (event_key(order_id, at_ms, crc32fast::hash(about.as_bytes())), value)
}

/// One hour of the activity counters, every shard summed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HourCounts {
    /// The hour's start (unix ms, UTC).
    pub hour_ms: i64,
    /// Orders first seen in that hour.
    pub received: u64,
    /// Orders that entered each status in that hour, in [`OrderStatus::ALL`] order.
    pub entered: [u64; 6],
}

impl HourCounts {
    pub fn entered(&self, status: OrderStatus) -> u64 {
        self.entered[status_code(status) as usize]
    }
}

/// One stored activity record, as an export carries it.
pub(super) enum Record {
    Hour { hour_ms: i64, kind: u8, shard: u8, count: i64 },
    Event { order_id: u64, at_ms: i64, tag: u32, what: String },
}

/// One line of an order's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderEvent {
    pub at_ms: i64,
    pub what: String,
}

impl Store {
    /// The hours from `since_ms` on, oldest first; hours with nothing are left out.
    pub fn activity_hours(&self, since_ms: i64) -> Result<Vec<HourCounts>> {
        let from = hour_key(hour_of(since_ms), 0, 0);
        let mut out: Vec<HourCounts> = Vec::new();
        for item in self.inner.activity.range(from.to_vec()..vec![HOURS + 1]) {
            let (k, v) = item?;
            let Some(hour_ms) = k.get(1..9).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes) else { continue };
            let hour_ms = hour_ms as i64;
            if out.last().is_none_or(|h| h.hour_ms != hour_ms) {
                out.push(HourCounts { hour_ms, ..HourCounts::default() });
            }
            let (hour, n) = (out.last_mut().expect("pushed above"), read_i64(&v).max(0) as u64);
            match k.get(9).copied() {
                Some(RECEIVED) => hour.received += n,
                Some(kind) => {
                    if let Some(slot) = hour.entered.get_mut(usize::from(kind) - 1) {
                        *slot += n;
                    }
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// An order's log, oldest first.
    pub fn order_events(&self, order_id: u64) -> Result<Vec<OrderEvent>> {
        let mut out = Vec::new();
        for item in self.inner.activity.scan_prefix(order_prefix(order_id)) {
            let (k, v) = item?;
            let at_ms = k.get(9..17).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes) as i64;
            out.push(OrderEvent { at_ms, what: codec::decode(&v)? });
        }
        Ok(out)
    }

    /// Adds a line to an order's log outside any other write (an operator's command). Keeps at
    /// most [`MAX_EVENTS`] lines per order.
    pub fn note_order_event(&self, order_id: u64, at_ms: i64, about: &str, what: &str) -> Result<()> {
        let (key, value) = event_entry(order_id, at_ms, about, what);
        self.inner.activity.insert(key, value)?;
        self.trim_events(order_id)
    }

    /// Drops an order's oldest lines beyond [`MAX_EVENTS`].
    pub(super) fn trim_events(&self, order_id: u64) -> Result<()> {
        let keys = self.event_keys(order_id)?;
        for k in keys.iter().take(keys.len().saturating_sub(MAX_EVENTS)) {
            self.inner.activity.remove(k)?;
        }
        Ok(())
    }

    /// The keys of an order's log (read before the transaction removing the order: sled's
    /// transactions cannot scan).
    pub(super) fn event_keys(&self, order_id: u64) -> Result<Vec<sled::IVec>> {
        Ok(self.inner.activity.scan_prefix(order_prefix(order_id)).keys().collect::<std::result::Result<_, _>>()?)
    }

    /// Removes hour counters of hours that began before `before_ms`. Returns how many.
    pub(super) fn prune_activity(&self, before_ms: i64) -> Result<usize> {
        let activity = &self.inner.activity;
        let mut removed = 0;
        for key in activity.range(hour_key(0, 0, 0)..hour_key(hour_of(before_ms), 0, 0)).keys() {
            activity.remove(key?)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Every activity record, for export.
    pub(super) fn each_activity(&self, mut each: impl FnMut(Record) -> Result<()>) -> Result<()> {
        let at = |k: &[u8]| k.try_into().map_or(0, u64::from_be_bytes);
        for item in self.inner.activity.iter() {
            let (k, v) = item?;
            match (k.first().copied(), k.len()) {
                (Some(HOURS), 11) => {
                    each(Record::Hour { hour_ms: at(&k[1..9]) as i64, kind: k[9], shard: k[10], count: read_i64(&v) })?
                }
                (Some(EVENTS), 21) => each(Record::Event {
                    order_id: at(&k[1..9]),
                    at_ms: at(&k[9..17]) as i64,
                    tag: k[17..21].try_into().map_or(0, u32::from_be_bytes),
                    what: codec::decode(&v)?,
                })?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Restores one exported hour counter.
    pub(super) fn restore_hour(&self, hour_ms: i64, kind: u8, shard: u8, count: i64) -> Result<()> {
        self.inner.activity.insert(hour_key(hour_ms, kind, shard), &count.to_be_bytes())?;
        Ok(())
    }

    /// Restores one exported log line.
    pub(super) fn restore_event(&self, order_id: u64, at_ms: i64, tag: u32, what: &str) -> Result<()> {
        self.inner.activity.insert(event_key(order_id, at_ms, tag), codec::encode(&what.to_string())?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::intake::{apply, Topic};
    use crate::flows::tests::{fixture_order, rules};

    fn ingest(store: &Store, id: u64, at_ms: i64, event: &str) {
        let mut order = fixture_order();
        order.id = id;
        order.name = format!("#{id}");
        store
            .record_event("orders/create", Some(event), id, at_ms, |existing| {
                apply(existing, Topic::Create, id, Ok(&order), &rules(), at_ms)
            })
            .unwrap();
    }

    #[test]
    fn orders_are_counted_per_hour_as_they_arrive_and_change_status_and_logged_per_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        let h = 1_000 * HOUR_MS;
        ingest(&store, 1, h + 5, "a");
        ingest(&store, 2, h + 10, "b");
        ingest(&store, 3, h + HOUR_MS, "c");
        ingest(&store, 3, h + HOUR_MS, "c"); // the same webhook again: nothing
        let entry = store.outbox_entries().unwrap().into_iter().find(|e| e.order_id == 1).unwrap();
        store.finish_entry(&entry, |r| r.status = OrderStatus::Sent, &[], "wms_create delivered").unwrap();
        let hours = store.activity_hours(h).unwrap();
        assert_eq!(hours.len(), 3, "hours h, h + 1 and now: {hours:?}");
        assert_eq!((hours[0].hour_ms, hours[0].received, hours[0].entered(OrderStatus::Queued)), (h, 2, 2));
        assert_eq!((hours[1].received, hours[1].entered(OrderStatus::Queued)), (1, 1));
        let sent: u64 = hours.iter().map(|x| x.entered(OrderStatus::Sent)).sum();
        assert_eq!(sent, 1, "delivered now, counted in the current hour");
        assert!(store.activity_hours(h + HOUR_MS).unwrap().iter().all(|x| x.hour_ms >= h + HOUR_MS));

        let log: Vec<String> = store.order_events(1).unwrap().into_iter().map(|e| e.what).collect();
        assert_eq!(log, vec!["webhook orders/create: queued", "wms_create delivered"]);
        assert_eq!(store.order_events(3).unwrap().len(), 1, "a repeated webhook is one line");

        for n in 0..(MAX_EVENTS + 5) {
            store.note_order_event(2, h + 100 + n as i64, &n.to_string(), &format!("line {n}")).unwrap();
        }
        let log = store.order_events(2).unwrap();
        assert_eq!(log.len(), MAX_EVENTS);
        assert_eq!(log.last().unwrap().what, format!("line {}", MAX_EVENTS + 4), "the oldest go first");

        // Hour h: orders 1 and 2 received and queued (shards 1 and 2).
        assert_eq!(store.prune_activity(h + HOUR_MS).unwrap(), 4);
        assert!(store.activity_hours(0).unwrap().iter().all(|x| x.hour_ms > h));
    }
}
