//! The outbox tree: queued outbound calls, keyed order id ‖ seq so that each order's entries are
//! contiguous and in the order they were queued; an entry too large to keep inline is stored in
//! chunks (`chunks.rs`).
//!
//! Beside it, the `outbox_queued` index: queued at (ms, BE) ‖ order id ‖ seq → (), the same
//! entries in the order they were queued, so `outbox list --since` reads one page from a time on
//! instead of the whole queue. Every transaction that adds or removes an entry changes the index
//! with it ([`queue`], [`take_entry`]). A store written before the index existed is indexed once
//! ([`Store::index_outbox_queue`]).

use std::collections::HashSet;
use std::ops::Bound;

use sled::transaction::{ConflictableTransactionError, TransactionalTree, UnabortableTransactionError};

use super::{be, chunks, codec, pair_key, split_pair, CodecError, Result, Store, StoreError};
use crate::flows::model::{EntryState, OrderRecord, OrderStatus, OutboxEntry, Task};

/// Set in `meta` once `outbox_queued` covers every entry.
pub(super) const META_QUEUED: &[u8] = b"outbox_queued_index";

/// What an outbox event in an order's log is about: the entry, its attempt and what happened (so
/// each outcome is its own line, and the same outcome written again is one).
fn about(entry: &OutboxEntry, what: &str) -> String {
    format!("outbox {} {} {what}", entry.seq, entry.attempts)
}

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

