//! Tracking (CONTRACT.md §10): `tracking` tree, order id (BE) ‖ shipment id (BE) →
//! [`TrackingRecord`] (in chunks when large: the timeline grows), plus two kinds of entries in
//! `shipment_index` written by the shipments' own transactions and by these (see `shipments.rs`):
//! `a` ‖ courier ‖ 0 ‖ AWB → order ‖ shipment (which shipment a courier's webhook is about) and
//! `t` ‖ order ‖ shipment → its status (listing by status and the gauge, without reading records).
//!
//! A courier event changes, in one transaction: the shipment's record and status entry, the
//! fulfillment events it queues (under its order, in the order's sequence), the flags of its order
//! (with the order's indexes), and the RTO return it sends to the WMS with that return's own
//! entries and call — so a replay of the event finds all of it done or none of it.

use sled::transaction::{ConflictableTransactionError as Abort, Transactional, TransactionalTree};

use super::order_index::{reindex, Indexed};
use super::shipments::{awb_key, status_key};
use super::{be, chunks, codec, pair_key, split_pair, CodecError, Result, Store};
use crate::flows::model::{OrderRecord, Task};
use crate::flows::returns::ReturnRecord;
use crate::flows::shipment::ShipmentRecord;
use crate::flows::tracking::{flag_order, FlagEdits, ShipmentStatus, TrackingRecord};

/// What a change of a shipment's tracking writes: its record (`None`: nothing at all), the calls
/// to queue behind its order's, its order with changed flags, an RTO return to store and send
/// (skipped when a return with its code is stored already), and what to hand back.
pub struct TrackingWrite<T> {
    pub record: Option<TrackingRecord>,
    pub tasks: Vec<Task>,
    /// Flags to set on the shipment's order (the order is read only when there are some).
    pub order_flags: FlagEdits,
    pub rto_return: Option<ReturnRecord>,
    pub answer: T,
}

impl<T> TrackingWrite<T> {
    /// A write of the record alone.
    pub fn record(record: Option<TrackingRecord>, answer: T) -> Self {
        Self { record, tasks: Vec::new(), order_flags: FlagEdits::new(), rto_return: None, answer }
    }
}

/// A stored value decoded, inside a transaction.
fn decoded<R: serde::de::DeserializeOwned>(
    bytes: Option<Vec<u8>>,
) -> std::result::Result<Option<R>, Abort<CodecError>> {
    bytes.map(|b| codec::decode(&b).map_err(Abort::Abort)).transpose()
}

/// Stores an RTO return with its index entries and queues its call to the WMS behind its order's,
/// unless a return with its code (or id) is stored already. Returns whether it was stored.
fn store_rto_return(
    (returns, index, overflow): (&TransactionalTree, &TransactionalTree, &TransactionalTree),
    (outbox, queued): (&TransactionalTree, &TransactionalTree),
    r: &ReturnRecord,
    now_ms: i64,
) -> std::result::Result<bool, Abort<CodecError>> {
    // An RTO return's name is its returnOrderCode (`rto-{shipmentId}`).
    if index.get(super::returns::code_key(&r.name))?.is_some() || returns.get(be(r.id))?.is_some() {
        return Ok(false);
    }
    super::returns::index_return(index, None, r)?;
    chunks::put(returns, overflow, chunks::RETURNS, &be(r.id), &codec::encode(r).map_err(Abort::Abort)?)?;
    super::outbox::queue(outbox, queued, overflow, r.order_id, &Task::WmsReturn { return_id: r.id }, now_ms)?;
    Ok(true)
}

