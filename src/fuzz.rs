//! Fuzzing entry points. Each takes arbitrary bytes as a request body arrives and runs them
//! through the parsing and business rules the server applies to that body, checking the
//! invariants those rules promise. The cargo-fuzz targets in `fuzz/` call these functions; the
//! test at the bottom replays every saved case (`fuzz/seeds/` and `fuzz/regressions/`) on each
//! `cargo test`, so a crash once found stays fixed.
//!
//! Compiled for tests and with the `fuzz` feature only: the daemon does not carry it.

use std::sync::OnceLock;

use serde_json::Value;

use crate::config::{self, Location};
use crate::flows::handover::{entries, HandoverIn};
use crate::flows::intake::{apply, cancel_body, create_body, rerun, Topic};
use crate::flows::inventory::{check_atp, AtpIn, AtpVerdict};
use crate::flows::listings::{parse_csv, parse_serial, unknown_serials};
use crate::flows::model::{OrderRecord, Task};
use crate::flows::seller_cancel::{plan, SellerCancelIn};
use crate::flows::shipment::{clickpost_request, new_shipment, PackIn};
use crate::flows::shopify_order::{parse_webhook_body, ShopifyOrder};
use crate::flows::OrderRules;

/// A named entry point, as `fuzz/fuzz_targets/<name>.rs` calls it.
pub type Target = (&'static str, fn(&[u8]));

/// Every target: the webhook body, each `/wms/*` request body, and the listings file.
pub const TARGETS: &[Target] = &[
    ("order_webhook", order_webhook),
    ("wms_inventory", wms_inventory),
    ("wms_seller_cancel", wms_seller_cancel),
    ("wms_shipment", wms_shipment),
    ("wms_handover", wms_handover),
    ("listings_csv", listings_csv),
];

/// The order rules under each routing mode, built once: the targets run millions of times.
fn all_rules() -> &'static [OrderRules] {
    static RULES: OnceLock<Vec<OrderRules>> = OnceLock::new();
    RULES.get_or_init(|| {
        ["shopify", "wms", "fixed"]
            .map(|routing| {
                let toml = format!("routing = \"{routing}\"\ndefault_location = \"WH-1\"");
                let cfg: config::Orders = toml::from_str(&toml).expect("the fuzz order rules are valid");
                OrderRules::new(&cfg, 0)
            })
            .to_vec()
    })
}

/// A signed webhook body (any topic): read leniently, then created, updated, cancelled and
/// re-run as the intake flow would, with each routing mode.
pub fn order_webhook(data: &[u8]) {
    let Some((id, order)) = parse_webhook_body(data) else { return };
    for rules in all_rules() {
        let order = order.as_ref().map_err(String::as_str);
        let created = apply(None, Topic::Create, id, order, rules, 0);
        check_change(&created.record, &created.tasks);
        let Ok(order) = order else {
            assert!(created.tasks.is_empty(), "an unreadable order is never sent");
            continue;
        };
        let mut rec = created.record;
        rec.wms_created = created.tasks.contains(&Task::WmsCreate);
        let updated = apply(Some(rec.clone()), Topic::Updated, id, Ok(order), rules, 1);
        check_change(&updated.record, &updated.tasks);
        let again = rerun(Some(updated.record), order, rules, 2);
        check_change(&again.record, &again.tasks);
        let cancelled = apply(Some(rec), Topic::Cancelled, id, Ok(order), rules, 3);
        assert!(cancelled.record.cancelled, "a cancellation always marks the order cancelled");
        if let Some(body) = cancel_body(&cancelled.record) {
            serde_json::to_string(&body).expect("a cancellation body serialises");
        }
    }
}

/// What every intake result must satisfy, whatever the body said.
fn check_change(rec: &OrderRecord, tasks: &[Task]) {
    if tasks.contains(&Task::WmsCreate) {
        let snap = rec.wms.as_ref().expect("a queued creation has its snapshot");
        let body = create_body(rec).expect("a queued, uncancelled order has a creation body");
        assert!(!body.order_items.is_empty(), "a creation carries at least one item");
        assert!(body.order_items.iter().all(|i| i.quantity > 0), "no item is sent with quantity 0");
        assert_eq!(body.order_items.len(), snap.items.len());
        serde_json::to_string(&body).expect("a creation body serialises");
    }
}

/// `PUT /wms/inventory`: every row gets exactly one verdict; nothing negative is accepted.
pub fn wms_inventory(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<AtpIn>(data) else { return };
    // Listings: `SKU-<n>` is inventory item n.
    let verdicts = check_atp(&req.inventories, |sku| sku.strip_prefix("SKU-").and_then(parse_serial));
    assert_eq!(verdicts.len(), req.inventories.len());
    for v in verdicts {
        if let AtpVerdict::Accept { quantity, item_id, .. } = v {
            assert!(quantity >= 0 && item_id > 0);
        }
    }
}