/// Removes an entry, its chunks and its index entry, inside the caller's transaction.
pub(super) fn take_entry(
    outbox: &TransactionalTree,
    queued: &TransactionalTree,
    overflow: &TransactionalTree,
    entry: &OutboxEntry,
) -> std::result::Result<(), UnabortableTransactionError> {
    chunks::remove(outbox, overflow, chunks::OUTBOX, &pair_key(entry.order_id, entry.seq))?;
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

/// How many entries are queued, for the gauges, the overview and the console's confirmation.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
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
            let Some(entry) = self.read_entry(&k, v)? else { continue };
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
            let (k, v) = item?;
            match self.read_entry(&k, v)?.map(|e| e.state) {
                Some(EntryState::Pending) => c.pending += 1,
                Some(EntryState::Dead) => c.dead += 1,
                None => {}
            }
        }
        Ok(c)
    }

    /// Removes a finished entry, applies its effect on the order and queues its follow-up tasks,
    /// in one transaction; `note` goes in the order's log.
    pub fn finish_entry(
        &self,
        entry: &OutboxEntry,
        effect: impl Fn(&mut OrderRecord),
        follow_ups: &[Task],
        note: &str,
    ) -> Result<()> {
        use sled::transaction::{ConflictableTransactionError as Abort, Transactional};
        let i = &self.inner;
        let write = self.outbox_write();
        let (at_ms, about) = (super::now_ms(), about(entry, "done"));
        let trees = (
            &i.outbox,
            &i.outbox_queued,
            &i.orders,
            &i.order_counts,
            &i.personal,
            &i.overflow,
            &i.order_list,
            &i.activity,
        );
        trees
            .transaction(|(outbox, queued, orders, counts, personal, overflow, list, activity)| {
                take_entry(outbox, queued, overflow, entry)?;
                let key = be(entry.order_id);
                if let Some(v) = chunks::get(orders, overflow, chunks::ORDERS, &key)? {
                    let mut rec: OrderRecord = codec::decode(&v).map_err(Abort::Abort)?;
                    let before = super::order_index::Indexed::of(&rec);
                    effect(&mut rec);
                    chunks::put(orders, overflow, chunks::ORDERS, &key, &codec::encode(&rec).map_err(Abort::Abort)?)?;
                    super::order_index::reindex(counts, personal, list, Some(before), &rec)?;
                    super::activity::count_change(activity, Some(before), &rec, at_ms)?;
                }
                super::activity::note(activity, entry.order_id, at_ms, &about, note)?;
                for task in follow_ups {
                    queue(outbox, queued, overflow, entry.order_id, task, entry.next_attempt_ms)?;
                }
                Ok(())
            })
            .map_err(StoreError::from)?;
        // The order's next entry is due now on the strength of this write (its creation is done),
        // as are the follow-ups: neither is sent before a checkpoint covers it.
        let next_in_line = !follow_ups.is_empty() || self.has_pending(entry.order_id)?;
        write.made_due(usize::from(next_in_line));
        Ok(())
    }

    /// Saves an entry's new state (rescheduled or dead), unless it was removed meanwhile; `note`
    /// goes in the order's log, which is then trimmed: an entry paused on refused credentials is
    /// saved again every pause, without counting an attempt, for as long as the refusal lasts.
    pub fn save_entry(&self, entry: &OutboxEntry, note: &str) -> Result<()> {
        use sled::transaction::Transactional;
        let i = &self.inner;
        let key = pair_key(entry.order_id, entry.seq);
        let (at_ms, about) = (super::now_ms(), about(entry, "saved"));
        (&i.outbox, &i.overflow, &i.activity)
            .transaction(|(outbox, overflow, activity)| {
                if outbox.get(key)?.is_some() {
                    put_entry(outbox, overflow, entry)?;
                    super::activity::note(activity, entry.order_id, at_ms, &about, note)?;
                }
                Ok(())
            })
            .map_err(StoreError::from)?;
        self.trim_events(entry.order_id)
    }

    /// Saves an entry's new state (dead-lettered) and applies `effect` to its order, in one
    /// transaction: a refused creation is a dead letter and a rejected order at once. Nothing
    /// changes when the entry was removed meanwhile.
    pub fn bury_entry(&self, entry: &OutboxEntry, effect: impl Fn(&mut OrderRecord), note: &str) -> Result<()> {
        use sled::transaction::{ConflictableTransactionError as Abort, Transactional};
        let i = &self.inner;
        let key = pair_key(entry.order_id, entry.seq);
        let (at_ms, about) = (super::now_ms(), about(entry, "buried"));
        (&i.outbox, &i.orders, &i.order_counts, &i.personal, &i.overflow, &i.order_list, &i.activity)
            .transaction(|(outbox, orders, counts, personal, overflow, list, activity)| {
                if outbox.get(key)?.is_none() {
                    return Ok(());
                }
                put_entry(outbox, overflow, entry)?;
                super::activity::note(activity, entry.order_id, at_ms, &about, note)?;
                let order_key = be(entry.order_id);
                if let Some(v) = chunks::get(orders, overflow, chunks::ORDERS, &order_key)? {
                    let mut rec: OrderRecord = codec::decode(&v).map_err(Abort::Abort)?;
                    let before = super::order_index::Indexed::of(&rec);
                    effect(&mut rec);
                    let after = codec::encode(&rec).map_err(Abort::Abort)?;
                    chunks::put(orders, overflow, chunks::ORDERS, &order_key, &after)?;
                    super::order_index::reindex(counts, personal, list, Some(before), &rec)?;
                    super::activity::count_change(activity, Some(before), &rec, at_ms)?;
                }
                Ok(())
            })
            .map_err(StoreError::from)
    }

    /// The keys of this order's dead-lettered creations, for [`settle_dead_creations`] (read
    /// before its transaction: sled's transactions cannot scan).
    pub(super) fn dead_creations(&self, order_id: u64) -> Result<Vec<[u8; 16]>> {
        let entries = self.order_entries(order_id)?;
        let dead_creations = entries.iter().filter(|e| e.state == EntryState::Dead && e.task == Task::WmsCreate);
        Ok(dead_creations.map(|e| pair_key(e.order_id, e.seq)).collect())
    }

    /// The calls still queued for one order (pending and dead), in its order.
    pub fn order_entries(&self, order_id: u64) -> Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for item in self.inner.outbox.scan_prefix(be(order_id)) {
            let (k, v) = item?;
            out.extend(self.read_entry(&k, v)?);
        }
        Ok(out)
    }

    /// Whether any call for this order is still queued.
    pub fn has_pending(&self, order_id: u64) -> Result<bool> {
        Ok(self.inner.outbox.scan_prefix(be(order_id)).next().transpose()?.is_some())
    }

    /// At most `limit` queued entries in queue order, after the entry `after` (order id, seq).
    pub fn outbox_page(&self, after: Option<(u64, u64)>, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.entries_after(after, limit, |_| true)
    }

    /// At most `limit` dead letters in queue order, after the entry `after` (order id, seq). The
    /// outbox holds work in progress, not history: the pass skips pending entries without keeping
    /// them.
    pub fn outbox_dead_page(&self, after: Option<(u64, u64)>, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.entries_after(after, limit, |e| e.state == EntryState::Dead)
    }

    /// At most `limit` entries that `keep`, in queue order, after the entry `after`.
    fn entries_after(
        &self,
        after: Option<(u64, u64)>,
        limit: usize,
        keep: impl Fn(&OutboxEntry) -> bool,
    ) -> Result<Vec<OutboxEntry>> {
        let start = after.map_or(Bound::Unbounded, |(o, s)| Bound::Excluded(pair_key(o, s).to_vec()));
        self.inner
            .outbox
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .filter_map(|item| item.map_err(StoreError::from).and_then(|(k, v)| self.read_entry(&k, v)).transpose())
            .filter(|entry| entry.as_ref().map_or(true, &keep))
            .take(limit)
            .collect()
    }

    /// At most `limit` entries queued at or after `since_ms`, in the order they were queued, after
    /// the entry `after` (queued at, order id, seq) when given: one page through the index.
    pub fn outbox_since(
        &self,
        since_ms: i64,
        after: Option<(i64, u64, u64)>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>> {
        self.index_outbox_queue()?;
        let from = queued_key(since_ms, 0, 0);
        let start = match after.map(|(at, order, seq)| queued_key(at, order, seq)) {
            Some(past) if past >= from => Bound::Excluded(past),
            _ => Bound::Included(from),
        };
        let mut page = Vec::with_capacity(limit.min(1024));
        for item in self.inner.outbox_queued.range((start, Bound::Unbounded)) {
            if page.len() >= limit {
                break;
            }
            let Some((order_id, seq)) = split_queued(&item?.0) else { continue };
            let key = pair_key(order_id, seq);
            if let Some(stored) = self.inner.outbox.get(key)? {
                page.extend(self.read_entry(&key, stored)?);
            }
        }
        Ok(page)
    }

    /// Builds `outbox_queued` from the entries, once (a store from before the index; a new store
    /// is marked at its first open, with nothing to index).
    pub(super) fn index_outbox_queue(&self) -> Result<()> {
        if self.inner.meta.get(META_QUEUED)?.is_some() {
            return Ok(());
        }
        for entry in self.outbox_entries()? {
            self.inner.outbox_queued.insert(queued_key(entry.created_ms, entry.order_id, entry.seq), &[])?;
        }
        self.inner.meta.insert(META_QUEUED, &[1])?;
        Ok(())
    }

    /// Every queued entry, pending and dead, in queue order.
    pub fn outbox_entries(&self) -> Result<Vec<OutboxEntry>> {
        self.inner
            .outbox
            .iter()
            .filter_map(|item| item.map_err(StoreError::from).and_then(|(k, v)| self.read_entry(&k, v)).transpose())
            .collect()
    }

    /// Puts entries back in line now with a fresh attempt count. Returns how many were replayed.
    pub fn replay_entries(&self, which: Replay, now_ms: i64) -> Result<usize> {
        let mut replayed = 0;
        let write = self.outbox_write();
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
                self.save_entry(&entry, &format!("{} queued again by the operator", entry.task.kind()))?;
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
        write.made_due(replayed);
        Ok(replayed)
    }

    pub fn replay_order_dead(&self, order_id: u64, now_ms: i64) -> Result<usize> {
        self.replay_entries(Replay::DeadOfOrder(order_id), now_ms)
    }

    /// Stores an entry as it was (restoring an export).
    pub(super) fn restore_entry(&self, entry: &OutboxEntry) -> Result<()> {
        use sled::transaction::Transactional;
        let i = &self.inner;
        (&i.outbox, &i.outbox_queued, &i.overflow)
            .transaction(|(outbox, queued, overflow)| insert_entry(outbox, queued, overflow, entry))
            .map_err(StoreError::from)
    }

    /// The entry stored under `key` as read by an iteration (`stored`), reassembled from its
    /// chunks when it has them; `None` when it went meanwhile.
    fn read_entry(&self, key: &[u8], stored: sled::IVec) -> Result<Option<OutboxEntry>> {
        let i = &self.inner;
        match chunks::resolve(&i.outbox, &i.overflow, chunks::OUTBOX, key, stored)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }
}

