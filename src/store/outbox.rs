//! The outbox tree: queued outbound calls, keyed order id ‖ seq so that each order's entries are
//! contiguous and in the order they were queued.
//!
//! Beside it, the `outbox_queued` index: queued at (ms, BE) ‖ order id ‖ seq → (), the same
//! entries in the order they were queued, so `outbox list --since` reads one page from a time on
//! instead of the whole queue. Every transaction that adds or removes an entry changes the index
//! with it ([`put_entry`], [`take_entry`]). A store written before the index existed, or restored by
//! `import` (which writes entries only), is indexed once ([`Store::index_outbox_queue`]).

use std::collections::HashSet;
use std::ops::Bound;

use sled::transaction::{ConflictableTransactionError, TransactionalTree, UnabortableTransactionError};

use super::{be, chunks, codec, pair_key, split_pair, CodecError, Result, Store, StoreError};
use crate::flows::model::{EntryState, OrderRecord, OrderStatus, OutboxEntry, Task};

/// The index of entries by when they were queued (opened by name: the store's list of trees is
/// not this file's).
const QUEUED: &str = "outbox_queued";
/// Set in `meta` once `outbox_queued` covers every entry.
const META_QUEUED: &[u8] = b"outbox_queued_index";

/// Where an entry sits in `outbox_queued`.
fn queued_key(created_ms: i64, order_id: u64, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&be(created_ms.max(0) as u64));
    k[8..].copy_from_slice(&pair_key(order_id, seq));
    k
}

fn split_queued(k: &[u8]) -> Option<(u64, u64)> {
    split_pair(k.get(8..)?)
}

/// Queues an entry (already encoded as `bytes`) in the outbox and the index, inside the caller's
/// transaction.
pub(super) fn put_entry(
    outbox: &TransactionalTree,
    queued: &TransactionalTree,
    entry: &OutboxEntry,
    bytes: &[u8],
) -> std::result::Result<(), UnabortableTransactionError> {
    outbox.insert(&pair_key(entry.order_id, entry.seq), bytes)?;
    queued.insert(&queued_key(entry.created_ms, entry.order_id, entry.seq), &[])?;
    Ok(())
}

/// Removes an entry from the outbox and the index, inside the caller's transaction.
pub(super) fn take_entry(
    outbox: &TransactionalTree,
    queued: &TransactionalTree,
    entry: &OutboxEntry,
) -> std::result::Result<(), UnabortableTransactionError> {
    outbox.remove(&pair_key(entry.order_id, entry.seq))?;
    queued.remove(&queued_key(entry.created_ms, entry.order_id, entry.seq))?;
    Ok(())
}

/// What the worker should do next.
#[derive(Debug, Default)]
pub struct DueWork {
    /// The first entry of each order, when pending and due, and not already running.
    pub due: Vec<OutboxEntry>,
    /// The earliest time a waiting head entry becomes due (unix ms); only known when the scan
    /// did not stop early at `limit`.
    pub next_due_ms: Option<i64>,
}

/// How many entries are queued, for the gauges.
#[derive(Debug, Default, Clone, Copy)]
pub struct OutboxCounts {
    pub pending: usize,
    pub dead: usize,
}

impl Store {
    /// Scans the outbox for at most `limit` due entries. Only the first entry of an order is ever
    /// due: nothing for an order runs before its earlier entries are done (a dead entry holds its
    /// order until replayed). Entries behind an order's first are skipped without being decoded,
    /// and the scan stops once `limit` entries are found, so a healthy queue costs little however
    /// long it is.
    pub fn due_work(&self, now_ms: i64, busy: &HashSet<u64>, limit: usize) -> Result<DueWork> {
        let mut work = DueWork::default();
        if limit == 0 {
            return Ok(work);
        }
        let mut last_order = None;
        for item in self.inner.outbox.iter() {
            let (k, v) = item?;
            let (order_id, _) = split_pair(&k).unwrap_or_default();
            if last_order == Some(order_id) {
                continue;
            }
            last_order = Some(order_id);
            if busy.contains(&order_id) {
                continue;
            }
            let entry: OutboxEntry = codec::decode(&v)?;
            if entry.state != EntryState::Pending {
                continue;
            }
            if entry.next_attempt_ms <= now_ms {
                work.due.push(entry);
                if work.due.len() == limit {
                    work.next_due_ms = None;
                    return Ok(work);
                }
            } else {
                work.next_due_ms =
                    Some(work.next_due_ms.map_or(entry.next_attempt_ms, |t| t.min(entry.next_attempt_ms)));
            }
        }
        Ok(work)
    }

