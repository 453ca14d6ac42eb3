//! Retention of finished records: an order nothing will act on again (cancelled, skipped,
//! rejected, or handed over and archived), unchanged for longer than `storage.retention_days` and
//! with no call queued, goes with its name, its indexes, its shipments (with their tracking), its
//! handover and its log (`activity`), in one transaction. Candidates are read from the order list
//! index oldest first, up to the cut only, so a run costs what it removes, not what the store holds.
//!
//! A removed order leaves a tombstone in `order_names` (`0x00 ‖ order id → when`, and
//! `0x01 ‖ when ‖ order id` to expire it), which names never use (they are text): a late webhook or
//! reconciliation about that order is recorded as nothing, so an order the WMS handled months ago
//! is never created there again. Tombstones are kept for [`TOMBSTONE_DAYS`].

use sled::transaction::{ConflictableTransactionError as Abort, TransactionError, Transactional};

use super::order_index::{listed_before, listed_id, unindex};
use super::{be, chunks, codec, Result, Store, StoreError};
use crate::flows::model::{OrderRecord, OrderStatus};
use crate::flows::shipment::ShipmentRecord;

/// How long a pruned order's tombstone is kept: Shopify shows orders older than 60 days only with
/// `read_all_orders`, and updates to an order this old are rare.
pub const TOMBSTONE_DAYS: i64 = 365;

fn tombstone(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[1..].copy_from_slice(&be(id));
    k
}

fn tombstone_by_age(at_ms: i64, id: u64) -> Vec<u8> {
    [&[1u8][..], &super::pair_key(at_ms.max(0) as u64, id)].concat()
}

impl Store {
    /// Whether order `id` was pruned (inside a transaction over `order_names`).
    pub(super) fn was_pruned(
        names: &sled::transaction::TransactionalTree,
        id: u64,
    ) -> std::result::Result<bool, sled::transaction::UnabortableTransactionError> {
        Ok(names.get(tombstone(id))?.is_some())
    }

    /// Every tombstone: the pruned order's id and when it was pruned (export).
    pub(super) fn each_tombstone(&self, mut f: impl FnMut(u64, i64) -> Result<()>) -> Result<()> {
        for item in self.inner.order_names.scan_prefix([0u8]) {
            let (k, v) = item?;
            let id = k.get(1..9).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
            let at = v.as_ref().try_into().ok().map(i64::from_be_bytes);
            if let (Some(id), Some(at)) = (id, at) {
                f(id, at)?;
            }
        }
        Ok(())
    }

    /// Restores the tombstone of an order pruned at `at_ms`, with its place in the expiry order
    /// (import).
    pub(super) fn put_tombstone(&self, id: u64, at_ms: i64) -> Result<()> {
        let mut batch = sled::Batch::default();
        batch.insert(&tombstone(id), &at_ms.to_be_bytes());
        batch.insert(tombstone_by_age(at_ms, id), &[]);
        Ok(self.inner.order_names.apply_batch(batch)?)
    }

