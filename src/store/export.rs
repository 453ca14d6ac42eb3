//! `channeld export` and `channeld import`: every record of every tree as JSON lines, for backup
//! and support, and the way back from such a file into an empty store.
//!
//! Each record is read whole and decoded with its own type. sled has no snapshot across trees, so
//! an export taken while serving is consistent per record, not across records: a webhook recorded
//! during the export may appear in one tree and not yet in another. Every record is a state, not a
//! delta, so such an export still restores to a state channeld can resume from.
//!
//! Indexes (order names, counts, the personal-data and shipment indexes) are not exported: an
//! import rebuilds them from the records, through the same writes the daemon makes. Courier tokens
//! are credentials and never leave the store; internal markers (format, applied journal record)
//! belong to the store that wrote them.

use serde_json::{json, Value};
use sled::transaction::{ConflictableTransactionError as Abort, TransactionError, Transactional};

use super::handovers::HandoverRecord;
use super::inventory::JobStatus;
use super::order_index::{reindex, Indexed};
use super::{be, chunks, codec, Inbound, Result, Store, StoreError};
use crate::flows::inventory::InventoryRow;
use crate::flows::listings::Listing;
use crate::flows::model::{OrderRecord, OutboxEntry};
use crate::flows::shipment::ShipmentRecord;

/// `meta` keys an export carries (the rest are internal to the store that wrote them).
fn exported_meta(key: &str) -> bool {
    key.starts_with("job:") || key == "reconcile_watermark" || key == "first_start_ms"
}

/// What an import brought in, per tree.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    pub records: usize,
    pub orders: usize,
    pub outbox: usize,
    pub shipments: usize,
    pub handovers: usize,
    pub payloads: usize,
}

