//! Shipments: `shipments` tree, shipment id (BE) → [`ShipmentRecord`], and `shipment_index`, kept in
//! the same transactions: `o` ‖ order id ‖ shipment id (an order's shipments) and `w` ‖ shipment id
//! (shipments channeld still has work on), so that neither a pack call nor the label job nor a
//! restart reads every shipment ever made. Plus the two writes that must queue outbound work
//! atomically (a booked shipment's fulfillment, a seller cancellation).

use sled::transaction::{ConflictableTransactionError as Abort, TransactionError, Transactional};

use super::{be, chunks, codec, pair_key, Result, Store, StoreError};
use crate::flows::model::{OrderRecord, OutboxEntry, Task};
use crate::flows::shipment::{ShipmentRecord, ShipmentState};

fn tx_error(e: TransactionError<super::CodecError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => StoreError::Codec(e),
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// Set in `meta` once `shipment_index` covers every shipment.
const META_SHIPMENTS_INDEXED: &[u8] = b"shipment_index";

fn by_order(s: &ShipmentRecord) -> Vec<u8> {
    [&b"o"[..], &pair_key(s.order_id, s.shipment_id)].concat()
}

fn unfinished_key(shipment_id: u64) -> Vec<u8> {
    [&b"w"[..], &be(shipment_id)].concat()
}

impl Store {
    pub fn shipment(&self, id: u64) -> Result<Option<ShipmentRecord>> {
        match self.inner.shipments.get(be(id))? {
            Some(v) => self.shipment_of(&be(id), v),
            None => Ok(None),
        }
    }

    /// Decodes a stored shipment, reassembling it when it was too large to keep inline.
    fn shipment_of(&self, key: &[u8], stored: sled::IVec) -> Result<Option<ShipmentRecord>> {
        let i = &self.inner;
        match chunks::resolve(&i.shipments, &i.overflow, chunks::SHIPMENTS, key, stored)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Visits every shipment (export).
    pub(super) fn each_shipment(&self, mut f: impl FnMut(ShipmentRecord) -> Result<()>) -> Result<()> {
        for item in self.inner.shipments.iter() {
            let (k, v) = item?;
            if let Some(s) = self.shipment_of(&k, v)? {
                f(s)?;
            }
        }
        Ok(())
    }

    /// Every shipment of one order.
    pub fn order_shipments(&self, order_id: u64) -> Result<Vec<ShipmentRecord>> {
        self.indexed(&[&b"o"[..], &be(order_id)].concat())
    }

    /// Shipments still being booked, or waiting for a label or invoice.
    pub fn unfinished_shipments(&self) -> Result<Vec<ShipmentRecord>> {
        self.indexed(b"w")
    }

    /// The shipments whose index keys start with `prefix` (the shipment id is the key's tail).
    fn indexed(&self, prefix: &[u8]) -> Result<Vec<ShipmentRecord>> {
        let mut out = Vec::new();
        for item in self.inner.shipment_index.scan_prefix(prefix) {
            let (key, _) = item?;
            let id = key.len().checked_sub(8).and_then(|at| key[at..].try_into().ok()).map(u64::from_be_bytes);
            if let Some(s) = id.map(|id| self.shipment(id)).transpose()?.flatten() {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Builds `shipment_index` over a store written before it existed (once, from `open`).
    pub(super) fn index_shipments(&self) -> Result<()> {
        let i = &self.inner;
        if i.meta.get(META_SHIPMENTS_INDEXED)?.is_some() {
            return Ok(());
        }
        for item in i.shipments.iter() {
            let (k, v) = item?;
            let Some(s) = self.shipment_of(&k, v)? else { continue };
            i.shipment_index.insert(by_order(&s), &[])?;
            if s.unfinished() {
                i.shipment_index.insert(unfinished_key(s.shipment_id), &[])?;
            }
        }
        i.meta.insert(META_SHIPMENTS_INDEXED, &[1])?;
        super::commit::checkpoint(i)?;
        Ok(())
    }

    /// Saves a shipment and queues `tasks` for its order, in one transaction.
    pub fn save_shipment(&self, s: &ShipmentRecord, tasks: &[Task], now_ms: i64) -> Result<()> {
        let i = &self.inner;
        (&i.shipments, &i.shipment_index, &i.outbox, &i.overflow)
            .transaction(|(shipments, index, outbox, overflow)| {
                let bytes = codec::encode(s).map_err(Abort::Abort)?;
                chunks::put(shipments, overflow, chunks::SHIPMENTS, &be(s.shipment_id), &bytes)?;
                index.insert(by_order(s), &[])?;
                if s.unfinished() {
                    index.insert(unfinished_key(s.shipment_id), &[])?;
                } else {
                    index.remove(unfinished_key(s.shipment_id))?;
                }
                for task in tasks {
                    let seq = outbox.generate_id()?;
                    let entry = OutboxEntry::new(seq, s.order_id, task.clone(), now_ms);
                    outbox.insert(&pair_key(s.order_id, seq), codec::encode(&entry).map_err(Abort::Abort)?)?;
                }
                Ok(())
            })
            .map_err(tx_error)
    }

    /// Shipments still being booked (after a restart: to finish).
    pub fn shipments_booking(&self) -> Result<Vec<ShipmentRecord>> {
        Ok(self.unfinished_shipments()?.into_iter().filter(|s| s.state == ShipmentState::Booking).collect())
    }

    /// Applies a seller cancellation to the order and queues its Shopify task, atomically.
    /// `change` decides on the order as stored at that moment (so two cancellations of one order
    /// never plan from the same state): the task to queue, `None` when nothing changes, or the
    /// caller's refusal, which leaves the order untouched. `Ok(Err(..))` carries that refusal.
    pub fn record_seller_cancel<E: Clone>(
        &self,
        order_id: u64,
        now_ms: i64,
        change: impl Fn(&mut OrderRecord) -> std::result::Result<Option<Task>, E>,
    ) -> Result<std::result::Result<Option<Task>, E>> {
        /// Why the transaction stopped: the codec failed, or `change` refused.
        enum Stop<E> {
            Codec(super::CodecError),
            Refused(E),
        }
        let i = &self.inner;
        let trees = (&i.orders, &i.outbox, &i.order_counts, &i.personal, &i.overflow, &i.order_list);
        let result = trees.transaction(|(orders, outbox, counts, personal, overflow, list)| {
            let key = be(order_id);
            let Some(v) = chunks::get(orders, overflow, chunks::ORDERS, &key)? else { return Ok(None) };
            let mut rec: OrderRecord = codec::decode(&v).map_err(|e| Abort::Abort(Stop::Codec(e)))?;
            let before = super::order_index::Indexed::of(&rec);
            let task = change(&mut rec).map_err(|e| Abort::Abort(Stop::Refused(e)))?;
            rec.changed_ms = now_ms;
            let bytes = codec::encode(&rec).map_err(|e| Abort::Abort(Stop::Codec(e)))?;
            chunks::put(orders, overflow, chunks::ORDERS, &key, &bytes)?;
            super::order_index::reindex(counts, personal, list, Some(before), &rec)?;
            if let Some(task) = &task {
                let seq = outbox.generate_id()?;
                let entry = OutboxEntry::new(seq, order_id, task.clone(), now_ms);
                let bytes = codec::encode(&entry).map_err(|e| Abort::Abort(Stop::Codec(e)))?;
                outbox.insert(&pair_key(order_id, seq), bytes)?;
            }
            Ok(task)
        });
        match result {
            Ok(task) => Ok(Ok(task)),
            Err(TransactionError::Abort(Stop::Refused(e))) => Ok(Err(e)),
            Err(TransactionError::Abort(Stop::Codec(e))) => Err(StoreError::Codec(e)),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::shipment::{new_shipment, PackIn};

    fn shipment(order_id: u64, shipment_id: u64) -> ShipmentRecord {
        let mut order = crate::flows::tests::fixture_order();
        order.id = order_id;
        let rules = crate::flows::tests::rules();
        let mut rec =
            crate::flows::intake::apply(None, crate::flows::intake::Topic::Create, order_id, Ok(&order), &rules, 0)
                .record;
        rec.wms_created = true;
        let pack: PackIn =
            serde_json::from_value(serde_json::json!({ "orderCode": order_id.to_string(), "shipmentId": shipment_id }))
                .unwrap();
        new_shipment(&rec, &pack, &[], "clickpost", (1, [1, 1, 1]), 0).unwrap()
    }

    #[tokio::test]
    async fn shipments_are_found_by_order_and_by_unfinished_work_without_a_full_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        let (a, b, c) = (shipment(1, 10), shipment(1, 11), shipment(2, 20));
        for s in [&a, &b, &c] {
            store.save_shipment(s, &[], 0).unwrap();
        }
        let ids = |v: Vec<ShipmentRecord>| v.into_iter().map(|s| s.shipment_id).collect::<Vec<_>>();
        assert_eq!(ids(store.order_shipments(1).unwrap()), vec![10, 11]);
        assert_eq!(ids(store.unfinished_shipments().unwrap()), vec![10, 11, 20], "all still booking");
        // Booked with its label: done. Booked without one: the label job still has work.
        let mut done = a.clone();
        (done.state, done.awb, done.label_url) = (ShipmentState::Booked, "AWB1".into(), "https://label".into());
        let mut no_label = c.clone();
        no_label.state = ShipmentState::Booked;
        store.save_shipment(&done, &[], 1).unwrap();
        store.save_shipment(&no_label, &[], 1).unwrap();
        assert_eq!(ids(store.unfinished_shipments().unwrap()), vec![11, 20]);
        assert_eq!(ids(store.shipments_booking().unwrap()), vec![11]);

        // A store from before the index gets it on open.
        store.inner.shipment_index.clear().unwrap();
        store.inner.meta.remove(META_SHIPMENTS_INDEXED).unwrap();
        store.index_shipments().unwrap();
        assert_eq!(ids(store.order_shipments(1).unwrap()), vec![10, 11]);
        assert_eq!(ids(store.unfinished_shipments().unwrap()), vec![11, 20]);
    }
}