/// Queues `task` as the newest entry of its order, due at `due_ms`, in a transaction.
pub(super) fn queue(
    outbox: &TransactionalTree,
    queued: &TransactionalTree,
    overflow: &TransactionalTree,
    order_id: u64,
    task: &Task,
    due_ms: i64,
) -> std::result::Result<(), ConflictableTransactionError<CodecError>> {
    let seq = outbox.generate_id()?;
    insert_entry(outbox, queued, overflow, &OutboxEntry::new(seq, order_id, task.clone(), due_ms))
}

/// Stores a new entry and its place in the queued-time index, in a transaction.
fn insert_entry(
    outbox: &TransactionalTree,
    queued: &TransactionalTree,
    overflow: &TransactionalTree,
    entry: &OutboxEntry,
) -> std::result::Result<(), ConflictableTransactionError<CodecError>> {
    put_entry(outbox, overflow, entry)?;
    queued.insert(&queued_key(entry.created_ms, entry.order_id, entry.seq), &[])?;
    Ok(())
}

/// Stores `entry` under its key in a transaction: inline, or in chunks when large (a seller
/// cancellation of a long order; see `chunks.rs`).
pub(super) fn put_entry(
    outbox: &TransactionalTree,
    overflow: &TransactionalTree,
    entry: &OutboxEntry,
) -> std::result::Result<(), ConflictableTransactionError<CodecError>> {
    let bytes = codec::encode(&capped(entry)).map_err(ConflictableTransactionError::Abort)?;
    chunks::put(outbox, overflow, chunks::OUTBOX, &pair_key(entry.order_id, entry.seq), &bytes)?;
    Ok(())
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
    overflow: &TransactionalTree,
    dead: &[[u8; 16]],
    record: &OrderRecord,
    tasks: &[Task],
    now_ms: i64,
) -> std::result::Result<Vec<Task>, ConflictableTransactionError<CodecError>> {
    let mut tasks = tasks.to_vec();
    for key in dead {
        let Some(v) = chunks::get(outbox, overflow, chunks::OUTBOX, key)? else { continue };
        let mut entry: OutboxEntry = codec::decode(&v).map_err(ConflictableTransactionError::Abort)?;
        if entry.state != EntryState::Dead || entry.task != Task::WmsCreate {
            continue;
        }
        if record.cancelled {
            take_entry(outbox, queued, overflow, &entry)?;
        } else if let Some(at) = tasks.iter().position(|t| *t == Task::WmsCreate) {
            tasks.remove(at);
            (entry.state, entry.attempts, entry.next_attempt_ms) = (EntryState::Pending, 0, now_ms);
            put_entry(outbox, overflow, &entry)?;
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
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::flows::intake::{apply, Topic};
    use crate::flows::tests::{fixture_order, rules};

    fn queue_one(store: &Store, order_id: u64, task: Task) {
        use sled::transaction::Transactional;
        let i = &store.inner;
        (&i.outbox, &i.outbox_queued, &i.overflow)
            .transaction(|(outbox, queued, overflow)| queue(outbox, queued, overflow, order_id, &task, 0))
            .unwrap();
    }

    #[tokio::test]
    async fn an_entry_saved_again_and_again_keeps_its_order_s_log_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        queue_one(&store, 3, Task::WmsCreate);
        let mut entry = store.due_work(1, &HashSet::new(), 10).unwrap().due[0].clone();
        // As while the WMS refuses our credentials: saved every pause, for as long as it lasts.
        for n in 0..250 {
            entry.attempts = n;
            store.save_entry(&entry, "wms_create: our credentials were refused; paused").unwrap();
        }
        assert_eq!(store.order_events(3).unwrap().len(), super::super::activity::MAX_EVENTS);
    }

    #[tokio::test]
    async fn a_large_entry_is_kept_in_chunks_read_whole_and_removed_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        let lines: Vec<(u64, u32)> = (0..3000).map(|i| (1_000_000_000_000 + i, 1)).collect();
        let task = Task::ShopifyEditLines { lines: lines.clone(), refund: lines };
        queue_one(&store, 7, task.clone());
        let inline_max = store.inner.outbox.iter().map(|i| i.unwrap().1.len()).max().unwrap();
        assert!(inline_max <= chunks::INLINE_MAX, "stored inline: {inline_max} bytes");
        assert!(!store.inner.overflow.is_empty(), "the entry went to chunks");
        let due = store.due_work(1, &HashSet::new(), 10).unwrap().due;
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].task, task, "read back whole");
        let mut dead = due[0].clone();
        dead.state = EntryState::Dead;
        store.save_entry(&dead, "dead").unwrap();
        assert_eq!(store.outbox_entries().unwrap(), vec![dead.clone()]);
        store.finish_entry(&dead, |_| {}, &[], "done").unwrap();
        assert!(store.inner.outbox.is_empty() && store.inner.overflow.is_empty(), "no chunk is left behind");
        store.sync_state().await.unwrap();
        let blobs = std::fs::read_dir(dir.path().join("db/blobs")).unwrap().count();
        assert_eq!(blobs, 0, "sled wrote no blob file");
    }

    #[tokio::test]
    async fn an_order_s_next_entry_made_due_by_a_recorded_outcome_waits_for_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        let p = &store.inner.pipeline;
        let ahead = || p.unjournaled_outbox.load(Ordering::SeqCst) > p.synced_outbox.load(Ordering::SeqCst);
        queue_one(&store, 1, Task::WmsCreate);
        queue_one(&store, 1, Task::WmsCancel);
        queue_one(&store, 2, Task::WmsCreate);
        store.sync_state().await.unwrap();
        assert!(!ahead());
        let due = store.due_work(1, &HashSet::new(), 10).unwrap().due;
        let (first, other) = (&due[0], &due[1]);
        // The last entry of order 2 done: nothing becomes due on its strength.
        store.finish_entry(other, |_| {}, &[], "done").unwrap();
        assert!(!ahead(), "no checkpoint is owed for an order with nothing left");
        // Order 1's creation done: its cancellation is due now, on the strength of that write.
        store.finish_entry(first, |_| {}, &[], "done").unwrap();
        assert!(ahead(), "the cancellation must not be sent before the outcome is durable");
        assert_eq!(p.outbox_writes_in_progress.load(Ordering::SeqCst), 0);
        store.sync_outbox().await.unwrap();
        assert!(!ahead(), "sync_outbox checkpointed");
    }

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
        store.inner.outbox_queued.len()
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
        store.finish_entry(&entry, |_| {}, std::slice::from_ref(&follow_up), "done").unwrap();
        assert_eq!(indexed(&store), 3);
        let listed = store.outbox_since(0, None, 10).unwrap();
        assert_eq!(listed.len(), 3);
        assert!(listed.iter().any(|e| e.order_id == 10 && e.task == follow_up));
        let follow = listed.iter().find(|e| e.order_id == 10).unwrap().clone();
        store.finish_entry(&follow, |_| {}, &[], "done").unwrap();
        assert_eq!((indexed(&store), since(&store, 0, None, 10)), (2, vec![30, 20]));
    }

    #[test]
    fn a_store_without_the_index_is_indexed_once_when_first_listed_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        ingest(&store, 7, 5_000);
        ingest(&store, 8, 6_000);
        // As a store from before the index (or restored by import) is: entries only.
        store.inner.outbox_queued.clear().unwrap();
        store.inner.meta.remove(META_QUEUED).unwrap();
        assert_eq!(since(&store, 5_500, None, 10), vec![8]);
        assert_eq!(indexed(&store), 2);
        assert!(store.inner.meta.get(META_QUEUED).unwrap().is_some(), "built once");
    }
}
