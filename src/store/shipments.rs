//! Shipments: `shipments` tree, order id (BE) ‖ shipment id (BE) → [`ShipmentRecord`], and
//! `shipment_index`, kept in the same transactions: `s` ‖ shipment id ‖ order id (which order a
//! WMS `shipmentId` belongs to: a pack call reusing another order's id is refused) and `w` ‖
//! order id ‖ shipment id (shipments channeld still has work on), so that neither a pack call nor
//! the label job nor a restart reads every shipment ever made. Plus the two writes that must queue
//! outbound work atomically (a booked shipment's fulfillment, a seller cancellation).
//!
//! A booked shipment also gets `a` ‖ courier ‖ 0 ‖ AWB → order ‖ shipment (a courier's webhook
//! names only the AWB) and `t` ‖ order ‖ shipment → its tracking status, `booked` until a courier
//! reports more (`tracking.rs` keeps it up to date).
//!
//! Shipments were once keyed by shipment id alone, so that one order's pack call could be answered
//! with another order's shipment; a store written then is rekeyed once when opened
//! ([`Store::index_shipments`]).

use sled::transaction::{ConflictableTransactionError as Abort, TransactionError, Transactional};

use super::{be, chunks, codec, pair_key, split_pair, Result, Store, StoreError};
use crate::flows::model::{OrderRecord, Task};
use crate::flows::shipment::{ShipmentRecord, ShipmentState};

/// Set in `meta` once `shipment_index` covers every shipment (in its first layout).
pub(super) const META_SHIPMENTS_INDEXED: &[u8] = b"shipment_index";
/// Set in `meta` once every shipment is keyed by order ‖ shipment and indexed as above.
pub(super) const META_SHIPMENTS_BY_ORDER: &[u8] = b"shipments_by_order";
/// Set in `meta` once every booked shipment has its AWB and status entries.
pub(super) const META_SHIPMENT_AWBS: &[u8] = b"shipment_awbs";

/// `shipment_index` key of a shipment by its courier's AWB.
pub(super) fn awb_key(courier: &str, awb: &str) -> Vec<u8> {
    [b"a".as_slice(), courier.as_bytes(), &[0], awb.as_bytes()].concat()
}

/// `shipment_index` key of a shipment's tracking status.
pub(super) fn status_key(order_id: u64, shipment_id: u64) -> Vec<u8> {
    [&b"t"[..], &pair_key(order_id, shipment_id)].concat()
}

/// Whether a shipment has an AWB its courier's webhooks can name.
fn trackable(s: &ShipmentRecord) -> bool {
    s.state == ShipmentState::Booked && !s.awb.trim().is_empty()
}

/// `meta` key of a courier partner's name: `courier_name:{courier}:{partner id}`.
fn courier_name_key(courier: &str, partner: u64) -> Vec<u8> {
    format!("courier_name:{courier}:{partner}").into_bytes()
}

fn key_of(s: &ShipmentRecord) -> [u8; 16] {
    pair_key(s.order_id, s.shipment_id)
}

fn by_id(s: &ShipmentRecord) -> Vec<u8> {
    [&b"s"[..], &pair_key(s.shipment_id, s.order_id)].concat()
}

fn unfinished_key(s: &ShipmentRecord) -> Vec<u8> {
    [&b"w"[..], &key_of(s)].concat()
}

/// Removes a shipment, its chunks, its index entries and its tracking record, in a transaction
/// (retention).
pub(super) fn unstore(
    shipments: &sled::transaction::TransactionalTree,
    index: &sled::transaction::TransactionalTree,
    overflow: &sled::transaction::TransactionalTree,
    tracking: &sled::transaction::TransactionalTree,
    s: &ShipmentRecord,
) -> std::result::Result<(), sled::transaction::UnabortableTransactionError> {
    chunks::remove(shipments, overflow, chunks::SHIPMENTS, &key_of(s))?;
    chunks::remove(tracking, overflow, chunks::TRACKING, &key_of(s))?;
    index.remove(by_id(s))?;
    index.remove(unfinished_key(s))?;
    index.remove(status_key(s.order_id, s.shipment_id))?;
    if index.get(awb_key(&s.provider, &s.awb))?.is_some_and(|v| v.as_ref() == key_of(s)) {
        index.remove(awb_key(&s.provider, &s.awb))?;
    }
    Ok(())
}

