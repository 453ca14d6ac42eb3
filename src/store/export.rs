//! `channeld export`: every record of every tree as JSON lines, for backup and support.
//!
//! Each record is read whole and decoded with its own type. sled has no snapshot across trees, so
//! an export taken while serving is consistent per record, not across records: a webhook recorded
//! during the export may appear in one tree and not yet in another. Every record is a state, not a
//! delta, so such an export still restores to a state channeld can resume from.

use serde_json::{json, Value};

use super::inventory::JobStatus;
use super::{codec, Result, Store};
use crate::flows::inventory::InventoryRow;
use crate::flows::listings::Listing;
use crate::flows::model::OutboxEntry;

impl Store {
    /// Emits every record; returns how many.
    pub fn export(&self, mut emit: impl FnMut(Value) -> std::io::Result<()>) -> Result<usize> {
        let i = &self.inner;
        let mut n = 0;
        let mut put = |tree: &str, key: Value, value: Value| -> Result<()> {
            emit(json!({ "tree": tree, "key": key, "value": value })).map_err(|e| super::StoreError::Sled(e.into()))?;
            n += 1;
            Ok(())
        };
        for item in i.orders.iter() {
            let (k, v) = item?;
            let id = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
            if let Some(rec) = self.order_of(&k, v)? {
                put("orders", json!(id), json!(rec))?;
            }
        }
        for item in i.outbox.iter() {
            let (_, v) = item?;
            let e: OutboxEntry = codec::decode(&v)?;
            put("outbox", json!([e.order_id, e.seq]), json!(e))?;
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
            put("webhook_ids", json!(String::from_utf8_lossy(&k).replace('\0', " ")), json!(at))?;
        }
        for item in i.listings.scan_prefix(b"s") {
            let (_, v) = item?;
            let l: Listing = codec::decode(&v)?;
            put("listings", json!(l.sku), json!(l.item_id))?;
        }
        for item in i.inventory.iter() {
            let (_, v) = item?;
            let row: InventoryRow = codec::decode(&v)?;
            put("inventory", json!([row.location_id, row.sku]), json!(row))?;
        }
        for item in i.meta.iter() {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let value = if key.starts_with("token:") {
                // Courier tokens are credentials: never exported.
                continue;
            } else if key.starts_with("job:") {
                json!(codec::decode::<JobStatus>(&v)?)
            } else if key == "reconcile_watermark" {
                json!(codec::decode::<i64>(&v)?)
            } else if v.len() == 8 {
                json!(i64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])))
            } else {
                json!(v.to_vec())
            };
            put("meta", json!(key), value)?;
        }
        Ok(n)
    }
}
