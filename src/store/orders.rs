//! Orders, their names and webhook ids: recording an event is one transaction.

use std::convert::Infallible;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::order_index::{reindex, Indexed};
use super::{be, chunks, codec, Result, Store, StoreError};
use crate::flows::intake::Change;
use crate::flows::model::{OrderRecord, OrderStatus};

/// A webhook body as an older channeld kept it in sled (`raw_events`, before that `payloads`);
/// read once, when such a store is upgraded and its bodies move to the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RawEvent {
    pub topic: String,
    pub received_ms: i64,
    pub body: String,
}

/// What recording an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// This (topic, event id) was accepted before: nothing changed.
    Duplicate,
    Applied {
        status: OrderStatus,
        outcome: &'static str,
        queued: usize,
        /// Changes on Shopify after creation seen for the first time, not forwarded to the WMS.
        not_forwarded: Vec<&'static str>,
    },
}

/// The `webhook_ids` key of a delivery: topic ‖ 0 ‖ event id. Shopify's ids are short; a longer
/// header (anyone with the secret can send one) is keyed by its SHA-256, so no key grows large.
pub(super) fn dedupe_key(topic: &str, event_id: &str) -> Vec<u8> {
    use sha2::Digest;
    const MAX_ID: usize = 128;
    let id = if event_id.len() > MAX_ID {
        std::borrow::Cow::Owned(format!("sha256:{:x}", sha2::Sha256::digest(event_id.as_bytes())))
    } else {
        std::borrow::Cow::Borrowed(event_id)
    };
    [topic.as_bytes(), &[0], id.as_bytes()].concat()
}

impl Store {
    /// Records one Shopify event atomically: the de-duplication key, the order as `decide` changes
    /// it, and the outbox entries it queues. Its raw body is the journal's (see [`Store::submit`]).
    pub fn record_event(
        &self,
        topic: &str,
        event_key: Option<&str>,
        order_id: u64,
        now_ms: i64,
        decide: impl Fn(Option<OrderRecord>) -> Change,
    ) -> Result<Ingested> {
        let i = &self.inner;
        let seen_at = codec::encode(&now_ms)?;
        let dedupe_key = event_key.map(|k| dedupe_key(topic, k));
        let dead_creations = self.dead_creations(order_id)?;
        let write = self.outbox_write();
        let trees = (
            &i.orders,
            &i.order_names,
            &i.outbox,
            &i.outbox_queued,
            &i.webhook_ids,
            &i.order_counts,
            &i.personal,
            &i.overflow,
            &i.order_list,
            &i.activity,
        );
        let about = format!("{topic} {}", event_key.unwrap_or_default());
        let result =
            trees.transaction(|(orders, names, outbox, queued, ids, counts, personal, overflow, list, activity)| {
                if let Some(k) = &dedupe_key {
                    if ids.get(k)?.is_some() {
                        return Ok(Ingested::Duplicate);
                    }
                    ids.insert(k.as_slice(), seen_at.as_slice())?;
                }
                let existing = match chunks::get(orders, overflow, chunks::ORDERS, &be(order_id))? {
                    None if Store::was_pruned(names, order_id)? => {
                        // Finished and pruned after the retention: nothing to do with it any more.
                        return Ok(Ingested::Applied {
                            status: OrderStatus::Skipped,
                            outcome: "pruned",
                            queued: 0,
                            not_forwarded: Vec::new(),
                        });
                    }
                    Some(v) => Some(codec::decode::<OrderRecord>(&v).map_err(ConflictableTransactionError::Abort)?),
                    None => None,
                };
                let before = existing.as_ref().map(Indexed::of);
                let change = decide(existing);
                if !change.record.name.is_empty() {
                    names.insert(change.record.name.as_bytes(), &be(order_id))?;
                }
                reindex(counts, personal, list, before, &change.record)?;
                super::activity::count_change(activity, before, &change.record, now_ms)?;
                let what = format!("webhook {topic}: {}", change.outcome);
                super::activity::note(activity, order_id, now_ms, &about, &what)?;
                let rec = codec::encode(&change.record).map_err(ConflictableTransactionError::Abort)?;
                chunks::put(orders, overflow, chunks::ORDERS, &be(order_id), &rec)?;
                let tasks = super::outbox::settle_dead_creations(
                    outbox,
                    queued,
                    overflow,
                    &dead_creations,
                    &change.record,
                    &change.tasks,
                    now_ms,
                )?;
                for task in &tasks {
                    super::outbox::queue(outbox, queued, overflow, order_id, task, now_ms)?;
                }
                Ok(Ingested::Applied {
                    status: change.record.status,
                    outcome: change.outcome,
                    queued: change.tasks.len(),
                    not_forwarded: change.not_forwarded.clone(),
                })
            });
        let result = result.map_err(StoreError::from)?;
        write.made_due(if let Ingested::Applied { queued, .. } = &result { *queued } else { 0 });
        if result != Ingested::Duplicate {
            self.trim_events(order_id)?;
        }
        Ok(result)
    }

