//! Returns: `returns` tree, return id (BE) → [`ReturnRecord`] (in chunks when large), and the
//! `return_index` tree kept in the same transactions:
//! - `c` ‖ returnOrderCode → return id (the WMS's acknowledgement names a WMS return by its code);
//! - `n` ‖ name (`#1001-R1`) → return id;
//! - `o` ‖ order id (BE) ‖ return id (BE) → nothing (an order's returns, for `orders show`).
//!
//! A change of a return and the calls it queues (under its order, in the order's sequence) are one
//! transaction; a webhook's de-duplication key is written in it too.

use sled::transaction::{ConflictableTransactionError as Abort, TransactionError, Transactional, TransactionalTree};

use super::{be, chunks, codec, CodecError, Result, Store, StoreError};
use crate::flows::model::Task;
use crate::flows::returns::{ReturnRecord, ReturnStatus};

/// What a change of a return decided.
pub enum ReturnChange<T, E> {
    /// The webhook was seen before: nothing changed.
    Duplicate,
    Done(T),
    /// The caller refused; nothing changed.
    Refused(E),
}

/// What a decision on a return writes: the record (unchanged when `None`), the calls to queue
/// behind its order's others, and what to hand back.
pub struct ReturnWrite<T> {
    pub record: Option<ReturnRecord>,
    pub tasks: Vec<Task>,
    pub answer: T,
}

pub(super) fn code_key(code: &str) -> Vec<u8> {
    [b"c".as_slice(), code.as_bytes()].concat()
}

fn name_key(name: &str) -> Vec<u8> {
    [b"n".as_slice(), name.as_bytes()].concat()
}

fn order_key(order_id: u64, return_id: u64) -> Vec<u8> {
    [b"o".as_slice(), &be(order_id), &be(return_id)].concat()
}

