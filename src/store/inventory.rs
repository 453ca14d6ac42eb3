//! Listings and inventory rows.
//!
//! - `listings`: `s` ‖ SKU → [`Listing`], and `i` ‖ item id (BE) → SKU; one tree so that replacing
//!   the whole set is one atomic batch.
//! - `inventory`: location id (BE) ‖ SKU → [`InventoryRow`]. Rows change one at a time with
//!   compare-and-swap, so the WMS writing a new quantity and the push job recording what Shopify
//!   accepted never lose each other's update.

use serde::{Deserialize, Serialize};

use super::{codec, Result, Store};
use crate::flows::inventory::{InventoryRow, PushRow};
use crate::flows::listings::Listing;

const SKU: u8 = b's';
const ITEM: u8 = b'i';

/// What replacing the listings changed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingsChange {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// The last run of a scheduled job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub last_run_ms: i64,
    pub ok: bool,
    pub summary: String,
}

impl JobStatus {
    /// The status with its summary cut to a size that keeps the record small (summaries may quote
    /// another service's error text).
    fn capped(&self) -> JobStatus {
        let mut s = self.clone();
        super::cut_text(&mut s.summary, 1000);
        s
    }
}

fn sku_key(sku: &str) -> Vec<u8> {
    [&[SKU][..], sku.as_bytes()].concat()
}

fn item_key(item: u64) -> Vec<u8> {
    [&[ITEM][..], &item.to_be_bytes()].concat()
}

fn row_key(location_id: u64, sku: &str) -> Vec<u8> {
    [&location_id.to_be_bytes()[..], sku.as_bytes()].concat()
}

impl Store {
    pub fn listing(&self, sku: &str) -> Result<Option<u64>> {
        match self.inner.listings.get(sku_key(sku))? {
            Some(v) => Ok(Some(codec::decode::<Listing>(&v)?.item_id)),
            None => Ok(None),
        }
    }

    pub fn listings(&self) -> Result<Vec<Listing>> {
        self.inner.listings.scan_prefix([SKU]).map(|item| Ok(codec::decode(&item?.1)?)).collect()
    }