    /// Pending and dead entries (a full scan: for gauges, not for every wake-up).
    pub fn outbox_counts(&self) -> Result<OutboxCounts> {
        let mut c = OutboxCounts::default();
        for item in self.inner.outbox.iter() {
            match codec::decode::<OutboxEntry>(&item?.1)?.state {
                EntryState::Pending => c.pending += 1,
                EntryState::Dead => c.dead += 1,
            }
        }
        Ok(c)
    }

    /// Removes a finished entry, applies its effect on the order and queues its follow-up tasks,
    /// in one transaction.
    pub fn finish_entry(
        &self,
        entry: &OutboxEntry,
        effect: impl Fn(&mut OrderRecord),
        follow_ups: &[Task],
    ) -> Result<()> {
        use sled::transaction::{ConflictableTransactionError as Abort, TransactionError, Transactional};
        let i = &self.inner;
        let queued = self.queued_tree()?;
        (&i.outbox, &queued, &i.orders, &i.order_counts, &i.personal, &i.overflow, &i.order_list)
            .transaction(|(outbox, queued, orders, counts, personal, overflow, list)| {
                take_entry(outbox, queued, entry)?;
                let key = be(entry.order_id);
                if let Some(v) = chunks::get(orders, overflow, chunks::ORDERS, &key)? {
                    let mut rec: OrderRecord = codec::decode(&v).map_err(Abort::Abort)?;
                    let before = super::order_index::Indexed::of(&rec);
                    effect(&mut rec);
                    chunks::put(orders, overflow, chunks::ORDERS, &key, &codec::encode(&rec).map_err(Abort::Abort)?)?;
                    super::order_index::reindex(counts, personal, list, Some(before), &rec)?;
                }
                for task in follow_ups {
                    let seq = outbox.generate_id()?;
                    let next = OutboxEntry::new(seq, entry.order_id, task.clone(), entry.next_attempt_ms);
                    put_entry(outbox, queued, &next, &codec::encode(&next).map_err(Abort::Abort)?)?;
                }
                Ok(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => StoreError::Codec(e),
                TransactionError::Storage(e) => StoreError::Sled(e),
            })?;
        self.outbox_written(follow_ups.len());
        Ok(())
    }

    /// Saves an entry's new state (rescheduled or dead), unless it was removed meanwhile.
    pub fn save_entry(&self, entry: &OutboxEntry) -> Result<()> {
        let key = pair_key(entry.order_id, entry.seq);
        let bytes = codec::encode(&capped(entry))?;
        self.inner.outbox.fetch_and_update(key, |old| old.map(|_| bytes.clone()))?;
        Ok(())
    }

    /// Saves an entry's new state (dead-lettered) and applies `effect` to its order, in one
    /// transaction: a refused creation is a dead letter and a rejected order at once. Nothing
    /// changes when the entry was removed meanwhile.
    pub fn bury_entry(&self, entry: &OutboxEntry, effect: impl Fn(&mut OrderRecord)) -> Result<()> {
        use sled::transaction::{ConflictableTransactionError as Abort, TransactionError, Transactional};
        let i = &self.inner;
        let (key, bytes) = (pair_key(entry.order_id, entry.seq), codec::encode(&capped(entry))?);
        (&i.outbox, &i.orders, &i.order_counts, &i.personal, &i.overflow, &i.order_list)
            .transaction(|(outbox, orders, counts, personal, overflow, list)| {
                if outbox.get(key)?.is_none() {
                    return Ok(());
                }
                outbox.insert(&key, bytes.as_slice())?;
                let order_key = be(entry.order_id);
                if let Some(v) = chunks::get(orders, overflow, chunks::ORDERS, &order_key)? {
                    let mut rec: OrderRecord = codec::decode(&v).map_err(Abort::Abort)?;
                    let before = super::order_index::Indexed::of(&rec);
                    effect(&mut rec);
                    let after = codec::encode(&rec).map_err(Abort::Abort)?;
                    chunks::put(orders, overflow, chunks::ORDERS, &order_key, &after)?;
                    super::order_index::reindex(counts, personal, list, Some(before), &rec)?;
                }
                Ok(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => StoreError::Codec(e),
                TransactionError::Storage(e) => StoreError::Sled(e),
            })
    }

    /// The keys of this order's dead-lettered creations, for [`settle_dead_creations`] (read
    /// before its transaction: sled's transactions cannot scan).
    pub(super) fn dead_creations(&self, order_id: u64) -> Result<Vec<[u8; 16]>> {
        let mut keys = Vec::new();
        for item in self.inner.outbox.scan_prefix(be(order_id)) {
            let (_, v) = item?;
            let entry: OutboxEntry = codec::decode(&v)?;
            if entry.state == EntryState::Dead && entry.task == Task::WmsCreate {
                keys.push(pair_key(entry.order_id, entry.seq));
            }
        }
        Ok(keys)
    }

    /// Whether any call for this order is still queued.
    pub fn has_pending(&self, order_id: u64) -> Result<bool> {
        Ok(self.inner.outbox.scan_prefix(be(order_id)).next().transpose()?.is_some())
    }

    /// The `outbox_queued` index (see the module's note).
    pub(super) fn queued_tree(&self) -> Result<sled::Tree> {
        Ok(self.inner.db.open_tree(QUEUED)?)
    }

    /// At most `limit` entries queued at or after `since_ms`, in the order they were queued, after
    /// `after` (queued at, order id, seq: the last of the previous page). Reads the index from
    /// there and the page's entries only.
    pub fn outbox_since(
        &self,
        since_ms: i64,
        after: Option<(i64, u64, u64)>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>> {
        if self.inner.meta.get(META_QUEUED)?.is_none() {
            self.index_outbox_queue()?;
        }
        let from = queued_key(since_ms, 0, 0);
        let start = match after.map(|(at, order, seq)| queued_key(at, order, seq)) {
            Some(past) if past >= from => Bound::Excluded(past),
            _ => Bound::Included(from),
        };
        let mut page = Vec::with_capacity(limit.min(1024));
        for item in self.queued_tree()?.range((start, Bound::Unbounded)) {
            if page.len() >= limit {
                break;
            }
            let Some((order_id, seq)) = split_queued(&item?.0) else { continue };
            // A key whose entry is gone was left by an index build racing a finishing call.
            if let Some(v) = self.inner.outbox.get(pair_key(order_id, seq))? {
                page.push(codec::decode(&v)?);
            }
        }
        Ok(page)
    }

    /// Builds `outbox_queued` over every stored entry and marks it complete: once for a store from
    /// before the index, and after `import`. Entries finished while it runs may leave a key behind,
    /// which reads skip.
    pub fn index_outbox_queue(&self) -> Result<()> {
        let queued = self.queued_tree()?;
        for item in self.inner.outbox.iter() {
            let entry: OutboxEntry = codec::decode(&item?.1)?;
            queued.insert(queued_key(entry.created_ms, entry.order_id, entry.seq), &[])?;
        }
        self.inner.meta.insert(META_QUEUED, &[1])?;
        Ok(())
    }

    /// At most `limit` queued entries in queue order, after the entry `after` (order id, seq).
    pub fn outbox_page(&self, after: Option<(u64, u64)>, limit: usize) -> Result<Vec<OutboxEntry>> {
        let start = after.map_or(Bound::Unbounded, |(o, s)| Bound::Excluded(pair_key(o, s).to_vec()));
        self.inner
            .outbox
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|item| Ok(codec::decode(&item?.1)?))
            .collect()
    }

    /// Every queued entry, pending and dead, in queue order.
    pub fn outbox_entries(&self) -> Result<Vec<OutboxEntry>> {
        self.inner.outbox.iter().map(|item| Ok(codec::decode(&item?.1)?)).collect()
    }

    /// Puts entries back in line now with a fresh attempt count. Returns how many were replayed.
    pub fn replay_entries(&self, which: Replay, now_ms: i64) -> Result<usize> {
        let mut replayed = 0;
        for mut entry in self.outbox_entries()? {
            let dead = entry.state == EntryState::Dead;
            let wanted = match which {
                Replay::One(seq) => entry.seq == seq,
                Replay::AllDead => dead,
                Replay::DeadOfOrder(order) => dead && entry.order_id == order,
            };
            if wanted {
                entry.state = EntryState::Pending;
                entry.attempts = 0;
                entry.next_attempt_ms = now_ms;
                self.save_entry(&entry)?;
                if entry.task == Task::WmsCreate {
                    // The WMS refused it and the order shows rejected: it is in line again.
                    self.update_order(entry.order_id, |r| {
                        if r.status == OrderStatus::Rejected && !r.cancelled {
                            r.status = OrderStatus::Queued;
                            r.reasons.clear();
                        }
                    })?;
                }
                replayed += 1;
            }
        }
        if let (Replay::One(seq), 0) = (which, replayed) {
            return Err(StoreError::NotFound(format!("no outbox entry {seq}")));
        }
        self.outbox_written(replayed);
        Ok(replayed)
    }

    pub fn replay_order_dead(&self, order_id: u64, now_ms: i64) -> Result<usize> {
        self.replay_entries(Replay::DeadOfOrder(order_id), now_ms)
    }
}

/// What an event recorded for an order does to its dead-lettered creations (`dead`, from
/// [`Store::dead_creations`]), inside the event's transaction; returns the tasks still to queue.
/// A dead letter holds back its order's later calls, so:
/// - a cancelled order can never send its creation (see `flows::intake::create_body`): the dead
///   creation goes, and the cancellation behind it is not held back;
/// - an order queued for creation again (a rejected order validated again) gets its dead creation
///   back in line, sending the order as it is now, instead of a second creation stuck behind it.
pub(super) fn settle_dead_creations(
    outbox: &TransactionalTree,
    queued: &TransactionalTree,
    dead: &[[u8; 16]],
    record: &OrderRecord,
    tasks: &[Task],
    now_ms: i64,
) -> std::result::Result<Vec<Task>, ConflictableTransactionError<CodecError>> {
    let mut tasks = tasks.to_vec();
    for key in dead {
        let Some(v) = outbox.get(key)? else { continue };
        let mut entry: OutboxEntry = codec::decode(&v).map_err(ConflictableTransactionError::Abort)?;
        if entry.state != EntryState::Dead || entry.task != Task::WmsCreate {
            continue;
        }
        if record.cancelled {
            take_entry(outbox, queued, &entry)?;
        } else if let Some(at) = tasks.iter().position(|t| *t == Task::WmsCreate) {
            tasks.remove(at);
            (entry.state, entry.attempts, entry.next_attempt_ms) = (EntryState::Pending, 0, now_ms);
            outbox.insert(key, codec::encode(&entry).map_err(ConflictableTransactionError::Abort)?)?;
        }
    }
    Ok(tasks)
}

/// The entry as stored: outbox entries stay small (see `chunks.rs`), so an error text past 1000
/// bytes is cut.
fn capped(entry: &OutboxEntry) -> OutboxEntry {
    let mut entry = entry.clone();
    if let Some(e) = entry.last_error.as_mut() {
        super::cut_text(e, 1000);
    }
    entry
}

/// Which outbox entries `outbox retry` replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    One(u64),
    AllDead,
    DeadOfOrder(u64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::intake::{apply, Topic};
    use crate::flows::tests::{fixture_order, rules};

    /// Stores the fixture order under `id` as a webhook at `at_ms` would: its creation is queued.
    fn ingest(store: &Store, id: u64, at_ms: i64) {
        let mut order = fixture_order();
        (order.id, order.name) = (id, format!("#{id}"));
        store
            .record_event("orders/create", Some(&format!("e{id}")), id, at_ms, |existing| {
                apply(existing, Topic::Create, id, Ok(&order), &rules(), at_ms)
            })
            .unwrap();
    }

    fn since(store: &Store, at: i64, after: Option<(i64, u64, u64)>, limit: usize) -> Vec<u64> {
        store.outbox_since(at, after, limit).unwrap().iter().map(|e| e.order_id).collect()
    }

    fn indexed(store: &Store) -> usize {
        store.queued_tree().unwrap().len()
    }

    #[test]
    fn the_queued_index_follows_every_entry_and_pages_from_a_time_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        // Order ids against the time order: the outbox's own key order is not the queue's.
        for (id, at) in [(30, 1_000), (10, 2_000), (20, 3_000)] {
            ingest(&store, id, at);
        }
        assert_eq!(indexed(&store), 3);
        assert_eq!(since(&store, 0, None, 10), vec![30, 10, 20], "in the order queued");
        assert_eq!(since(&store, 2_000, None, 10), vec![10, 20], "at or after the time");
        let first = store.outbox_since(1_500, None, 1).unwrap();
        assert_eq!(first.iter().map(|e| e.order_id).collect::<Vec<_>>(), vec![10]);
        let cursor = (first[0].created_ms, first[0].order_id, first[0].seq);
        assert_eq!(since(&store, 1_500, Some(cursor), 10), vec![20], "the next page");

        // A finished call leaves the index with it, and its follow-up joins it.
        let entry = store.outbox_entries().unwrap().into_iter().find(|e| e.order_id == 10).unwrap();
        let follow_up = Task::WmsUpdate { body: "{}".into() };
        store.finish_entry(&entry, |_| {}, std::slice::from_ref(&follow_up)).unwrap();
        assert_eq!(indexed(&store), 3);
        let listed = store.outbox_since(0, None, 10).unwrap();
        assert_eq!(listed.len(), 3);
        assert!(listed.iter().any(|e| e.order_id == 10 && e.task == follow_up));
        let follow = listed.iter().find(|e| e.order_id == 10).unwrap().clone();
        store.finish_entry(&follow, |_| {}, &[]).unwrap();
        assert_eq!((indexed(&store), since(&store, 0, None, 10)), (2, vec![30, 20]));
    }

    #[test]
    fn a_store_without_the_index_is_indexed_once_when_first_listed_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        ingest(&store, 7, 5_000);
        ingest(&store, 8, 6_000);
        // As a store from before the index (or restored by import) is: entries only.
        store.queued_tree().unwrap().clear().unwrap();
        store.inner.meta.remove(META_QUEUED).unwrap();
        assert_eq!(since(&store, 5_500, None, 10), vec![8]);
        assert_eq!(indexed(&store), 2);
        assert!(store.inner.meta.get(META_QUEUED).unwrap().is_some(), "built once");
    }
}