/// Writes the AWB and status entries of a booked shipment (the status only when it has none).
fn index_trackable(
    index: &sled::transaction::TransactionalTree,
    s: &ShipmentRecord,
) -> std::result::Result<(), sled::transaction::UnabortableTransactionError> {
    if trackable(s) {
        index.insert(awb_key(&s.provider, &s.awb), &key_of(s))?;
        let status = status_key(s.order_id, s.shipment_id);
        if index.get(&status)?.is_none() {
            index.insert(status, crate::flows::tracking::ShipmentStatus::Booked.as_str())?;
        }
    }
    Ok(())
}

impl Store {
    /// The shipment `shipment_id` of order `order_id`.
    pub fn shipment(&self, order_id: u64, shipment_id: u64) -> Result<Option<ShipmentRecord>> {
        let key = pair_key(order_id, shipment_id);
        match self.inner.shipments.get(key)? {
            Some(v) => self.shipment_of(&key, v),
            None => Ok(None),
        }
    }

    /// The orders with a shipment under this `shipmentId` (one, unless an older channeld let two
    /// orders share it).
    pub fn shipment_orders(&self, shipment_id: u64) -> Result<Vec<u64>> {
        let prefix = [&b"s"[..], &be(shipment_id)].concat();
        let mut orders = Vec::new();
        for item in self.inner.shipment_index.scan_prefix(prefix) {
            if let Some((_, order)) = split_pair(&item?.0[1..]) {
                orders.push(order);
            }
        }
        Ok(orders)
    }