    /// At most `limit` listings by SKU, after the SKU `after`.
    pub fn listings_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<Listing>> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Included(vec![SKU]), |sku| Bound::Excluded(sku_key(sku)));
        self.inner
            .listings
            .range::<Vec<u8>, _>((start, Bound::Excluded(vec![SKU + 1])))
            .take(limit)
            .map(|item| Ok(codec::decode(&item?.1)?))
            .collect()
    }

    /// Replaces every listing at once. Rows whose SKU now maps to another item are re-pushed (and
    /// released from quarantine); rows whose SKU lost its listing are quarantined.
    pub fn replace_listings(&self, new: &[Listing]) -> Result<ListingsChange> {
        let old: std::collections::HashMap<String, u64> =
            self.listings()?.into_iter().map(|l| (l.sku, l.item_id)).collect();
        let mut batch = sled::Batch::default();
        for key in self.inner.listings.iter().keys() {
            batch.remove(key?);
        }
        let mut change = ListingsChange::default();
        for l in new {
            batch.insert(sku_key(&l.sku), codec::encode(l)?);
            batch.insert(item_key(l.item_id), l.sku.as_bytes());
            match old.get(&l.sku) {
                None => change.added += 1,
                Some(&item) if item == l.item_id => change.unchanged += 1,
                Some(_) => change.changed += 1,
            }
        }
        let new_map: std::collections::HashMap<&str, u64> = new.iter().map(|l| (l.sku.as_str(), l.item_id)).collect();
        change.removed = old.keys().filter(|sku| !new_map.contains_key(sku.as_str())).count();
        self.inner.listings.apply_batch(batch)?;
        for row in self.inventory_rows()? {
            let target = new_map.get(row.sku.as_str()).copied();
            if target == Some(row.item_id) {
                continue;
            }
            self.update_row(row.location_id, &row.sku, |r| match target {
                Some(item) => {
                    r.item_id = item;
                    r.pushed = None;
                    r.quarantine = None;
                }
                None => r.quarantine = Some("the SKU has no listing any more".into()),
            })?;
        }
        Ok(change)
    }

    /// Stores the WMS's latest absolute quantities for one location (latest wins per SKU).
    pub fn set_desired(
        &self,
        location_id: u64,
        location_code: &str,
        rows: &[(String, u64, i64)],
        now_ms: i64,
    ) -> Result<()> {
        for (sku, item_id, quantity) in rows {
            let key = row_key(location_id, sku);
            let mut failure = None;
            self.inner.inventory.fetch_and_update(&key, |old| {
                let mut row = old.and_then(|v| codec::decode::<InventoryRow>(v).ok()).unwrap_or(InventoryRow {
                    sku: sku.clone(),
                    item_id: *item_id,
                    location_id,
                    location_code: location_code.to_string(),
                    desired: *quantity,
                    pushed: None,
                    quarantine: None,
                    updated_ms: now_ms,
                });
                if row.item_id != *item_id {
                    row.item_id = *item_id;
                    row.pushed = None;
                    row.quarantine = None;
                }
                row.desired = *quantity;
                row.location_code = location_code.to_string();
                row.updated_ms = now_ms;
                match codec::encode(&row) {
                    Ok(bytes) => Some(bytes),
                    Err(e) => {
                        failure = Some(e);
                        old.map(<[u8]>::to_vec)
                    }
                }
            })?;
            if let Some(e) = failure {
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Stores a row as it is (import).
    pub(super) fn put_inventory_row(&self, row: &InventoryRow) -> Result<()> {
        self.inner.inventory.insert(row_key(row.location_id, &row.sku), codec::encode(row)?)?;
        Ok(())
    }

    pub fn inventory_rows(&self) -> Result<Vec<InventoryRow>> {
        self.inner.inventory.iter().map(|item| Ok(codec::decode(&item?.1)?)).collect()
    }

    /// Records what Shopify accepted, unless the row was relisted to another item meanwhile.
    pub fn mark_pushed(&self, rows: &[PushRow]) -> Result<()> {
        for p in rows {
            self.update_row(p.location_id, &p.sku, |r| {
                if r.item_id == p.item_id {
                    r.pushed = Some(p.quantity);
                }
            })?;
        }
        Ok(())
    }

    pub fn quarantine_row(&self, p: &PushRow, reason: &str) -> Result<()> {
        self.update_row(p.location_id, &p.sku, |r| {
            if r.item_id == p.item_id {
                let mut reason = reason.to_string();
                super::cut_text(&mut reason, 1000);
                r.quarantine = Some(reason);
            }
        })
    }

    /// Releases every quarantined row of a SKU. Returns how many.
    pub fn release_sku(&self, sku: &str) -> Result<usize> {
        let mut n = 0;
        for row in self.inventory_rows()?.into_iter().filter(|r| r.sku == sku && r.quarantine.is_some()) {
            self.update_row(row.location_id, &row.sku, |r| r.quarantine = None)?;
            n += 1;
        }
        Ok(n)
    }

    /// Forgets what was pushed, so every desired quantity is pushed again. Returns how many rows.
    pub fn resync_inventory(&self) -> Result<usize> {
        let rows = self.inventory_rows()?;
        for row in &rows {
            self.update_row(row.location_id, &row.sku, |r| r.pushed = None)?;
        }
        Ok(rows.len())
    }

    /// Forgets what was pushed for one row, so the inventory job pushes the WMS's quantity again
    /// (after a return restocked units on Shopify: the WMS stays the source of truth).
    pub fn repush_inventory(&self, location_id: u64, sku: &str) -> Result<()> {
        self.update_row(location_id, sku, |r| r.pushed = None)
    }

    fn update_row(&self, location_id: u64, sku: &str, f: impl Fn(&mut InventoryRow)) -> Result<()> {
        self.inner.inventory.fetch_and_update(row_key(location_id, sku), |old| {
            let old = old?;
            let Ok(mut row) = codec::decode::<InventoryRow>(old) else { return Some(old.to_vec()) };
            f(&mut row);
            Some(codec::encode(&row).unwrap_or_else(|_| old.to_vec()))
        })?;
        Ok(())
    }

    pub fn set_job_status(&self, job: &str, status: &JobStatus) -> Result<()> {
        self.inner.meta.insert(format!("job:{job}"), codec::encode(&status.capped())?)?;
        Ok(())
    }

    /// The newest Shopify `updated_at` (unix ms) reconciliation has fully processed.
    pub fn reconcile_watermark(&self) -> Result<Option<i64>> {
        match self.inner.meta.get(b"reconcile_watermark")? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    pub fn set_reconcile_watermark(&self, ms: i64) -> Result<()> {
        self.inner.meta.insert(b"reconcile_watermark", codec::encode(&ms)?)?;
        Ok(())
    }

    /// A courier's cached login token and when it was obtained (unix ms).
    pub fn courier_token(&self, courier: &str) -> Result<Option<(String, i64)>> {
        match self.inner.meta.get(format!("token:{courier}"))? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    pub fn set_courier_token(&self, courier: &str, token: &str, obtained_ms: i64) -> Result<()> {
        self.inner.meta.insert(format!("token:{courier}"), codec::encode(&(token.to_string(), obtained_ms))?)?;
        Ok(())
    }

    /// Raises (`Some`) or clears (`None`) an operator alert, e.g. `wms_credentials`.
    pub fn set_alert(&self, name: &str, alert: Option<&JobStatus>) -> Result<()> {
        let key = format!("alert:{name}");
        match alert {
            Some(a) => self.inner.meta.insert(key, codec::encode(&a.capped())?)?,
            None => self.inner.meta.remove(key)?,
        };
        Ok(())
    }

    /// Alerts raised and not cleared, with when and why.
    pub fn alerts(&self) -> Result<Vec<(String, JobStatus)>> {
        self.inner
            .meta
            .scan_prefix(b"alert:")
            .map(|item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k[6..]).into_owned(), codec::decode(&v)?))
            })
            .collect()
    }

    pub fn job_statuses(&self) -> Result<Vec<(String, JobStatus)>> {
        self.inner
            .meta
            .scan_prefix(b"job:")
            .map(|item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k[4..]).into_owned(), codec::decode(&v)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(sku: &str, item: u64) -> Listing {
        Listing { sku: sku.into(), item_id: item }
    }

    #[tokio::test]
    async fn relisting_repushes_and_releases_rows() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 8).unwrap();
        s.replace_listings(&[listing("A", 1), listing("B", 2)]).unwrap();
        s.set_desired(9, "W", &[("A".into(), 1, 5), ("B".into(), 2, 7)], 0).unwrap();
        let a = PushRow { sku: "A".into(), item_id: 1, location_id: 9, quantity: 5 };
        s.mark_pushed(std::slice::from_ref(&a)).unwrap();
        s.quarantine_row(&PushRow { sku: "B".into(), item_id: 2, location_id: 9, quantity: 7 }, "bad").unwrap();
        assert!(s.inventory_rows().unwrap().iter().all(|r| !r.is_pending()));

        let change = s.replace_listings(&[listing("A", 1), listing("B", 3)]).unwrap();
        assert_eq!(change, ListingsChange { added: 0, changed: 1, removed: 0, unchanged: 1 });
        let rows = s.inventory_rows().unwrap();
        let b = rows.iter().find(|r| r.sku == "B").unwrap();
        assert_eq!((b.item_id, b.quarantine.clone(), b.is_pending()), (3, None, true));
        assert_eq!(s.listing("B").unwrap(), Some(3));
        assert_eq!(s.listings().unwrap().len(), 2);
    }
}