impl Store {
    /// Emits every record; returns how many.
    pub fn export(&self, mut emit: impl FnMut(Value) -> std::io::Result<()>) -> Result<usize> {
        let i = &self.inner;
        let mut n = 0;
        let mut put = |tree: &str, key: Value, value: Value| -> Result<()> {
            emit(json!({ "tree": tree, "key": key, "value": value })).map_err(StoreError::io)?;
            n += 1;
            Ok(())
        };
        self.each_order(|rec| put("orders", json!(rec.id), json!(rec)))?;
        for e in self.outbox_entries()? {
            put("outbox", json!([e.order_id, e.seq]), json!(e))?;
        }
        self.each_shipment(|s| put("shipments", json!([s.order_id, s.shipment_id]), json!(s)))?;
        for item in i.handovers.iter() {
            let h: HandoverRecord = codec::decode(&item?.1)?;
            put("handovers", json!(h.order_id), json!(h))?;
        }
        self.each_inbound(|seq, event| match event.webhook_body() {
            Some((topic, body)) => {
                put("payloads", json!(seq), json!({ "topic": topic, "received_ms": event.received_ms(), "body": body }))
            }
            None => Ok(()),
        })?;
        for item in i.webhook_ids.iter() {
            let (k, v) = item?;
            let at: i64 = codec::decode(&v)?;
            let (topic, id) = k.split_at(k.iter().position(|b| *b == 0).unwrap_or(k.len()));
            let id = id.get(1..).unwrap_or_default();
            put("webhook_ids", json!([String::from_utf8_lossy(topic), String::from_utf8_lossy(id)]), json!(at))?;
        }
        for item in i.listings.scan_prefix(b"s") {
            let l: Listing = codec::decode(&item?.1)?;
            put("listings", json!(l.sku), json!(l.item_id))?;
        }
        for item in i.inventory.iter() {
            let row: InventoryRow = codec::decode(&item?.1)?;
            put("inventory", json!([row.location_id, row.sku]), json!(row))?;
        }
        for item in i.meta.iter() {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            if !exported_meta(&key) {
                continue;
            }
            let value = if key.starts_with("job:") {
                json!(codec::decode::<JobStatus>(&v)?)
            } else if key == "reconcile_watermark" {
                json!(codec::decode::<i64>(&v)?)
            } else {
                json!(i64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])))
            };
            put("meta", json!(key), value)?;
        }
        Ok(n)
    }

    /// Whether the store holds no record a restore could clash with.
    pub fn is_empty(&self) -> bool {
        let i = &self.inner;
        [&i.orders, &i.outbox, &i.shipments, &i.handovers, &i.listings, &i.inventory].iter().all(|t| t.is_empty())
    }

    /// Restores an export into an empty store. Each line is checked as it is read; a line that
    /// does not fit stops the import with its number (the store is then not used: delete it and
    /// try again). Blocks: run it on a blocking thread.
    pub fn import(&self, lines: impl Iterator<Item = std::io::Result<String>>) -> Result<Imported> {
        if !self.is_empty() {
            return Err(StoreError::NotFound("the store is not empty: import restores into a new store only".into()));
        }
        let mut report = Imported::default();
        let (mut listings, mut payloads, mut top_seq) = (Vec::new(), Vec::new(), 0u64);
        for (n, line) in lines.enumerate() {
            let line = line.map_err(StoreError::io)?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |why: String| StoreError::NotFound(format!("line {}: {why}", n + 1));
            let v: Value = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
            let field = |name: &str| v.get(name).cloned().unwrap_or(Value::Null);
            let value = field("value");
            let typed = |what: &str| bad(format!("not a {what} record"));
            match v["tree"].as_str().unwrap_or_default() {
                "orders" => {
                    self.import_order(&serde_json::from_value(value).map_err(|_| typed("orders"))?)?;
                    report.orders += 1;
                }
                "outbox" => {
                    let e: OutboxEntry = serde_json::from_value(value).map_err(|_| typed("outbox"))?;
                    top_seq = top_seq.max(e.seq);
                    self.restore_entry(&e)?;
                    report.outbox += 1;
                }
                "shipments" => {
                    let s: ShipmentRecord = serde_json::from_value(value).map_err(|_| typed("shipments"))?;
                    self.save_shipment(&s, &[], s.updated_ms)?;
                    report.shipments += 1;
                }
                "handovers" => {
                    let h: HandoverRecord = serde_json::from_value(value).map_err(|_| typed("handovers"))?;
                    self.inner.handovers.insert(be(h.order_id), codec::encode(&h)?)?;
                    report.handovers += 1;
                }
                "payloads" => {
                    let text = |k: &str| value[k].as_str().map(str::to_string).ok_or_else(|| typed("payloads"));
                    let received_ms = value["received_ms"].as_i64().ok_or_else(|| typed("payloads"))?;
                    payloads.push(Inbound::Legacy { topic: text("topic")?, received_ms, body: text("body")? });
                }
                "webhook_ids" => {
                    let key = field("key");
                    let (Some(topic), Some(id), Some(at)) = (key[0].as_str(), key[1].as_str(), value.as_i64()) else {
                        return Err(typed("webhook_ids"));
                    };
                    self.inner
                        .webhook_ids
                        .insert([topic.as_bytes(), &[0], id.as_bytes()].concat(), codec::encode(&at)?)?;
                }
                "listings" => {
                    let key = field("key");
                    let (Some(sku), Some(item_id)) = (key.as_str(), value.as_u64()) else {
                        return Err(typed("listings"));
                    };
                    listings.push(Listing { sku: sku.to_string(), item_id });
                }
                "inventory" => {
                    let row: InventoryRow = serde_json::from_value(value).map_err(|_| typed("inventory"))?;
                    self.put_inventory_row(&row)?;
                }
                "meta" => {
                    let key = field("key").as_str().map(str::to_string).ok_or_else(|| typed("meta"))?;
                    let bytes = match key.as_str() {
                        k if k.starts_with("job:") => {
                            codec::encode(&serde_json::from_value::<JobStatus>(value).map_err(|_| typed("meta"))?)?
                        }
                        "reconcile_watermark" => codec::encode(&value.as_i64().ok_or_else(|| typed("meta"))?)?,
                        "first_start_ms" => value.as_i64().ok_or_else(|| typed("meta"))?.to_be_bytes().to_vec(),
                        _ => continue,
                    };
                    self.inner.meta.insert(key.as_bytes(), bytes)?;
                }
                other => return Err(bad(format!("unknown tree {other:?}"))),
            }
            report.records += 1;
        }
        if !listings.is_empty() {
            self.replace_listings(&listings)?;
        }
        // New outbox entries must sort after the imported ones of their order.
        while self.inner.db.generate_id()? <= top_seq {}
        report.payloads = payloads.len();
        report.records += payloads.len();
        self.append_legacy(payloads)?;
        self.sync_state_blocking()?;
        Ok(report)
    }

    /// Stores an imported order with its name and indexes, as intake would have.
    fn import_order(&self, rec: &OrderRecord) -> Result<()> {
        let i = &self.inner;
        let bytes = codec::encode(rec)?;
        (&i.orders, &i.order_names, &i.order_counts, &i.personal, &i.overflow, &i.order_list)
            .transaction(|(orders, names, counts, personal, overflow, list)| {
                if !rec.name.is_empty() {
                    names.insert(rec.name.as_bytes(), &be(rec.id))?;
                }
                reindex(counts, personal, list, None::<Indexed>, rec)?;
                chunks::put(orders, overflow, chunks::ORDERS, &be(rec.id), &bytes)?;
                Ok::<_, Abort<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(()) => StoreError::NotFound("an order could not be imported".into()),
                TransactionError::Storage(e) => StoreError::Sled(e),
            })
    }
}
