//! Shipments: `shipments` tree, shipment id (BE) → [`ShipmentRecord`]; plus the two writes that
//! must queue outbound work atomically (a booked shipment's fulfillment, a seller cancellation).

use sled::transaction::{ConflictableTransactionError as Abort, TransactionError, Transactional};

use super::{be, codec, pair_key, Result, Store, StoreError};
use crate::flows::model::{OrderRecord, OutboxEntry, Task};
use crate::flows::shipment::{ShipmentRecord, ShipmentState};

fn tx_error(e: TransactionError<super::CodecError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => StoreError::Codec(e),
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

impl Store {
    pub fn shipment(&self, id: u64) -> Result<Option<ShipmentRecord>> {
        match self.inner.shipments.get(be(id))? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    pub fn shipments(&self) -> Result<Vec<ShipmentRecord>> {
        self.inner.shipments.iter().map(|item| Ok(codec::decode(&item?.1)?)).collect()
    }

    /// Saves a shipment and queues `tasks` for its order, in one transaction.
    pub fn save_shipment(&self, s: &ShipmentRecord, tasks: &[Task], now_ms: i64) -> Result<()> {
        let i = &self.inner;
        (&i.shipments, &i.outbox)
            .transaction(|(shipments, outbox)| {
                shipments.insert(&be(s.shipment_id), codec::encode(s).map_err(Abort::Abort)?)?;
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
        Ok(self.shipments()?.into_iter().filter(|s| s.state == ShipmentState::Booking).collect())
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
        let trees = (&i.orders, &i.outbox, &i.order_counts, &i.personal);
        let result = trees.transaction(|(orders, outbox, counts, personal)| {
            let Some(v) = orders.get(be(order_id))? else { return Ok(None) };
            let before: OrderRecord = codec::decode(&v).map_err(|e| Abort::Abort(Stop::Codec(e)))?;
            let mut rec = before.clone();
            let task = change(&mut rec).map_err(|e| Abort::Abort(Stop::Refused(e)))?;
            rec.changed_ms = now_ms;
            orders.insert(&be(order_id), codec::encode(&rec).map_err(|e| Abort::Abort(Stop::Codec(e)))?)?;
            super::order_index::reindex(counts, personal, Some(&before), &rec)?;
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
