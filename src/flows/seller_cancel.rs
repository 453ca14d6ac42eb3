//! Seller cancellation (`PUT /wms/orders/cancel`): the WMS says how many units of each item are
//! cancelled, as absolute numbers. This decides what Shopify must do: nothing (the same numbers
//! again), cancel the whole order, or edit some lines down to what remains.

use serde::Deserialize;

use super::model::{OrderRecord, SentItem, Task};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SellerCancelIn {
    #[serde(default)]
    pub order_code: String,
    #[serde(default)]
    pub order_items: Vec<CancelItemIn>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelItemIn {
    #[serde(default)]
    pub channel_sku_code: String,
    #[serde(default, deserialize_with = "crate::lenient::text")]
    pub order_item_code: String,
    /// Absolute; the breakdown fields (`sellerCancelledQty`, ...) are ignored.
    #[serde(default, deserialize_with = "crate::lenient::int")]
    pub cancelled_quantity: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SellerCancelError {
    NotFound(String),
    Invalid(String),
}

/// What to record and what to ask of Shopify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SellerCancelPlan {
    /// The absolute cancelled quantity per `orderItemCode` after this request.
    pub cancelled: Vec<(String, u32)>,
    /// Every unit is cancelled now.
    pub all: bool,
    pub task: Option<Task>,
}

pub fn plan(rec: &OrderRecord, req: &SellerCancelIn, refund: bool) -> Result<SellerCancelPlan, SellerCancelError> {
    let Some(snap) = rec.at_wms() else {
        return Err(SellerCancelError::NotFound(format!("order {} has not reached the WMS", rec.id)));
    };
    if req.order_items.is_empty() {
        return Err(SellerCancelError::Invalid("orderItems is empty".into()));
    }
    let previous = |code: &str| rec.seller_cancelled.iter().find(|(c, _)| c == code).map_or(0, |(_, q)| *q);
    let mut cancelled: Vec<(String, u32)> =
        snap.items.iter().map(|i| (i.item_code.clone(), previous(&i.item_code))).collect();
    for it in &req.order_items {
        let code = it.order_item_code.trim();
        let item = find_item(&snap.items, code)
            .ok_or_else(|| SellerCancelError::NotFound(format!("order {} has no orderItemCode {code}", rec.id)))?;
        let qty = match it.cancelled_quantity {
            Some(q) if q >= 0 && q <= i64::from(item.quantity) => q as u32,
            Some(q) if q >= 0 => {
                return Err(SellerCancelError::Invalid(format!(
                    "cancelledQuantity {q} for {code} is more than the {} ordered",
                    item.quantity
                )))
            }
            _ => {
                return Err(SellerCancelError::Invalid(format!("cancelledQuantity for {code} is missing or negative")))
            }
        };
        if qty < previous(&item.item_code) {
            return Err(SellerCancelError::Invalid(format!(
                "cancelledQuantity {qty} for {code} is less than the {} already cancelled",
                previous(&item.item_code)
            )));
        }
        if let Some(entry) = cancelled.iter_mut().find(|(c, _)| *c == item.item_code) {
            entry.1 = qty;
        }
    }
    let all = snap.items.iter().zip(&cancelled).all(|(i, (_, q))| *q == i.quantity);
    let unchanged = snap.items.iter().zip(&cancelled).all(|(i, (_, q))| *q == previous(&i.item_code));
    let task = if unchanged {
        None
    } else if all {
        Some(Task::ShopifyCancelOrder)
    } else {
        let mut lines = Vec::new();
        let mut refunds = Vec::new();
        for (item, (_, now)) in snap.items.iter().zip(&cancelled) {
            let before = previous(&item.item_code);
            if *now == before {
                continue;
            }
            let old_targets = line_targets(item, before);
            for ((line, target), (_, old)) in line_targets(item, *now).into_iter().zip(old_targets) {
                if target != old {
                    lines.push((line, target));
                    if refund {
                        refunds.push((line, old - target));
                    }
                }
            }
        }
        Some(Task::ShopifyEditLines { lines, refund: refunds })
    };
    Ok(SellerCancelPlan { cancelled, all, task })
}

/// An item by its `orderItemCode`, or by the id of a line merged into it.
fn find_item<'a>(items: &'a [SentItem], code: &str) -> Option<&'a SentItem> {
    items.iter().find(|i| i.item_code == code || i.lines.iter().any(|(id, _)| id.to_string() == code))
}