    /// Decodes a stored shipment, reassembling it when it was too large to keep inline.
    pub(super) fn shipment_of(&self, key: &[u8], stored: sled::IVec) -> Result<Option<ShipmentRecord>> {
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
        let mut out = Vec::new();
        for item in self.inner.shipments.scan_prefix(be(order_id)) {
            let (key, v) = item?;
            if let Some(s) = self.shipment_of(&key, v)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Shipments still being booked, or waiting for a label or invoice.
    pub fn unfinished_shipments(&self) -> Result<Vec<ShipmentRecord>> {
        let mut out = Vec::new();
        for item in self.inner.shipment_index.scan_prefix(b"w") {
            let Some((order, shipment)) = split_pair(&item?.0[1..]) else { continue };
            if let Some(s) = self.shipment(order, shipment)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Brings the shipments of a store written by an earlier channeld to the current layout, once
    /// (from `open`): each shipment keyed by shipment id alone moves under order ‖ shipment (its
    /// chunks with it, in one transaction per shipment, so a crash half-way leaves every shipment
    /// under one key or the other and the next open finishes), then `shipment_index` is built anew.
    pub(super) fn index_shipments(&self) -> Result<()> {
        let i = &self.inner;
        if i.meta.get(META_SHIPMENTS_BY_ORDER)?.is_some() {
            return Ok(());
        }
        let mut moved = 0;
        for item in i.shipments.iter() {
            let (old, _) = item?;
            if old.len() == 8 && self.rekey_shipment(&old)? {
                moved += 1;
            }
        }
        if moved > 0 {
            tracing::info!(shipments = moved, "shipments keyed by order and shipment id (once)");
        }
        i.shipment_index.clear()?;
        for item in i.shipments.iter() {
            let (k, v) = item?;
            if k.len() != 16 {
                continue;
            }
            let Some(s) = self.shipment_of(&k, v)? else { continue };
            i.shipment_index.insert(by_id(&s), &[])?;
            if s.unfinished() {
                i.shipment_index.insert(unfinished_key(&s), &[])?;
            }
        }
        i.meta.insert(META_SHIPMENTS_INDEXED, &[1])?;
        i.meta.insert(META_SHIPMENTS_BY_ORDER, &[1])?;
        // The index was built anew: its AWB and status entries too.
        i.meta.remove(META_SHIPMENT_AWBS)?;
        super::commit::checkpoint(i)?;
        Ok(())
    }

    /// Gives every booked shipment of a store written before tracking its AWB and status entries,
    /// once (from `open`): the status is the tracking record's when there is one, else `booked`.
    pub(super) fn index_awbs(&self) -> Result<()> {
        let i = &self.inner;
        if i.meta.get(META_SHIPMENT_AWBS)?.is_some() {
            return Ok(());
        }
        let mut indexed = 0;
        for item in i.shipments.iter() {
            let (k, v) = item?;
            let Some(s) = self.shipment_of(&k, v)? else { continue };
            if !trackable(&s) {
                continue;
            }
            let status = self.tracking(s.order_id, s.shipment_id)?.map_or("booked", |t| t.status.as_str());
            i.shipment_index.insert(awb_key(&s.provider, &s.awb), &key_of(&s))?;
            i.shipment_index.insert(status_key(s.order_id, s.shipment_id), status)?;
            indexed += 1;
        }
        if indexed > 0 {
            tracing::info!(shipments = indexed, "booked shipments indexed by AWB for tracking (once)");
        }
        i.meta.insert(META_SHIPMENT_AWBS, &[1])?;
        super::commit::checkpoint(i)?;
        Ok(())
    }

    /// Moves one shipment stored under its shipment id alone under order ‖ shipment. A record
    /// that cannot be read stays where it is (and is reported): `false`.
    fn rekey_shipment(&self, old: &[u8]) -> Result<bool> {
        let i = &self.inner;
        let moved = (&i.shipments, &i.overflow).transaction(|(shipments, overflow)| {
            let Some(bytes) = chunks::get(shipments, overflow, chunks::SHIPMENTS, old)? else { return Ok(false) };
            let Ok(s) = codec::decode::<ShipmentRecord>(&bytes) else { return Ok(false) };
            chunks::put(shipments, overflow, chunks::SHIPMENTS, &key_of(&s), &bytes)?;
            // An empty value first drops the old key's chunks; then the key itself goes.
            chunks::put(shipments, overflow, chunks::SHIPMENTS, old, &[])?;
            shipments.remove(old)?;
            Ok::<_, Abort<super::CodecError>>(true)
        });
        let moved = moved.map_err(StoreError::from)?;
        if !moved {
            tracing::error!(key = ?old, "a stored shipment could not be read; left under its old key");
        }
        Ok(moved)
    }

    /// Saves a shipment and queues `tasks` for its order, in one transaction.
    pub fn save_shipment(&self, s: &ShipmentRecord, tasks: &[Task], now_ms: i64) -> Result<()> {
        let i = &self.inner;
        let write = self.outbox_write();
        (&i.shipments, &i.shipment_index, &i.outbox, &i.outbox_queued, &i.overflow)
            .transaction(|(shipments, index, outbox, queued, overflow)| {
                let bytes = codec::encode(s).map_err(Abort::Abort)?;
                chunks::put(shipments, overflow, chunks::SHIPMENTS, &key_of(s), &bytes)?;
                index.insert(by_id(s), &[])?;
                if s.unfinished() {
                    index.insert(unfinished_key(s), &[])?;
                } else {
                    index.remove(unfinished_key(s))?;
                }
                index_trackable(index, s)?;
                for task in tasks {
                    super::outbox::queue(outbox, queued, overflow, s.order_id, task, now_ms)?;
                }
                Ok(())
            })
            .map_err(StoreError::from)?;
        write.made_due(tasks.len());
        Ok(())
    }

    /// The courier name an earlier booking with `courier` (`clickpost`) gave for its courier
    /// partner `partner` (Clickpost's numeric id): a booking answered "already placed" names only
    /// the id.
    pub fn courier_name(&self, courier: &str, partner: u64) -> Result<Option<String>> {
        match self.inner.meta.get(courier_name_key(courier, partner))? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Remembers the name a booking gave for a courier partner (written only when it changed).
    pub fn learn_courier_name(&self, courier: &str, partner: u64, name: &str) -> Result<()> {
        if self.courier_name(courier, partner)?.as_deref() != Some(name) {
            self.inner.meta.insert(courier_name_key(courier, partner), codec::encode(&name.to_string())?)?;
        }
        Ok(())
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
        let trees = (
            &i.orders,
            &i.outbox,
            &i.outbox_queued,
            &i.order_counts,
            &i.personal,
            &i.overflow,
            &i.order_list,
            &i.activity,
        );
        let write = self.outbox_write();
        let result = trees.transaction(|(orders, outbox, queued, counts, personal, overflow, list, activity)| {
            let key = be(order_id);
            let Some(v) = chunks::get(orders, overflow, chunks::ORDERS, &key)? else { return Ok(None) };
            let mut rec: OrderRecord = codec::decode(&v).map_err(|e| Abort::Abort(Stop::Codec(e)))?;
            let before = super::order_index::Indexed::of(&rec);
            let task = change(&mut rec).map_err(|e| Abort::Abort(Stop::Refused(e)))?;
            rec.changed_ms = now_ms;
            let bytes = codec::encode(&rec).map_err(|e| Abort::Abort(Stop::Codec(e)))?;
            chunks::put(orders, overflow, chunks::ORDERS, &key, &bytes)?;
            super::order_index::reindex(counts, personal, list, Some(before), &rec)?;
            super::activity::count_change(activity, Some(before), &rec, now_ms)?;
            let what = match &task {
                Some(Task::ShopifyCancelOrder) => "seller cancellation from the WMS: every unit, cancelled on Shopify",
                Some(_) => "seller cancellation from the WMS: some units, taken off the order on Shopify",
                None => "seller cancellation from the WMS: nothing more to cancel",
            };
            super::activity::note(activity, order_id, now_ms, &format!("seller-cancel {now_ms}"), what)?;
            if let Some(task) = &task {
                super::outbox::queue(outbox, queued, overflow, order_id, task, now_ms).map_err(|e| match e {
                    Abort::Abort(e) => Abort::Abort(Stop::Codec(e)),
                    Abort::Storage(e) => Abort::Storage(e),
                    Abort::Conflict => Abort::Conflict,
                })?;
            }
            Ok(task)
        });
        match result {
            Ok(task) => {
                write.made_due(usize::from(task.is_some()));
                Ok(Ok(task))
            }
            Err(TransactionError::Abort(Stop::Refused(e))) => Ok(Err(e)),
            Err(TransactionError::Abort(Stop::Codec(e))) => Err(StoreError::Codec(e)),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::shipment::{new_shipment, PackIn, ShipmentLine};

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
        store.inner.meta.remove(META_SHIPMENTS_BY_ORDER).unwrap();
        store.index_shipments().unwrap();
        assert_eq!(ids(store.order_shipments(1).unwrap()), vec![10, 11]);
        assert_eq!(ids(store.unfinished_shipments().unwrap()), vec![11, 20]);
        assert_eq!(store.shipment_orders(20).unwrap(), vec![2]);
    }

    #[tokio::test]
    async fn booked_shipments_of_an_older_store_get_their_awb_and_status_entries_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        let mut booked = shipment(1, 10);
        (booked.state, booked.awb) = (ShipmentState::Booked, "AWB10".into());
        store.save_shipment(&booked, &[], 0).unwrap();
        store.save_shipment(&shipment(1, 11), &[], 0).unwrap();
        assert_eq!(store.shipment_by_awb("clickpost", "AWB10").unwrap(), Some((1, 10)));
        // As a store written before tracking: no AWB or status entries.
        for prefix in [b"a", b"t"] {
            for k in store.inner.shipment_index.scan_prefix(prefix).keys() {
                store.inner.shipment_index.remove(k.unwrap()).unwrap();
            }
        }
        store.inner.meta.remove(META_SHIPMENT_AWBS).unwrap();
        assert_eq!(store.shipment_by_awb("clickpost", "AWB10").unwrap(), None);
        store.index_awbs().unwrap();
        assert_eq!(store.shipment_by_awb("clickpost", "AWB10").unwrap(), Some((1, 10)));
        assert_eq!(store.shipment_status(1, 10).unwrap(), Some(crate::flows::tracking::ShipmentStatus::Booked));
        assert_eq!(store.shipment_status(1, 11).unwrap(), None, "still booking: nothing to track");
        assert!(store.inner.meta.get(META_SHIPMENT_AWBS).unwrap().is_some(), "once");
    }

    #[tokio::test]
    async fn one_shipment_id_under_two_orders_are_two_shipments() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        let (a, b) = (shipment(1, 77), shipment(2, 77));
        store.save_shipment(&a, &[], 0).unwrap();
        store.save_shipment(&b, &[], 0).unwrap();
        assert_eq!(store.shipment(1, 77).unwrap().unwrap().order_id, 1);
        assert_eq!(store.shipment(2, 77).unwrap().unwrap().order_id, 2);
        assert!(store.shipment(3, 77).unwrap().is_none());
        assert_eq!(store.shipment_orders(77).unwrap(), vec![1, 2]);
        assert!(store.shipment_orders(78).unwrap().is_empty());
    }

    /// Writes `s` the way a store before order-keyed shipments did: under its shipment id alone
    /// (chunked when large), indexed `o` ‖ order ‖ shipment and `w` ‖ shipment.
    fn save_old_layout(store: &Store, s: &ShipmentRecord) {
        let i = &store.inner;
        let bytes = codec::encode(s).unwrap();
        (&i.shipments, &i.overflow)
            .transaction(|(m, o)| {
                chunks::put(m, o, chunks::SHIPMENTS, &be(s.shipment_id), &bytes)?;
                Ok::<_, Abort<()>>(())
            })
            .unwrap();
        i.shipment_index.insert([&b"o"[..], &pair_key(s.order_id, s.shipment_id)].concat(), &[]).unwrap();
        if s.unfinished() {
            i.shipment_index.insert([&b"w"[..], &be(s.shipment_id)].concat(), &[]).unwrap();
        }
    }

    #[tokio::test]
    async fn a_store_keyed_by_shipment_id_alone_is_rekeyed_once_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (small, mut large, mut booked) = (shipment(1, 10), shipment(2, 20), shipment(2, 21));
        // Large enough to be kept in chunks (see `chunks.rs`).
        large.lines =
            (0..300).map(|n| ShipmentLine { item_code: format!("line-{n}"), ..large.lines[0].clone() }).collect();
        (booked.state, booked.awb, booked.label_url) = (ShipmentState::Booked, "AWB21".into(), "https://l".into());
        {
            let store = Store::open(dir.path(), 8).unwrap();
            store.inner.meta.remove(META_SHIPMENTS_BY_ORDER).unwrap();
            for s in [&small, &large, &booked] {
                save_old_layout(&store, s);
            }
            assert!(store.inner.overflow.len() > 1, "the large one is chunked");
            store.sync_state().await.unwrap();
            store.close().unwrap();
        }
        let store = loop {
            match Store::open(dir.path(), 8) {
                Err(StoreError::Locked(_)) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                other => break other.unwrap(),
            }
        };
        assert_eq!(store.shipment(1, 10).unwrap().unwrap(), small);
        assert_eq!(store.shipment(2, 20).unwrap().unwrap(), large, "its chunks moved with it");
        assert_eq!(store.shipment(2, 21).unwrap().unwrap(), booked);
        assert!(store.inner.shipments.iter().keys().all(|k| k.unwrap().len() == 16), "no old key left");
        let ids = |v: Vec<ShipmentRecord>| v.into_iter().map(|s| s.shipment_id).collect::<Vec<_>>();
        assert_eq!(ids(store.order_shipments(2).unwrap()), vec![20, 21]);
        assert_eq!(ids(store.unfinished_shipments().unwrap()), vec![10, 20]);
        assert_eq!(store.shipment_orders(21).unwrap(), vec![2]);
        let chunk_keys: Vec<_> = store.inner.overflow.iter().keys().map(|k| k.unwrap()).collect();
        assert!(
            chunk_keys.iter().filter(|k| k[0] == chunks::SHIPMENTS).all(|k| k.len() == 1 + 16 + 4),
            "only chunks under the new key"
        );
        let old_index = store.inner.shipment_index.scan_prefix(b"o").count();
        assert_eq!(old_index, 0);
    }
}