/// The fixture order, accepted and created at the WMS: what the fulfilment calls act on (built once).
fn sent_order() -> &'static OrderRecord {
    static SENT: OnceLock<OrderRecord> = OnceLock::new();
    SENT.get_or_init(|| {
        let fixture: Value =
            serde_json::from_str(include_str!("../tests/fixtures/shopify/order_450789469_get_2025-10.json"))
                .expect("the fixture is JSON");
        let order: ShopifyOrder = serde_json::from_value(fixture["order"].clone()).expect("the fixture order reads");
        let wms_rules = &all_rules()[1];
        let mut rec = apply(None, Topic::Create, order.id, Ok(&order), wms_rules, 0).record;
        rec.wms_created = true;
        rec
    })
}

/// `PUT /wms/orders/cancel` against the fixture order: cancelled quantities never exceed what was
/// ordered, and "all" means every unit.
pub fn wms_seller_cancel(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<SellerCancelIn>(data) else { return };
    let rec = sent_order();
    let items = &rec.wms.as_ref().expect("sent").items;
    for refund in [false, true] {
        let Ok(p) = plan(rec, &req, refund) else { continue };
        for (code, qty) in &p.cancelled {
            let item = items.iter().find(|i| &i.item_code == code).expect("only known items are cancelled");
            assert!(*qty <= item.quantity, "{code}: {qty} cancelled of {}", item.quantity);
        }
        if p.all {
            assert!(items.iter().all(|i| p.cancelled.iter().any(|(c, q)| c == &i.item_code && *q == i.quantity)));
        }
    }
}

/// `POST /wms/shipments` against the fixture order: a shipment, when made, ships only units of
/// the order, and its Clickpost request and answer are built.
pub fn wms_shipment(data: &[u8]) {
    let Ok(pack) = serde_json::from_slice::<PackIn>(data) else { return };
    let rec = sent_order();
    let Ok(s) = new_shipment(rec, &pack, &[], "clickpost", (500, [10, 10, 10]), 0) else { return };
    let items = &rec.wms.as_ref().expect("sent").items;
    for line in &s.lines {
        let item = items.iter().find(|i| i.item_code == line.item_code).expect("only the order's items ship");
        assert!(line.quantity > 0);
        assert!(
            line.quantity <= item.quantity,
            "{} units of {} shipped, {} ordered",
            line.quantity,
            item.item_code,
            item.quantity
        );
        assert_eq!(line.shopify_lines.iter().map(|(_, q)| *q).sum::<u32>(), line.quantity);
    }
    let pickup: Location = toml::from_str("shopify_location_id = 1\nwms_location_code = \"WH-1\"").expect("valid");
    let body = clickpost_request(&s, rec, &pickup, 1, "account");
    assert_eq!(body["shipment_details"]["reference_number"], s.reference());
    let _ = s.answer();
}

/// `POST /wms/handover`: a request is read whole or refused whole.
pub fn wms_handover(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<HandoverIn>(data) else { return };
    if let Ok(pairs) = entries(&req) {
        assert_eq!(pairs.len(), req.handover_items.len());
    }
}

/// `listings import FILE`: an accepted file has no repeated SKU or serial and no empty SKU.
pub fn listings_csv(data: &[u8]) {
    let Ok(lines) = parse_csv(data) else { return };
    let mut skus: Vec<&str> = lines.iter().map(|l| l.listing.sku.as_str()).collect();
    let mut serials: Vec<u64> = lines.iter().map(|l| l.listing.item_id).collect();
    skus.sort_unstable();
    serials.sort_unstable();
    assert!(skus.windows(2).all(|w| w[0] != w[1]) && serials.windows(2).all(|w| w[0] != w[1]));
    assert!(skus.iter().all(|s| !s.is_empty()) && serials.iter().all(|&n| n > 0));
    assert_eq!(unknown_serials(&lines, |n| n % 2 == 0).len(), serials.iter().filter(|&&n| n % 2 == 1).count());
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every saved case of every target: the seeds (real fixtures) and the regressions (inputs that
    /// once crashed a target, minimised by `cargo fuzz tmin`).
    #[test]
    fn saved_fuzz_cases_replay_cleanly() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        for (name, target) in super::TARGETS {
            let mut replayed = 0;
            for kind in ["seeds", "regressions"] {
                let Ok(dir) = std::fs::read_dir(root.join(kind).join(name)) else { continue };
                for file in dir {
                    let path = file.unwrap().path();
                    let data = std::fs::read(&path).unwrap();
                    let outcome = std::panic::catch_unwind(|| target(&data));
                    assert!(outcome.is_ok(), "{name} panics on {}", path.display());
                    replayed += 1;
                }
            }
            assert!(replayed > 0, "no saved case for fuzz target {name} under {}", root.display());
        }
    }
}
