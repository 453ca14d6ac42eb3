//! The outbox tree: queued outbound calls, keyed order id ‖ seq so that each order's entries are
//! contiguous and in the order they were queued.

use std::collections::HashSet;

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{be, chunks, codec, pair_key, split_pair, CodecError, Result, Store, StoreError};
use crate::flows::model::{EntryState, OrderRecord, OrderStatus, OutboxEntry, Task};

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
        (&i.outbox, &i.orders, &i.order_counts, &i.personal, &i.overflow, &i.order_list)
            .transaction(|(outbox, orders, counts, personal, overflow, list)| {
                outbox.remove(&pair_key(entry.order_id, entry.seq))?;
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
                    outbox.insert(&pair_key(entry.order_id, seq), codec::encode(&next).map_err(Abort::Abort)?)?;
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

    /// At most `limit` queued entries in queue order, after the entry `after` (order id, seq).
    pub fn outbox_page(&self, after: Option<(u64, u64)>, limit: usize) -> Result<Vec<OutboxEntry>> {
        use std::ops::Bound;
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
            outbox.remove(key)?;
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