impl Store {
    pub fn return_record(&self, id: u64) -> Result<Option<ReturnRecord>> {
        let i = &self.inner;
        match i.returns.get(be(id))? {
            Some(stored) => match chunks::resolve(&i.returns, &i.overflow, chunks::RETURNS, &be(id), stored)? {
                Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// The return a `returnOrderCode` names.
    pub fn return_by_code(&self, code: &str) -> Result<Option<ReturnRecord>> {
        self.return_by_index(&code_key(code))
    }

    /// The return a Shopify return name (`#1001-R1`) names.
    pub fn return_by_name(&self, name: &str) -> Result<Option<ReturnRecord>> {
        self.return_by_index(&name_key(name))
    }

    fn return_by_index(&self, key: &[u8]) -> Result<Option<ReturnRecord>> {
        match self.inner.return_index.get(key)? {
            Some(id) => match <[u8; 8]>::try_from(id.as_ref()) {
                Ok(id) => self.return_record(u64::from_be_bytes(id)),
                Err(_) => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// An order's returns, oldest first.
    pub fn returns_of_order(&self, order_id: u64) -> Result<Vec<ReturnRecord>> {
        let prefix = [b"o".as_slice(), &be(order_id)].concat();
        let mut out = Vec::new();
        for item in self.inner.return_index.scan_prefix(prefix) {
            let (k, _) = item?;
            let Some(id) = k.get(9..17).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes) else { continue };
            out.extend(self.return_record(id)?);
        }
        Ok(out)
    }

    /// At most `limit` returns, newest first (Shopify's ids grow with time), before the return
    /// `before` when given, of `status` when given. Returns are few next to orders: a status
    /// filter reads the tree until the page is full.
    pub fn returns_page(
        &self,
        status: Option<ReturnStatus>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ReturnRecord>> {
        let end = before.map_or(std::ops::Bound::Unbounded, |b| std::ops::Bound::Excluded(be(b).to_vec()));
        let mut out = Vec::new();
        for item in self.inner.returns.range::<Vec<u8>, _>((std::ops::Bound::Unbounded, end)).rev() {
            if out.len() == limit {
                break;
            }
            let (k, stored) = item?;
            let Some(bytes) = chunks::resolve(&self.inner.returns, &self.inner.overflow, chunks::RETURNS, &k, stored)?
            else {
                continue;
            };
            let rec: ReturnRecord = codec::decode(&bytes)?;
            if status.is_none_or(|s| s == rec.status) {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Every return (gauges, export, the stale count): returns are few next to orders.
    pub fn each_return(&self, mut each: impl FnMut(ReturnRecord) -> Result<()>) -> Result<()> {
        for item in self.inner.returns.iter() {
            let (k, stored) = item?;
            if let Some(bytes) =
                chunks::resolve(&self.inner.returns, &self.inner.overflow, chunks::RETURNS, &k, stored)?
            {
                each(codec::decode(&bytes)?)?;
            }
        }
        Ok(())
    }

    /// Changes return `id` as `decide` says, on the record as stored at that moment, atomically
    /// with the de-duplication key of the webhook that asks (`dedupe`: topic and event id) and the
    /// calls it queues. A delivery already seen changes nothing.
    pub fn change_return<T, E>(
        &self,
        id: u64,
        dedupe: Option<(&str, &str)>,
        now_ms: i64,
        decide: impl Fn(Option<ReturnRecord>) -> std::result::Result<ReturnWrite<T>, E>,
    ) -> Result<ReturnChange<T, E>> {
        enum Stop<E> {
            Codec(CodecError),
            Refused(E),
        }
        let codec_err = |e| Abort::Abort(Stop::Codec(e));
        let i = &self.inner;
        let seen_key = dedupe.map(|(topic, event)| super::orders::dedupe_key(topic, event));
        let seen_at = codec::encode(&now_ms)?;
        let write = self.outbox_write();
        let trees = (&i.returns, &i.return_index, &i.outbox, &i.outbox_queued, &i.overflow, &i.webhook_ids);
        let result = trees.transaction(|(returns, index, outbox, queued, overflow, ids)| {
            if let Some(k) = &seen_key {
                if ids.get(k)?.is_some() {
                    return Ok(None);
                }
                ids.insert(k.as_slice(), seen_at.as_slice())?;
            }
            let stored = match chunks::get(returns, overflow, chunks::RETURNS, &be(id))? {
                Some(bytes) => Some(codec::decode::<ReturnRecord>(&bytes).map_err(codec_err)?),
                None => None,
            };
            let decision = decide(stored.clone()).map_err(|e| Abort::Abort(Stop::Refused(e)))?;
            if let Some(mut rec) = decision.record {
                rec.changed_ms = now_ms;
                index_return(index, stored.as_ref(), &rec)?;
                let bytes = codec::encode(&rec).map_err(codec_err)?;
                chunks::put(returns, overflow, chunks::RETURNS, &be(id), &bytes)?;
                for task in &decision.tasks {
                    super::outbox::queue(outbox, queued, overflow, rec.order_id, task, now_ms).map_err(
                        |e| match e {
                            Abort::Abort(e) => Abort::Abort(Stop::Codec(e)),
                            Abort::Storage(e) => Abort::Storage(e),
                            Abort::Conflict => Abort::Conflict,
                        },
                    )?;
                }
            }
            Ok(Some((decision.answer, decision.tasks.len())))
        });
        match result {
            Ok(None) => Ok(ReturnChange::Duplicate),
            Ok(Some((answer, queued))) => {
                write.made_due(queued);
                Ok(ReturnChange::Done(answer))
            }
            Err(TransactionError::Abort(Stop::Refused(e))) => Ok(ReturnChange::Refused(e)),
            Err(TransactionError::Abort(Stop::Codec(e))) => Err(StoreError::Codec(e)),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
        }
    }

    /// Changes a stored return without queueing anything (outcomes of the return's own calls):
    /// the record as written, `None` when it is not stored.
    pub fn update_return(&self, id: u64, now_ms: i64, f: impl Fn(&mut ReturnRecord)) -> Result<Option<ReturnRecord>> {
        let changed = self.change_return(id, None, now_ms, |stored| {
            let record = stored.map(|mut r| {
                f(&mut r);
                r.changed_ms = now_ms;
                r
            });
            Ok::<_, ()>(ReturnWrite { answer: record.clone(), record, tasks: Vec::new() })
        })?;
        Ok(match changed {
            ReturnChange::Done(written) => written,
            _ => None,
        })
    }

    /// How many returns have each status (in [`ReturnStatus::ALL`]'s order), and how many are stale
    /// after `stale_after_days`: one pass (returns are few), for the gauges and the overview.
    pub fn return_counts(&self, stale_after_days: u32, now_ms: i64) -> Result<(Vec<(ReturnStatus, usize)>, usize)> {
        let mut counts = [0usize; ReturnStatus::ALL.len()];
        let mut stale = 0;
        self.each_return(|r| {
            if let Some(i) = ReturnStatus::ALL.iter().position(|s| *s == r.status) {
                counts[i] += 1;
            }
            stale += usize::from(r.is_stale(stale_after_days, now_ms));
            Ok(())
        })?;
        Ok((ReturnStatus::ALL.into_iter().zip(counts).collect(), stale))
    }

    /// Removes returns nothing will act on again (done, cancelled, skipped) unchanged since
    /// `before_ms`, with their index entries. Returns how many went.
    pub(super) fn prune_returns(&self, before_ms: i64) -> Result<usize> {
        let mut due = Vec::new();
        self.each_return(|r| {
            let finished = matches!(r.status, ReturnStatus::Done | ReturnStatus::Cancelled | ReturnStatus::Skipped);
            if finished && r.changed_ms < before_ms {
                due.push(r);
            }
            Ok(())
        })?;
        let i = &self.inner;
        for r in &due {
            (&i.returns, &i.return_index, &i.overflow)
                .transaction(|(returns, index, overflow)| {
                    chunks::remove(returns, overflow, chunks::RETURNS, &be(r.id))?;
                    unindex_return(index, r)?;
                    Ok::<_, Abort<()>>(())
                })
                .map_err(|e| match e {
                    TransactionError::Abort(()) => StoreError::NotFound("a return".into()),
                    TransactionError::Storage(e) => StoreError::Sled(e),
                })?;
        }
        Ok(due.len())
    }

    /// Stores a return as it was (restoring an export), with its index entries.
    pub(super) fn restore_return(&self, rec: &ReturnRecord) -> Result<()> {
        let i = &self.inner;
        let bytes = codec::encode(rec)?;
        (&i.returns, &i.return_index, &i.overflow)
            .transaction(|(returns, index, overflow)| {
                index_return(index, None, rec)?;
                chunks::put(returns, overflow, chunks::RETURNS, &be(rec.id), &bytes)?;
                Ok::<_, Abort<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(()) => StoreError::NotFound("a return".into()),
                TransactionError::Storage(e) => StoreError::Sled(e),
            })
    }
}

/// Keeps the index entries of a return in step with the record (its order may be learned late;
/// codes and name only grow).
pub(super) fn index_return(
    index: &TransactionalTree,
    before: Option<&ReturnRecord>,
    rec: &ReturnRecord,
) -> std::result::Result<(), sled::transaction::UnabortableTransactionError> {
    match before {
        None => {
            index.insert(order_key(rec.order_id, rec.id), &[])?;
        }
        // A return stored before its order was known (id 0) is indexed under it once learned.
        Some(b) if b.order_id != rec.order_id => {
            index.remove(order_key(b.order_id, rec.id))?;
            index.insert(order_key(rec.order_id, rec.id), &[])?;
        }
        Some(_) => {}
    }
    if !rec.name.is_empty() && before.is_none_or(|b| b.name != rec.name) {
        index.insert(name_key(&rec.name), &be(rec.id))?;
    }
    for w in &rec.wms {
        if before.is_none_or(|b| !b.wms.iter().any(|bw| bw.code == w.code)) {
            index.insert(code_key(&w.code), &be(rec.id))?;
        }
    }
    Ok(())
}

fn unindex_return(
    index: &TransactionalTree,
    rec: &ReturnRecord,
) -> std::result::Result<(), sled::transaction::UnabortableTransactionError> {
    index.remove(order_key(rec.order_id, rec.id))?;
    if !rec.name.is_empty() {
        index.remove(name_key(&rec.name))?;
    }
    for w in &rec.wms {
        index.remove(code_key(&w.code))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::returns::WmsReturn;

    fn write(store: &Store, rec: ReturnRecord, tasks: Vec<Task>) {
        let id = rec.id;
        let done = store
            .change_return(id, None, 5, |_| {
                Ok::<_, ()>(ReturnWrite { record: Some(rec.clone()), tasks: tasks.clone(), answer: () })
            })
            .unwrap();
        assert!(matches!(done, ReturnChange::Done(())));
    }

    #[tokio::test]
    async fn a_return_is_found_by_id_code_name_and_order_and_queues_behind_its_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        let mut rec = ReturnRecord::new(945, 4501, ReturnStatus::Queued, 0);
        write(&store, rec.clone(), vec![Task::WmsCreate]);
        rec.name = "#1001-R1".into();
        rec.wms.push(WmsReturn {
            code: "945-WH-1".into(),
            location_code: "WH-1".into(),
            body: "x".repeat(10_000),
            sent: true,
        });
        write(&store, rec.clone(), Vec::new());
        let by = |r: Option<ReturnRecord>| r.map(|r| r.id);
        assert_eq!(by(store.return_by_code("945-WH-1").unwrap()), Some(945));
        assert_eq!(by(store.return_by_name("#1001-R1").unwrap()), Some(945));
        assert_eq!(store.returns_of_order(4501).unwrap().len(), 1);
        assert_eq!(store.return_record(945).unwrap().unwrap().wms[0].body.len(), 10_000, "read whole from chunks");
        let queued = store.outbox_entries().unwrap();
        assert_eq!((queued.len(), queued[0].order_id), (1, 4501));
        write(&store, ReturnRecord::new(946, 4501, ReturnStatus::Held, 0), Vec::new());
        let page: Vec<u64> = store.returns_page(None, None, 10).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(page, [946, 945], "newest first");
        let held: Vec<u64> =
            store.returns_page(Some(ReturnStatus::Held), None, 10).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(held, [946]);
        assert_eq!(store.returns_page(None, Some(946), 10).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_return_stored_before_its_order_was_known_is_found_by_that_order_once_learned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        write(&store, ReturnRecord::new(947, 0, ReturnStatus::Queued, 0), Vec::new());
        let written = store.update_return(947, 9, |r| r.order_id = 4502).unwrap().unwrap();
        assert_eq!((written.order_id, written.changed_ms), (4502, 9), "the record as written");
        let ids = |order| store.returns_of_order(order).unwrap().iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(4502), [947]);
        assert!(ids(0).is_empty(), "the entry under order 0 is gone");
        assert_eq!(store.prune_returns(i64::MAX).unwrap(), 0, "still queued");
        store.update_return(947, 10, |r| r.status = ReturnStatus::Done).unwrap();
        assert_eq!(store.prune_returns(i64::MAX).unwrap(), 1);
        assert!(ids(4502).is_empty(), "pruned with its index entry");
        assert_eq!(store.update_return(947, 11, |r| r.closed = true).unwrap(), None, "no longer stored");
    }

    #[tokio::test]
    async fn a_webhook_seen_before_and_a_refusal_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        let decide = |_: Option<ReturnRecord>| {
            Ok::<_, ()>(ReturnWrite {
                record: Some(ReturnRecord::new(7, 1, ReturnStatus::Queued, 0)),
                tasks: vec![Task::WmsCreate],
                answer: (),
            })
        };
        assert!(matches!(
            store.change_return(7, Some(("returns/approve", "e1")), 1, decide).unwrap(),
            ReturnChange::Done(())
        ));
        assert!(matches!(
            store.change_return(7, Some(("returns/approve", "e1")), 2, decide).unwrap(),
            ReturnChange::Duplicate
        ));
        let refused = store.change_return(7, None, 3, |_| Err::<ReturnWrite<()>, _>("no")).unwrap();
        assert!(matches!(refused, ReturnChange::Refused("no")));
        assert_eq!(store.outbox_entries().unwrap().len(), 1);
        assert_eq!(store.return_record(7).unwrap().unwrap().changed_ms, 1);
    }
}