    pub fn order(&self, id: u64) -> Result<Option<OrderRecord>> {
        match self.inner.orders.get(be(id))? {
            Some(v) => self.order_of(&be(id), v),
            None => Ok(None),
        }
    }

    /// Decodes a stored order, reassembling it when it was too large to keep inline.
    pub(super) fn order_of(&self, key: &[u8], stored: sled::IVec) -> Result<Option<OrderRecord>> {
        let i = &self.inner;
        match chunks::resolve(&i.orders, &i.overflow, chunks::ORDERS, key, stored)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Finds an order by numeric id or by name (`#1001`; the `#` may be left out).
    pub fn find_order(&self, id_or_name: &str) -> Result<Option<OrderRecord>> {
        let s = id_or_name.trim();
        if let Some(rec) = s.parse::<u64>().ok().map(|id| self.order(id)).transpose()?.flatten() {
            return Ok(Some(rec));
        }
        let name = if s.starts_with('#') { s.to_string() } else { format!("#{s}") };
        match self.inner.order_names.get(name.as_bytes())? {
            Some(id) => self.order(u64::from_be_bytes(id.as_ref().try_into().unwrap_or([0; 8]))),
            None => Ok(None),
        }
    }

    /// Visits every order without holding them all in memory (a store can hold millions).
    pub fn each_order(&self, mut f: impl FnMut(OrderRecord) -> Result<()>) -> Result<()> {
        for item in self.inner.orders.iter() {
            let (k, v) = item?;
            if let Some(rec) = self.order_of(&k, v)? {
                f(rec)?;
            }
        }
        Ok(())
    }

    /// Changes one stored order in place (used by the outbox worker after a call), keeping its
    /// indexes right. An unreadable record is left exactly as it is (never dropped): `Ok(None)`.
    pub fn update_order(&self, id: u64, f: impl Fn(&mut OrderRecord)) -> Result<Option<OrderRecord>> {
        let i = &self.inner;
        let trees = (&i.orders, &i.order_counts, &i.personal, &i.overflow, &i.order_list, &i.activity);
        let at_ms = super::now_ms();
        let result = trees.transaction(|(orders, counts, personal, overflow, list, activity)| {
            let Some(old) = chunks::get(orders, overflow, chunks::ORDERS, &be(id))? else {
                return Ok::<_, ConflictableTransactionError<Infallible>>(None);
            };
            let Ok(mut rec) = codec::decode::<OrderRecord>(&old) else { return Ok(None) };
            let before = Indexed::of(&rec);
            f(&mut rec);
            let Ok(bytes) = codec::encode(&rec) else { return Ok(None) };
            chunks::put(orders, overflow, chunks::ORDERS, &be(id), &bytes)?;
            reindex(counts, personal, list, Some(before), &rec)?;
            super::activity::count_change(activity, Some(before), &rec, at_ms)?;
            Ok(Some(rec))
        });
        result.map_err(|e| match e {
            TransactionError::Abort(never) => match never {},
            TransactionError::Storage(e) => StoreError::Sled(e),
        })
    }
}