impl Store {
    /// The tracking record of a shipment.
    pub fn tracking(&self, order_id: u64, shipment_id: u64) -> Result<Option<TrackingRecord>> {
        let i = &self.inner;
        let key = pair_key(order_id, shipment_id);
        match i.tracking.get(key)? {
            Some(stored) => match chunks::resolve(&i.tracking, &i.overflow, chunks::TRACKING, &key, stored)? {
                Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// The shipment (order, shipment id) `courier` booked under this AWB.
    pub fn shipment_by_awb(&self, courier: &str, awb: &str) -> Result<Option<(u64, u64)>> {
        Ok(self.inner.shipment_index.get(awb_key(courier, awb))?.and_then(|v| split_pair(&v)))
    }

    /// Changes the tracking of shipment `shipment_id` of order `order_id` as `decide` says, on the
    /// record as stored at that moment, atomically with everything it asks for (see
    /// [`TrackingWrite`]: the order is read and flagged only when it asks for flags). Returns
    /// `decide`'s answer.
    pub fn change_tracking<T>(
        &self,
        order_id: u64,
        shipment_id: u64,
        now_ms: i64,
        decide: impl Fn(Option<TrackingRecord>) -> TrackingWrite<T>,
    ) -> Result<T> {
        let i = &self.inner;
        let key = pair_key(order_id, shipment_id);
        let write = self.outbox_write();
        let trees = (
            &i.tracking,
            &i.shipment_index,
            &i.overflow,
            &i.outbox,
            &i.outbox_queued,
            &i.orders,
            &i.order_counts,
            &i.personal,
            &i.order_list,
            &i.returns,
            &i.return_index,
        );
        let result = trees.transaction(|t| {
            let (tracking, index, overflow, outbox, queued, orders, counts, personal, list, returns, return_index) = t;
            let stored = decoded::<TrackingRecord>(chunks::get(tracking, overflow, chunks::TRACKING, &key)?)?;
            let w = decide(stored);
            let Some(rec) = w.record else { return Ok((w.answer, 0)) };
            chunks::put(tracking, overflow, chunks::TRACKING, &key, &codec::encode(&rec).map_err(Abort::Abort)?)?;
            index.insert(status_key(order_id, shipment_id), rec.status.as_str())?;
            let mut queued_now = 0;
            for task in &w.tasks {
                super::outbox::queue(outbox, queued, overflow, order_id, task, now_ms)?;
                queued_now += 1;
            }
            let order = if w.order_flags.is_empty() {
                None
            } else {
                decoded::<OrderRecord>(chunks::get(orders, overflow, chunks::ORDERS, &be(order_id))?)?
            };
            if let Some(mut o) = order {
                let before = Indexed::of(&o);
                flag_order(&mut o, &w.order_flags);
                o.changed_ms = now_ms;
                chunks::put(
                    orders,
                    overflow,
                    chunks::ORDERS,
                    &be(order_id),
                    &codec::encode(&o).map_err(Abort::Abort)?,
                )?;
                reindex(counts, personal, list, Some(before), &o)?;
            }
            if let Some(r) = w.rto_return {
                let (trees, at) = ((returns, return_index, overflow), (outbox, queued));
                queued_now += usize::from(store_rto_return(trees, at, &r, now_ms)?);
            }
            Ok((w.answer, queued_now))
        });
        match result {
            Ok((answer, queued)) => {
                write.made_due(queued);
                Ok(answer)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a shipment's stored tracking record without queueing anything (the outcome of one
    /// of its calls); `false` when there is none.
    pub fn update_tracking(
        &self,
        order_id: u64,
        shipment_id: u64,
        now_ms: i64,
        f: impl Fn(&mut TrackingRecord),
    ) -> Result<bool> {
        self.change_tracking(order_id, shipment_id, now_ms, |stored| {
            let found = stored.is_some();
            let record = stored.map(|mut r| {
                f(&mut r);
                r.changed_ms = now_ms;
                r
            });
            TrackingWrite::record(record, found)
        })
    }

    /// Keeps the Shopify fulfillment channeld made for a shipment (creating its tracking record
    /// when the shipment has none yet).
    pub fn note_fulfillment(&self, s: &ShipmentRecord, fulfillment_id: &str, now_ms: i64) -> Result<()> {
        self.change_tracking(s.order_id, s.shipment_id, now_ms, |stored| {
            let mut rec =
                stored.unwrap_or_else(|| TrackingRecord::new(s.order_id, s.shipment_id, &s.provider, &s.awb, now_ms));
            if rec.fulfillment_id.as_deref() == Some(fulfillment_id) {
                return TrackingWrite::record(None, ());
            }
            rec.fulfillment_id = Some(fulfillment_id.to_string());
            TrackingWrite::record(Some(rec), ())
        })
    }

    /// How many shipments are in each status (those booked with an AWB; the gauge).
    pub fn shipment_status_counts(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let mut counts = std::collections::BTreeMap::new();
        for item in self.inner.shipment_index.scan_prefix(b"t") {
            let (_, status) = item?;
            *counts.entry(String::from_utf8_lossy(&status).into_owned()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// The status of a shipment as its index entry has it (`None`: not booked).
    pub fn shipment_status(&self, order_id: u64, shipment_id: u64) -> Result<Option<ShipmentStatus>> {
        let v = self.inner.shipment_index.get(status_key(order_id, shipment_id))?;
        Ok(v.and_then(|v| ShipmentStatus::parse(&String::from_utf8_lossy(&v))))
    }

    /// At most `limit` shipments, newest order first, before (order, shipment) `before` when given,
    /// in `status` when given (read through the status entries, not the records).
    pub fn shipments_page(
        &self,
        status: Option<ShipmentStatus>,
        before: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<ShipmentRecord>> {
        use std::ops::Bound;
        let i = &self.inner;
        let mut out = Vec::new();
        let Some(status) = status else {
            let end = before.map_or(Bound::Unbounded, |(o, s)| Bound::Excluded(pair_key(o, s).to_vec()));
            for item in i.shipments.range::<Vec<u8>, _>((Bound::Unbounded, end)).rev() {
                if out.len() == limit {
                    break;
                }
                let (k, v) = item?;
                out.extend(self.shipment_of(&k, v)?);
            }
            return Ok(out);
        };
        let end = before.map_or(Bound::Excluded(b"u".to_vec()), |(o, s)| Bound::Excluded(status_key(o, s)));
        for item in i.shipment_index.range::<Vec<u8>, _>((Bound::Included(b"t".to_vec()), end)).rev() {
            if out.len() == limit {
                break;
            }
            let (k, v) = item?;
            if v.as_ref() != status.as_str().as_bytes() {
                continue;
            }
            if let Some((o, s)) = split_pair(&k[1..]) {
                out.extend(self.shipment(o, s)?);
            }
        }
        Ok(out)
    }

    /// Every tracking record (export).
    pub(super) fn each_tracking(&self, mut each: impl FnMut(TrackingRecord) -> Result<()>) -> Result<()> {
        let i = &self.inner;
        for item in i.tracking.iter() {
            let (k, stored) = item?;
            if let Some(bytes) = chunks::resolve(&i.tracking, &i.overflow, chunks::TRACKING, &k, stored)? {
                each(codec::decode(&bytes)?)?;
            }
        }
        Ok(())
    }

    /// Stores a tracking record as it was (restoring an export), with its status entry.
    pub(super) fn restore_tracking(&self, rec: &TrackingRecord) -> Result<()> {
        self.change_tracking(rec.order_id, rec.shipment_id, rec.changed_ms, |_| {
            TrackingWrite::record(Some(rec.clone()), ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::returns::ReturnStatus;
    use crate::flows::tracking::rto::rto_return;

    fn shipment(order_id: u64, shipment_id: u64, awb: &str) -> ShipmentRecord {
        let mut s: ShipmentRecord = serde_json::from_value(serde_json::json!({
            "shipment_id": shipment_id, "order_id": order_id, "order_name": "#1", "location_code": "WH-1",
            "provider": "clickpost", "weight_grams": 1, "dimensions_cm": [1, 1, 1], "lines": [
                { "sku": "A", "item_code": "11", "quantity": 2, "shopify_lines": [[11, 2]], "unit_price": 1.0 }],
            "invoice": null, "state": "Booked", "awb": awb, "transporter": "Fedex", "label_url": "l",
            "invoice_url": "", "courier_order_id": "", "courier_shipment_id": "", "created_ms": 0, "updated_ms": 0
        }))
        .unwrap();
        s.awb = awb.into();
        s
    }

    #[tokio::test]
    async fn a_change_writes_the_record_its_status_its_order_s_flags_and_its_rto_return_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        let mut order = crate::flows::tests::fixture_order();
        order.id = 1;
        store
            .record_event("orders/create", Some("e1"), 1, 0, |existing| {
                let rules = crate::flows::tests::rules();
                crate::flows::intake::apply(existing, crate::flows::intake::Topic::Create, 1, Ok(&order), &rules, 0)
            })
            .unwrap();
        let flags_before = store.order(1).unwrap().unwrap().flags.len();
        let s = shipment(1, 77, "WB-77");
        store.save_shipment(&s, &[], 0).unwrap();
        assert_eq!(store.shipment_by_awb("clickpost", "WB-77").unwrap(), Some((1, 77)));
        assert_eq!(store.shipment_by_awb("shiprocket", "WB-77").unwrap(), None);
        assert_eq!(store.shipment_status(1, 77).unwrap(), Some(ShipmentStatus::Booked));
        for _ in 0..2 {
            store
                .change_tracking(1, 77, 5, |stored| {
                    let mut rec = stored.unwrap_or_else(|| TrackingRecord::new(1, 77, "clickpost", "WB-77", 5));
                    rec.status = ShipmentStatus::Rto;
                    TrackingWrite {
                        record: Some(rec),
                        tasks: vec![Task::ShopifyFulfillmentEvent { shipment_id: 77, step: 0 }],
                        order_flags: vec![("rto:".into(), "rto: shipment 77 is returning to origin".into())],
                        rto_return: Some(rto_return(&s, 1, 5)),
                        answer: (),
                    }
                })
                .unwrap();
        }
        assert_eq!(store.shipment_status(1, 77).unwrap(), Some(ShipmentStatus::Rto));
        let flags = store.order(1).unwrap().unwrap().flags;
        assert_eq!(flags.len(), flags_before + 1);
        assert!(flags.contains(&"rto: shipment 77 is returning to origin".to_string()), "{flags:?}");
        let rto = store.return_by_code("rto-77").unwrap().unwrap();
        assert_eq!((rto.status, rto.units.len()), (ReturnStatus::Queued, 2));
        let kinds: Vec<&str> = store.outbox_entries().unwrap().iter().map(|e| e.task.kind()).collect();
        let ours: Vec<&str> = kinds.into_iter().filter(|k| *k != "wms_create").collect();
        assert_eq!(ours, ["shopify_fulfillment_event", "wms_return", "shopify_fulfillment_event"], "the return once");
        assert_eq!(store.shipment_status_counts().unwrap().get("rto"), Some(&1));
        let page = |st| store.shipments_page(st, None, 10).unwrap().iter().map(|s| s.shipment_id).collect::<Vec<_>>();
        assert_eq!(
            (page(Some(ShipmentStatus::Rto)), page(Some(ShipmentStatus::Booked)), page(None)),
            (vec![77], vec![], vec![77])
        );
    }
}