/// Each line's remaining quantity when `cancelled` units of the item are cancelled: the units kept
/// stay on the first lines.
fn line_targets(item: &SentItem, cancelled: u32) -> Vec<(u64, u32)> {
    let mut keep = item.quantity.saturating_sub(cancelled);
    item.lines
        .iter()
        .map(|(id, qty)| {
            let t = keep.min(*qty);
            keep -= t;
            (*id, t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::model::{OrderStatus, WmsSnapshot};

    fn order() -> OrderRecord {
        let mut rec = OrderRecord::new(1, "#1".into(), 0);
        rec.status = OrderStatus::Sent;
        rec.wms_created = true;
        rec.wms = Some(WmsSnapshot {
            create_body: String::new(),
            items: vec![
                SentItem { sku: "A".into(), item_code: "11".into(), quantity: 3, lines: vec![(11, 2), (13, 1)] },
                SentItem { sku: "B".into(), item_code: "12".into(), quantity: 1, lines: vec![(12, 1)] },
            ],
            on_hold: false,
            dispatch_by: String::new(),
            start_processing: String::new(),
            address_digest: String::new(),
            refunds_seen: 0,
            cod_amount: 0.0,
        });
        rec
    }

    fn req(items: &[(&str, i64)]) -> SellerCancelIn {
        SellerCancelIn {
            order_code: "1".into(),
            order_items: items
                .iter()
                .map(|(c, q)| CancelItemIn {
                    channel_sku_code: String::new(),
                    order_item_code: c.to_string(),
                    cancelled_quantity: Some(*q),
                })
                .collect(),
        }
    }

    #[test]
    fn every_unit_cancels_the_order() {
        let p = plan(&order(), &req(&[("11", 3), ("12", 1)]), true).unwrap();
        assert_eq!((p.all, p.task), (true, Some(Task::ShopifyCancelOrder)));
    }

    #[test]
    fn some_units_edit_the_lines_down_to_what_remains() {
        let p = plan(&order(), &req(&[("11", 2)]), true).unwrap();
        // 1 of 3 kept: it stays on the first line; the merged line goes to 0.
        assert_eq!(
            p.task,
            Some(Task::ShopifyEditLines { lines: vec![(11, 1), (13, 0)], refund: vec![(11, 1), (13, 1)] })
        );
        assert!(!p.all);
        let mut rec = order();
        rec.seller_cancelled = p.cancelled;
        // The same absolute numbers again: nothing to do.
        assert_eq!(plan(&rec, &req(&[("11", 2)]), true).unwrap().task, None);
        // One more unit: only the first line changes.
        let p = plan(&rec, &req(&[("11", 3)]), false).unwrap();
        assert_eq!(p.task, Some(Task::ShopifyEditLines { lines: vec![(11, 0)], refund: vec![] }));
    }

    #[test]
    fn unknown_items_too_many_and_fewer_are_refused() {
        assert!(matches!(plan(&order(), &req(&[("99", 1)]), true), Err(SellerCancelError::NotFound(_))));
        assert!(matches!(plan(&order(), &req(&[("12", 2)]), true), Err(SellerCancelError::Invalid(_))));
        let mut rec = order();
        rec.seller_cancelled = vec![("11".into(), 2)];
        assert!(matches!(plan(&rec, &req(&[("11", 1)]), true), Err(SellerCancelError::Invalid(_))));
        let mut unsent = order();
        unsent.wms_created = false;
        assert!(matches!(plan(&unsent, &req(&[("11", 1)]), true), Err(SellerCancelError::NotFound(_))));
    }

    #[test]
    fn the_fixture_request_parses() {
        let r: SellerCancelIn =
            serde_json::from_str(include_str!("../../tests/fixtures/increff/seller_cancellation_request.json"))
                .unwrap();
        assert_eq!(r.order_items[0].cancelled_quantity, Some(5));
        assert_eq!(r.order_items[1].order_item_code, "item124");
    }
}
