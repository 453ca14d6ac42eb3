//! Inventory rules: checking the WMS's absolute quantities, what to push, how to batch it, and
//! which rows Shopify refused. Pure; the push job and the `/wms/inventory` handler do the I/O.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::listings::parse_serial;

/// The desired quantity of one SKU at one location, and what Shopify last accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRow {
    pub sku: String,
    /// The inventory item the listing maps the SKU to.
    pub item_id: u64,
    pub location_id: u64,
    pub location_code: String,
    /// The latest absolute quantity from the WMS.
    pub desired: i64,
    /// The quantity Shopify last accepted for this row; `None` = never pushed (or resync asked).
    pub pushed: Option<i64>,
    /// Why Shopify refused this row; a quarantined row is not sent until released or relisted.
    pub quarantine: Option<String>,
    pub updated_ms: i64,
}

impl InventoryRow {
    pub fn is_pending(&self) -> bool {
        self.quarantine.is_none() && self.pushed != Some(self.desired)
    }
}

/// `PUT /wms/inventory` body (Increff "Location Wise Available To Promise").
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtpIn {
    pub location_code: String,
    #[serde(default)]
    pub inventories: Vec<AtpRowIn>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtpRowIn {
    #[serde(default)]
    pub channel_sku_code: String,
    #[serde(deserialize_with = "crate::lenient::int")]
    pub quantity: Option<i64>,
    #[serde(default)]
    pub channel_serial_no: Option<String>,
}

/// At most this many rows per `PUT /wms/inventory` (CONTRACT.md §4.2).
pub const MAX_ATP_ROWS: usize = 200;

/// The largest quantity Shopify takes: `inventorySetQuantities` quantities are GraphQL `Int`
/// (32-bit signed). A larger one would make Shopify refuse its whole batch.
pub const MAX_QUANTITY: i64 = i32::MAX as i64;

/// One row's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtpVerdict {
    Accept { sku: String, item_id: u64, quantity: i64 },
    Reject { sku: String, reason: String },
}

/// Checks each row: a known listing, a serial that agrees with it when given, a quantity from 0
/// to [`MAX_QUANTITY`].
/// (The location is checked once for the whole request by the caller.)
pub fn check_atp(rows: &[AtpRowIn], listing: impl Fn(&str) -> Option<u64>) -> Vec<AtpVerdict> {
    rows.iter()
        .map(|r| {
            let sku = r.channel_sku_code.trim().to_string();
            let reject = |reason: String| AtpVerdict::Reject { sku: sku.clone(), reason };
            let Some(item_id) = listing(&sku) else {
                return reject(format!("no listing for SKU {sku:?}"));
            };
            if let Some(serial) = r.channel_serial_no.as_deref().filter(|s| !s.trim().is_empty()) {
                if parse_serial(serial) != Some(item_id) {
                    return reject(format!("channelSerialNo {serial} disagrees with the listing ({item_id})"));
                }
            }
            match r.quantity {
                Some(q) if (0..=MAX_QUANTITY).contains(&q) => {
                    AtpVerdict::Accept { sku: sku.clone(), item_id, quantity: q }
                }
                Some(q) if q < 0 => reject(format!("negative quantity {q}")),
                Some(q) => reject(format!("quantity {q} is above the largest Shopify takes ({MAX_QUANTITY})")),
                None => reject("quantity missing or not a whole number".into()),
            }
        })
        .collect()
}

/// One row of an `inventorySetQuantities` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRow {
    pub sku: String,
    pub item_id: u64,
    pub location_id: u64,
    pub quantity: i64,
}

impl PushRow {
    pub fn of(row: &InventoryRow) -> Self {
        Self { sku: row.sku.clone(), item_id: row.item_id, location_id: row.location_id, quantity: row.desired }
    }
}

/// The idempotency key of one request: the same rows in the same run give the same key (a resend
/// after a lost answer is applied once); other rows, or a later run, give another.
pub fn idempotency_key(run_id: &str, rows: &[PushRow]) -> String {
    let mut h = Sha256::new();
    h.update(run_id.as_bytes());
    for r in rows {
        h.update(format!("|{}:{}:{}", r.item_id, r.location_id, r.quantity).as_bytes());
    }
    let hex: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("channeld-{hex}")
}

/// The row index a `userErrors.field` path names: `["input", "quantities", "3", ...]` → 3.
pub fn refused_row(field: &[String]) -> Option<usize> {
    let pos = field.iter().position(|f| f == "quantities")?;
    field.get(pos + 1)?.parse().ok()
}

