//! Indexes kept beside the orders, in the same transactions that write them, so that nothing
//! periodic has to walk every order (a store holds millions, and a walk pulls every page of them
//! into memory):
//! - `order_counts`: status code ‖ shard → how many orders have that status, for the gauge. Sharded
//!   by order id so concurrent transactions rarely touch the same counter.
//! - `personal`: first seen (ms, BE) ‖ order id → (), the orders that still hold addresses, oldest
//!   first, so pruning reads only those past retention.
//! - `order_list`: `a` ‖ first seen ‖ order id and `s` ‖ status code ‖ first seen ‖ order id → (),
//!   so `orders list` reads one page, newest first, with or without a status, however many orders
//!   there are.
//!
//! A store written before these existed is indexed once when it is opened ([`Store::index_orders`]).

use sled::transaction::{TransactionalTree, UnabortableTransactionError};

use super::{be, Result, Store};
use crate::flows::model::{OrderRecord, OrderStatus};

const SHARDS: u64 = 16;

/// Set in `meta` once the indexes cover every order (the second marker for `order_list`, which came
/// later).
pub(super) const META_INDEXED: &[u8] = b"order_indexes";
pub(super) const META_LISTED: &[u8] = b"order_list_index";

/// A status's stored code. Never renumber: the codes are on disk.
pub(super) fn code(s: OrderStatus) -> u8 {
    match s {
        OrderStatus::Received => 0,
        OrderStatus::Queued => 1,
        OrderStatus::Sent => 2,
        OrderStatus::Rejected => 3,
        OrderStatus::Cancelled => 4,
        OrderStatus::Skipped => 5,
    }
}

fn count_key(s: OrderStatus, order_id: u64) -> [u8; 2] {
    [code(s), (order_id % SHARDS) as u8]
}

fn read_count(v: Option<&[u8]>) -> i64 {
    v.and_then(|b| b.try_into().ok()).map_or(0, i64::from_be_bytes)
}

/// Adds `delta` to a counter. A counter back at zero is removed: the tree then holds exactly what
/// the orders give, so a store restored from an export (which rebuilds the counters) is the same
/// tree for tree.
fn add_count(
    counts: &TransactionalTree,
    key: [u8; 2],
    delta: i64,
) -> std::result::Result<(), UnabortableTransactionError> {
    match read_count(counts.get(key)?.as_deref()) + delta {
        0 => counts.remove(&key)?,
        n => counts.insert(&key, &n.to_be_bytes())?,
    };
    Ok(())
}

/// Whether the order keeps personal data (the mapped addresses) that pruning must clear later.
pub(super) fn holds_personal(rec: &OrderRecord) -> bool {
    rec.wms.as_ref().is_some_and(|w| !w.create_body.is_empty())
}

pub(super) fn personal_key(rec: &OrderRecord) -> [u8; 16] {
    super::pair_key(rec.first_seen_ms.max(0) as u64, rec.id)
}

/// What the indexes know of an order: taken before a change, so the change needs no copy of the
/// whole record to be indexed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Indexed {
    id: u64,
    status: OrderStatus,
    personal: bool,
    first_seen_ms: i64,
}

impl Indexed {
    pub(super) fn of(rec: &OrderRecord) -> Self {
        Self { id: rec.id, status: rec.status, personal: holds_personal(rec), first_seen_ms: rec.first_seen_ms }
    }

    pub(super) fn status(&self) -> OrderStatus {
        self.status
    }
}

fn list_key(status: Option<OrderStatus>, first_seen_ms: i64, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    match status {
        None => k.push(b'a'),
        Some(s) => k.extend_from_slice(&[b's', code(s)]),
    }
    k.extend_from_slice(&super::pair_key(first_seen_ms.max(0) as u64, id));
    k
}

/// Where a page of `orders list` continues: before this order (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCursor {
    pub first_seen_ms: i64,
    pub id: u64,
}