    /// Forgets tombstones older than [`TOMBSTONE_DAYS`] before `now_ms`. Returns how many.
    pub(super) fn prune_tombstones(&self, now_ms: i64) -> Result<usize> {
        let names = &self.inner.order_names;
        let cut = tombstone_by_age(now_ms - TOMBSTONE_DAYS * 86_400_000, 0);
        let mut removed = 0;
        for item in names.range(vec![1u8]..cut) {
            let key = item?.0;
            if let Some(id) = key.get(9..17).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes) {
                names.remove(tombstone(id))?;
            }
            names.remove(key)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Removes finished orders (and what belongs to them) last changed before `before_ms`.
    /// `archive` is `handover.archive`: when on, a handed-over order is finished once archived.
    /// Returns how many orders went.
    pub fn prune_finished(&self, before_ms: i64, archive: bool) -> Result<usize> {
        let i = &self.inner;
        let mut removed = 0;
        for item in i.order_list.range(listed_before(before_ms)) {
            let Some(id) = listed_id(&item?.0) else { continue };
            let Some(rec) = self.order(id)? else { continue };
            if rec.changed_ms >= before_ms || !self.is_finished(&rec, archive)? || self.has_pending(id)? {
                continue;
            }
            let shipments = self.order_shipments_all(id)?;
            let events = self.event_keys(id)?;
            self.remove_order(&rec, &shipments, &events, before_ms.max(rec.changed_ms))?;
            removed += 1;
        }
        Ok(removed)
    }

    fn is_finished(&self, rec: &OrderRecord, archive: bool) -> Result<bool> {
        if rec.cancelled
            || rec.closed_on_shopify()
            || matches!(rec.status, OrderStatus::Skipped | OrderStatus::Rejected)
        {
            return Ok(true);
        }
        Ok(match self.inner.handovers.get(be(rec.id))? {
            Some(v) => !archive || codec::decode::<super::HandoverRecord>(&v)?.archived_ms.is_some(),
            None => false,
        })
    }

    /// Every shipment of an order, read from the shipments tree itself (keyed order ‖ shipment).
    fn order_shipments_all(&self, order_id: u64) -> Result<Vec<ShipmentRecord>> {
        let mut out = Vec::new();
        for item in self.inner.shipments.scan_prefix(be(order_id)) {
            let (k, v) = item?;
            if let Some(s) = self.shipment_of(&k, v)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    fn remove_order(
        &self,
        rec: &OrderRecord,
        shipments: &[ShipmentRecord],
        events: &[sled::IVec],
        at_ms: i64,
    ) -> Result<()> {
        let i = &self.inner;
        let trees = (
            &i.orders,
            &i.overflow,
            &i.order_names,
            &i.order_counts,
            &i.personal,
            &i.order_list,
            &i.handovers,
            &i.shipments,
            &i.shipment_index,
            &i.tracking,
            &i.activity,
        );
        trees
            .transaction(
                |(
                    orders,
                    overflow,
                    names,
                    counts,
                    personal,
                    list,
                    handovers,
                    ships,
                    ship_index,
                    tracking,
                    activity,
                )| {
                    chunks::remove(orders, overflow, chunks::ORDERS, &be(rec.id))?;
                    if !rec.name.is_empty() {
                        names.remove(rec.name.as_bytes())?;
                    }
                    names.insert(&tombstone(rec.id), &at_ms.to_be_bytes())?;
                    names.insert(tombstone_by_age(at_ms, rec.id), &[])?;
                    unindex(counts, personal, list, rec)?;
                    handovers.remove(&be(rec.id))?;
                    for s in shipments {
                        super::shipments::unstore(ships, ship_index, overflow, tracking, s)?;
                    }
                    for k in events {
                        activity.remove(k)?;
                    }
                    Ok::<_, Abort<()>>(())
                },
            )
            .map_err(|e| match e {
                TransactionError::Abort(()) => StoreError::NotFound("an order could not be pruned".into()),
                TransactionError::Storage(e) => StoreError::Sled(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::intake::{apply, Topic};
    use crate::flows::shipment::{new_shipment, PackIn};
    use crate::flows::tests::{fixture_order, rules};
    use crate::store::Ingested;

    const DAY: i64 = 86_400_000;

    fn ingest(store: &Store, id: u64, at_ms: i64) -> Ingested {
        let mut order = fixture_order();
        order.id = id;
        order.name = format!("#{id}");
        store
            .record_event("orders/create", Some(&format!("e{id}-{at_ms}")), id, at_ms, |existing| {
                apply(existing, Topic::Create, id, Ok(&order), &rules(), at_ms)
            })
            .unwrap()
    }

    /// Marks order `id` delivered to the WMS (its queued creation done).
    fn deliver(store: &Store, id: u64) {
        for e in store.outbox_entries().unwrap().into_iter().filter(|e| e.order_id == id) {
            store
                .finish_entry(
                    &e,
                    |r| {
                        r.wms_created = true;
                        r.status = OrderStatus::Sent;
                    },
                    &[],
                    "done",
                )
                .unwrap();
        }
    }

    #[test]
    fn finished_orders_past_the_retention_go_whole_and_are_never_taken_in_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        for id in 1..=5 {
            ingest(&store, id, DAY);
        }
        // 1: delivered, handed over and archived, with a shipment. 2: handed over, not archived
        // yet. 3: delivered, never handed over (a pack call may still come). 4: cancelled before it
        // was sent, its creation still queued. 5: cancelled, nothing queued.
        for id in [1, 2, 3] {
            deliver(&store, id);
        }
        let rec = store.order(1).unwrap().unwrap();
        let pack: PackIn = serde_json::from_value(serde_json::json!({ "orderCode": "1", "shipmentId": 10 })).unwrap();
        let shipment = new_shipment(&rec, &pack, &[], "clickpost", (1, [1, 1, 1]), DAY).unwrap();
        store.save_shipment(&shipment, &[], DAY).unwrap();
        for id in [1, 2] {
            store.record_handover(id, "WH-1", "10", DAY).unwrap();
        }
        store.set_archive_outcome(1, Ok(DAY)).unwrap();
        for id in [4, 5] {
            store.update_order(id, |r| r.cancelled = true).unwrap();
        }
        deliver(&store, 5);

        let removed = store.prune_finished(10 * DAY, true).unwrap();
        assert_eq!(removed, 2, "orders 1 and 5");
        let kept: Vec<u64> = (1..=5).filter(|id| store.order(*id).unwrap().is_some()).collect();
        assert_eq!(kept, vec![2, 3, 4]);
        assert!(store.find_order("#1").unwrap().is_none(), "the name goes too");
        assert!(store.shipment(1, 10).unwrap().is_none() && store.order_shipments(1).unwrap().is_empty());
        assert!(store.handovers().unwrap().iter().all(|h| h.order_id != 1));
        let total: usize = store.order_counts().unwrap().iter().map(|(_, n)| n).sum();
        assert_eq!(total, 3, "the counts follow");
        assert_eq!(store.orders_page(None, None, None, 10).unwrap().len(), 3);
        // Not archived: with `handover.archive = false` a handover alone finishes it.
        assert_eq!(store.prune_finished(10 * DAY, false).unwrap(), 1);

        // A late webhook about a pruned order changes nothing and queues nothing.
        let late = ingest(&store, 1, 20 * DAY);
        assert!(matches!(late, Ingested::Applied { outcome: "pruned", queued: 0, .. }), "{late:?}");
        assert!(store.order(1).unwrap().is_none() && !store.has_pending(1).unwrap());
        // Tombstones expire after a year: the order is then as unknown as any.
        assert_eq!(store.prune_tombstones(10 * DAY + (TOMBSTONE_DAYS + 1) * DAY).unwrap(), 3);
        assert!(matches!(ingest(&store, 1, 500 * DAY), Ingested::Applied { outcome: "queued", .. }));
    }

    #[test]
    fn an_order_closed_on_shopify_is_finished_and_goes_after_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        for id in [1, 2] {
            ingest(&store, id, DAY);
            deliver(&store, id);
        }
        // Order 1 was fulfilled and closed on Shopify without a handover through channeld.
        let mut closed = crate::flows::tests::fixture_order();
        (closed.id, closed.name) = (1, "#1".into());
        closed.closed_at = "2026-11-30T10:00:00Z".into();
        closed.updated_at = "2099-01-01T00:00:00Z".into();
        store
            .record_event("orders/updated", Some("u1"), 1, DAY, |existing| {
                crate::flows::intake::apply(
                    existing,
                    crate::flows::intake::Topic::Updated,
                    1,
                    Ok(&closed),
                    &crate::flows::tests::rules(),
                    DAY,
                )
            })
            .unwrap();
        assert!(store.order(1).unwrap().unwrap().closed_on_shopify());
        assert_eq!(store.prune_personal(10 * DAY).unwrap(), 1, "its addresses go, order 2's stay");
        assert_eq!(store.prune_finished(10 * DAY, true).unwrap(), 1);
        assert!(store.order(1).unwrap().is_none() && store.order(2).unwrap().is_some());
    }
}