/// Whether a `userErrors.field` path names no row but may be about one: no path, or the
/// `quantities` list as a whole. A path to another input (`reason`, `name`, ...) is about the
/// request, which no row of it can fix.
pub fn may_be_a_row(field: Option<&[String]>) -> bool {
    match field {
        None | Some([]) => true,
        Some(path) => path.iter().any(|f| f == "quantities") && refused_row(path).is_none(),
    }
}

/// How to find the rows Shopify refuses without naming them: the batch in halves, each sent on
/// its own (a half refused again is split again, down to the one row to quarantine).
pub fn halves(rows: Vec<PushRow>) -> [Vec<PushRow>; 2] {
    let mut first = rows;
    let second = first.split_off(first.len() / 2);
    [first, second]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sku: &str, q: serde_json::Value, serial: Option<&str>) -> AtpRowIn {
        serde_json::from_value(serde_json::json!({"channelSkuCode": sku, "quantity": q, "channelSerialNo": serial}))
            .unwrap()
    }

    #[test]
    fn atp_rows_are_checked_one_by_one() {
        let listing = |sku: &str| (sku == "302").then_some(49148385);
        let v = check_atp(
            &[
                row("302", 40.into(), Some("49148385")),
                row("302", 40.into(), Some("gid://shopify/InventoryItem/1")),
                row("999", 1.into(), None),
                row("302", (-1).into(), None),
                row("302", "7".into(), None),
                row("302", 2_147_483_647i64.into(), None),
                row("302", 2_147_483_648i64.into(), None),
                row("302", serde_json::json!(1e30), None),
            ],
            listing,
        );
        assert_eq!(v[0], AtpVerdict::Accept { sku: "302".into(), item_id: 49148385, quantity: 40 });
        assert!(matches!(&v[1], AtpVerdict::Reject { reason, .. } if reason.contains("disagrees")));
        assert!(matches!(&v[2], AtpVerdict::Reject { reason, .. } if reason.contains("no listing")));
        assert!(matches!(&v[3], AtpVerdict::Reject { reason, .. } if reason.contains("negative")));
        assert_eq!(v[4], AtpVerdict::Accept { sku: "302".into(), item_id: 49148385, quantity: 7 });
        assert_eq!(v[5], AtpVerdict::Accept { sku: "302".into(), item_id: 49148385, quantity: MAX_QUANTITY });
        for out_of_range in &v[6..] {
            assert!(
                matches!(out_of_range, AtpVerdict::Reject { reason, .. } if reason.contains("above")),
                "{out_of_range:?}"
            );
        }
    }

    #[test]
    fn the_fixture_request_parses() {
        let req: AtpIn =
            serde_json::from_str(include_str!("../../tests/fixtures/increff/atp_inventory_request.json")).unwrap();
        assert_eq!(req.location_code, "wd003");
        assert_eq!(req.inventories[0].quantity, Some(40));
    }

    #[test]
    fn keys_change_with_rows_and_runs() {
        let rows = vec![PushRow { sku: "A".into(), item_id: 1, location_id: 2, quantity: 3 }];
        let mut other = rows.clone();
        other[0].quantity = 4;
        assert_eq!(idempotency_key("r1", &rows), idempotency_key("r1", &rows));
        assert_ne!(idempotency_key("r1", &rows), idempotency_key("r1", &other));
        assert_ne!(idempotency_key("r1", &rows), idempotency_key("r2", &rows));
    }

    #[test]
    fn refused_rows_are_named_by_index() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(refused_row(&f(&["input", "quantities", "3", "inventoryItemId"])), Some(3));
        assert_eq!(refused_row(&f(&["input", "reason"])), None);
    }

    #[test]
    fn unnamed_refusals_may_be_about_a_row_unless_they_name_another_input() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(may_be_a_row(None));
        assert!(may_be_a_row(Some(&f(&[]))));
        assert!(may_be_a_row(Some(&f(&["input", "quantities"]))));
        assert!(!may_be_a_row(Some(&f(&["input", "quantities", "2", "quantity"]))), "that one names its row");
        assert!(!may_be_a_row(Some(&f(&["input", "reason"]))));
        let rows: Vec<PushRow> =
            (0..5).map(|i| PushRow { sku: i.to_string(), item_id: i, location_id: 1, quantity: 1 }).collect();
        let [a, b] = halves(rows);
        assert_eq!((a.len(), b.len()), (2, 3));
    }

    #[test]
    fn pending_means_unpushed_and_not_quarantined() {
        let mut r = InventoryRow {
            sku: "A".into(),
            item_id: 1,
            location_id: 2,
            location_code: "W".into(),
            desired: 5,
            pushed: None,
            quarantine: None,
            updated_ms: 0,
        };
        assert!(r.is_pending());
        r.pushed = Some(5);
        assert!(!r.is_pending());
        r.desired = 6;
        r.quarantine = Some("bad".into());
        assert!(!r.is_pending());
    }
}