impl OrderCursor {
    pub fn of(rec: &OrderRecord) -> Self {
        Self { first_seen_ms: rec.first_seen_ms, id: rec.id }
    }

    /// `orders list --before` takes it as `{first seen ms}-{id}`.
    pub fn parse(s: &str) -> Option<Self> {
        let (ms, id) = s.trim().split_once('-')?;
        Some(Self { first_seen_ms: ms.parse().ok()?, id: id.parse().ok()? })
    }
}

impl std::fmt::Display for OrderCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first_seen_ms, self.id)
    }
}

/// Keeps the indexes right when an order goes from `before` (absent: new) to `after`.
pub(super) fn reindex(
    counts: &TransactionalTree,
    personal: &TransactionalTree,
    list: &TransactionalTree,
    before: Option<Indexed>,
    after: &OrderRecord,
) -> std::result::Result<(), UnabortableTransactionError> {
    let listed = |status| list_key(status, after.first_seen_ms, after.id);
    match before {
        None => {
            list.insert(listed(None), &[])?;
            list.insert(listed(Some(after.status)), &[])?;
        }
        Some(b) if b.status != after.status || b.first_seen_ms != after.first_seen_ms => {
            list.remove(list_key(None, b.first_seen_ms, b.id))?;
            list.remove(list_key(Some(b.status), b.first_seen_ms, b.id))?;
            list.insert(listed(None), &[])?;
            list.insert(listed(Some(after.status)), &[])?;
        }
        Some(_) => {}
    }
    if before.map(|b| b.status) != Some(after.status) {
        if let Some(b) = before {
            add_count(counts, count_key(b.status, b.id), -1)?;
        }
        add_count(counts, count_key(after.status, after.id), 1)?;
    }
    if holds_personal(after) && !before.is_some_and(|b| b.personal) {
        personal.insert(&personal_key(after), &[])?;
    }
    Ok(())
}

/// Takes an order out of every index (it is being deleted).
pub(super) fn unindex(
    counts: &TransactionalTree,
    personal: &TransactionalTree,
    list: &TransactionalTree,
    rec: &OrderRecord,
) -> std::result::Result<(), UnabortableTransactionError> {
    list.remove(list_key(None, rec.first_seen_ms, rec.id))?;
    list.remove(list_key(Some(rec.status), rec.first_seen_ms, rec.id))?;
    add_count(counts, count_key(rec.status, rec.id), -1)?;
    personal.remove(&personal_key(rec))?;
    Ok(())
}

/// The key range of `order_list` holding every order first seen before `before_ms`, oldest first.
pub(super) fn listed_before(before_ms: i64) -> std::ops::Range<Vec<u8>> {
    list_key(None, 0, 0)..list_key(None, before_ms, 0)
}

/// The order id at the end of an `order_list` key.
pub(super) fn listed_id(key: &[u8]) -> Option<u64> {
    key.len().checked_sub(8).and_then(|at| key[at..].try_into().ok()).map(u64::from_be_bytes)
}

impl Store {
    /// When the newest stored order was first seen (the last key of the order list).
    pub fn newest_order_ms(&self) -> Result<Option<i64>> {
        let all = list_key(None, 0, 0)..list_key(None, i64::MAX, u64::MAX);
        let Some(item) = self.inner.order_list.range(all).next_back() else { return Ok(None) };
        let key = item?.0;
        Ok(key.get(1..9).and_then(|b| b.try_into().ok()).map(|b| u64::from_be_bytes(b) as i64))
    }

    /// How many orders have each status (from the counters: no walk over the orders).
    pub fn order_counts(&self) -> Result<Vec<(OrderStatus, usize)>> {
        let counts = &self.inner.order_counts;
        let mut out = Vec::with_capacity(OrderStatus::ALL.len());
        for s in OrderStatus::ALL {
            let mut n = 0;
            for item in counts.scan_prefix([code(s)]) {
                n += read_count(Some(&item?.1));
            }
            out.push((s, n.max(0) as usize));
        }
        Ok(out)
    }

    /// Builds the indexes over every stored order, once, for a store written before they existed
    /// (called by `open`, before anything else can write).
    pub(super) fn index_orders(&self) -> Result<()> {
        let i = &self.inner;
        if i.meta.get(META_INDEXED)?.is_some() {
            return Ok(());
        }
        if !i.orders.is_empty() {
            tracing::info!("indexing the stored orders once (a store from an earlier channeld)");
        }
        i.order_counts.clear()?;
        let mut counts = std::collections::HashMap::<[u8; 2], i64>::new();
        for item in i.orders.iter() {
            let (k, v) = item?;
            let Some(rec) = self.order_of(&k, v)? else { continue };
            *counts.entry(count_key(rec.status, rec.id)).or_default() += 1;
            if holds_personal(&rec) {
                i.personal.insert(personal_key(&rec), &[])?;
            }
        }
        for (k, n) in counts {
            i.order_counts.insert(k, &n.to_be_bytes())?;
        }
        i.meta.insert(META_INDEXED, &[1])?;
        super::commit::checkpoint(i)?;
        Ok(())
    }

    /// One page of orders, newest first: at most `limit`, optionally of one status, first seen at
    /// or after `since_ms`, and before `cursor` (the last of the previous page). Reads the index and
    /// the page's orders only.
    pub fn orders_page(
        &self,
        status: Option<OrderStatus>,
        since_ms: Option<i64>,
        cursor: Option<OrderCursor>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>> {
        let low = list_key(status, since_ms.unwrap_or(0), 0);
        let high = match cursor {
            Some(c) => list_key(status, c.first_seen_ms, c.id),
            None => list_key(status, i64::MAX, u64::MAX),
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.inner.order_list.range(low..high).rev() {
            if out.len() >= limit {
                break;
            }
            let Some(id) = listed_id(&item?.0) else { continue };
            if let Some(rec) = self.order(id)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Builds `order_list` over a store written before it existed (once, from `open`).
    pub(super) fn index_order_list(&self) -> Result<()> {
        let i = &self.inner;
        if i.meta.get(META_LISTED)?.is_some() {
            return Ok(());
        }
        for item in i.orders.iter() {
            let (k, v) = item?;
            let Some(rec) = self.order_of(&k, v)? else { continue };
            i.order_list.insert(list_key(None, rec.first_seen_ms, rec.id), &[])?;
            i.order_list.insert(list_key(Some(rec.status), rec.first_seen_ms, rec.id), &[])?;
        }
        i.meta.insert(META_LISTED, &[1])?;
        super::commit::checkpoint(i)?;
        Ok(())
    }

    /// Clears the addresses of finished orders that last changed before `before_ms`, reading only
    /// the personal-data index up to that age. Returns how many orders were cleared. An order is
    /// finished once nothing will need its addresses or prices again: cancelled, skipped, rejected,
    /// handed over, or closed on Shopify (a pack call for an order merely sent still books with its
    /// drop address and invoice value).
    pub(super) fn prune_personal(&self, before_ms: i64) -> Result<usize> {
        let i = &self.inner;
        let mut cleared = 0;
        for item in i.personal.range(..be(before_ms.max(0) as u64).as_slice()) {
            let (key, _) = item?;
            let Some((_, id)) = super::split_pair(&key) else { continue };
            let Some(rec) = self.order(id)? else {
                i.personal.remove(key)?;
                continue;
            };
            let finished = rec.cancelled
                || rec.closed_on_shopify()
                || matches!(rec.status, OrderStatus::Skipped | OrderStatus::Rejected)
                || i.handovers.contains_key(be(id))?;
            if !holds_personal(&rec) {
                i.personal.remove(key)?;
            } else if finished && rec.changed_ms < before_ms && !self.has_pending(id)? {
                self.update_order(id, |r| {
                    if let Some(w) = r.wms.as_mut() {
                        w.create_body.clear();
                        w.address_digest.clear();
                    }
                })?;
                i.personal.remove(key)?;
                cleared += 1;
            }
            // Otherwise (not finished yet) the key stays and is looked at again next time.
        }
        Ok(cleared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::intake::{apply, Topic};
    use crate::flows::model::Task;
    use crate::flows::tests::{fixture_order, rules};

    const DAY: i64 = 86_400_000;

    fn count(store: &Store, s: OrderStatus) -> usize {
        store.order_counts().unwrap().into_iter().find(|(st, _)| *st == s).unwrap().1
    }

    /// Stores the fixture order under `id`, accepted and queued, as a webhook at `at_ms` would.
    fn ingest(store: &Store, id: u64, at_ms: i64) {
        let mut order = fixture_order();
        order.id = id;
        order.name = format!("#{id}");
        store
            .record_event("orders/create", Some(&format!("e{id}")), id, at_ms, |existing| {
                apply(existing, Topic::Create, id, Ok(&order), &rules(), at_ms)
            })
            .unwrap();
    }

    #[test]
    fn counts_follow_every_write_and_pruning_reads_only_what_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        assert_eq!(store.newest_order_ms().unwrap(), None);
        for id in 1..=3 {
            ingest(&store, id, id as i64 * DAY);
        }
        ingest(&store, 1, DAY); // the same event again: nothing changes
        assert_eq!(count(&store, OrderStatus::Queued), 3);
        // Delivered through the outbox: queued → sent.
        let entry = store.outbox_entries().unwrap().into_iter().find(|e| e.order_id == 1).unwrap();
        assert_eq!(entry.task, Task::WmsCreate);
        store
            .finish_entry(
                &entry,
                |r| {
                    r.wms_created = true;
                    r.status = OrderStatus::Sent;
                },
                &[],
                "done",
            )
            .unwrap();
        store.update_order(2, |r| r.status = OrderStatus::Cancelled).unwrap();
        let counted: Vec<_> = store.order_counts().unwrap().into_iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(counted, vec![(OrderStatus::Queued, 1), (OrderStatus::Sent, 1), (OrderStatus::Cancelled, 1)]);
        assert_eq!(store.inner.order_counts.len(), 3, "counters back at zero are removed");

        // Retention cut at day 2.5. Order 1 was sent at day 1 but never handed over: a pack call
        // still needs its drop address and prices, so it keeps them. Order 2 is cancelled but has
        // its creation still queued; order 3 is too recent.
        let pending = |id| store.has_pending(id).unwrap();
        assert!(!pending(1) && pending(2));
        let cut = 2 * DAY + DAY / 2;
        let holds = |id| holds_personal(&store.order(id).unwrap().unwrap());
        assert_eq!(store.prune(0, cut, true).unwrap(), 0);
        assert!(holds(1), "a sent order not handed over keeps what fulfilment needs");
        // Handed over: now it is finished, and its addresses go.
        store.record_handover(1, "WH-1", "s1", 2 * DAY).unwrap();
        let removed = store.prune(0, cut, true).unwrap();
        assert!(!holds(1) && holds(2) && holds(3));
        assert_eq!(removed, 1, "one order's addresses");
        assert_eq!(store.inner.personal.len(), 2, "order 2 stays indexed until it is finished");
        assert_eq!(count(&store, OrderStatus::Sent), 1, "clearing addresses keeps the status");
    }

    #[test]
    fn orders_are_listed_newest_first_a_page_at_a_time_by_status_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        for id in 1..=25 {
            ingest(&store, id, id as i64 * DAY);
        }
        for id in [3, 7, 11] {
            store.update_order(id, |r| r.status = OrderStatus::Rejected).unwrap();
        }
        let ids = |v: Vec<OrderRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(store.newest_order_ms().unwrap(), Some(25 * DAY), "the newest order's first sight");
        let first = store.orders_page(None, None, None, 10).unwrap();
        assert_eq!(ids(first.clone()), (16..=25).rev().collect::<Vec<_>>());
        let next = OrderCursor::parse(&OrderCursor::of(first.last().unwrap()).to_string());
        assert_eq!(ids(store.orders_page(None, None, next, 10).unwrap()), (6..=15).rev().collect::<Vec<_>>());
        let rejected = Some(OrderStatus::Rejected);
        assert_eq!(ids(store.orders_page(rejected, None, None, 10).unwrap()), vec![11, 7, 3]);
        assert_eq!(ids(store.orders_page(rejected, Some(5 * DAY), None, 10).unwrap()), vec![11, 7]);
        assert_eq!(
            ids(store.orders_page(Some(OrderStatus::Queued), Some(23 * DAY), None, 10).unwrap()),
            vec![25, 24, 23]
        );
        // A store from before the list index gets it on open.
        store.inner.order_list.clear().unwrap();
        store.inner.meta.remove(META_LISTED).unwrap();
        store.index_order_list().unwrap();
        assert_eq!(ids(store.orders_page(rejected, None, None, 2).unwrap()), vec![11, 7]);
    }

    #[test]
    fn a_store_from_before_the_indexes_and_the_journal_is_upgraded_once_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 8).unwrap();
            for id in 1..=3 {
                ingest(&store, id, DAY);
            }
            store.update_order(3, |r| r.status = OrderStatus::Rejected).unwrap();
            // Make it look like an earlier channeld wrote it: no indexes, raw bodies in sled (the
            // oldest layout keyed them by order in `payloads`, the next by time in `raw_events`).
            let i = &store.inner;
            i.meta.remove(META_INDEXED).unwrap();
            i.order_counts.clear().unwrap();
            i.personal.clear().unwrap();
            let body = |id: u64| super::super::orders::RawEvent {
                topic: "orders/create".into(),
                received_ms: id as i64 * DAY,
                body: format!("{{\"id\":{id}}}"),
            };
            let payloads = i.db.open_tree("payloads").unwrap();
            payloads.insert(super::super::pair_key(1, 1), super::super::codec::encode(&body(1)).unwrap()).unwrap();
            let raw_events = i.db.open_tree("raw_events").unwrap();
            for id in [3u64, 2] {
                raw_events.insert(be(id * DAY as u64), super::super::codec::encode(&body(id)).unwrap()).unwrap();
            }
            store.close().unwrap();
        }
        let store = loop {
            match Store::open(dir.path(), 8) {
                Err(crate::store::StoreError::Locked(_)) => std::thread::sleep(std::time::Duration::from_millis(20)),
                other => break other.unwrap(),
            }
        };
        assert_eq!(count(&store, OrderStatus::Queued), 2);
        assert_eq!(count(&store, OrderStatus::Rejected), 1);
        assert_eq!(store.inner.personal.len(), 3);
        let names = store.inner.db.tree_names();
        assert!(!names.iter().any(|n| n.as_ref() == b"payloads" || n.as_ref() == b"raw_events"));
        // The bodies are journal records now, oldest first, each with its receipt time, in
        // segments dated by their first record (so retention treats them as it always did).
        let mut kept = Vec::new();
        store
            .each_inbound(|_, e| {
                kept.push((e.received_ms(), e.webhook_body().map(|(_, b)| b.to_string())));
                Ok(())
            })
            .unwrap();
        let expect = |id: u64| (id as i64 * DAY, Some(format!("{{\"id\":{id}}}")));
        assert_eq!(kept, vec![expect(1), expect(2), expect(3)]);
        assert!(store.journal_segments().iter().all(|s| s.created_ms <= 3 * DAY));
        // Opening again changes nothing: the upgrade ran once.
        store.close().unwrap();
        drop(store);
        let again = Store::open(dir.path(), 8).unwrap();
        let mut n = 0;
        again
            .each_inbound(|_, _| {
                n += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 3);
    }
}
