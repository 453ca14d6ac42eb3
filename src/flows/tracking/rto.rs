//! The return order an RTO sends to the WMS (CONTRACT.md §10.4): the warehouse learns to expect
//! the parcel back. It is kept as a return (`returns list/show`), flagged
//! [`flag::RTO`](crate::flows::returns::flag::RTO), so the WMS's QC acknowledgement of it is
//! checked, recorded and shown like any other — and executes nothing on Shopify: no Shopify
//! return exists for an RTO (the merchant decides to cancel or refund).
//!
//! Codes: `returnOrderCode` `rto-{shipmentId}` (the WMS's pack `shipmentId`); one item per unit of
//! the shipment, `itemCode` `{shipmentId}-{orderItemCode}-{k}`, k = 1..quantity.

use crate::flows::returns::{flag, ReturnRecord, ReturnStatus, ReturnUnit, WmsReturn};
use crate::flows::shipment::ShipmentRecord;
use crate::flows::wms_order::{CreateReturnOrder, ReturnItem};

/// Increff's `orderType` of a return to origin.
pub const ORDER_TYPE: &str = "RETURN_TO_ORIGIN";
/// The reason every unit carries.
pub const REASON: &str = "return to origin";
/// The bit that sets RTO returns' ids apart from Shopify's return ids in the returns store.
const RTO_ID_BIT: u64 = 1 << 63;

/// The `returnOrderCode` of a shipment's RTO.
pub fn code(shipment_id: u64) -> String {
    format!("rto-{shipment_id}")
}

/// The id an RTO return is stored under (Shopify's return ids never reach the top bit).
pub fn return_id(shipment_id: u64) -> u64 {
    RTO_ID_BIT | (shipment_id & !RTO_ID_BIT)
}

/// The return an RTO of `shipment` sends to the WMS, queued; `happened_ms` is when the courier
/// reported the RTO (`returnOrderTime`).
pub fn rto_return(shipment: &ShipmentRecord, happened_ms: i64, now_ms: i64) -> ReturnRecord {
    let code = code(shipment.shipment_id);
    let items: Vec<ReturnItem> = shipment
        .lines
        .iter()
        .flat_map(|l| {
            (1..=l.quantity).map(|k| ReturnItem {
                item_code: format!("{}-{}-{k}", shipment.shipment_id, l.item_code),
                channel_sku_code: l.sku.clone(),
                reason: REASON.into(),
            })
        })
        .collect();
    let not_empty = |s: &str| (!s.trim().is_empty()).then(|| s.to_string());
    let body = CreateReturnOrder {
        forward_order_code: shipment.order_id.to_string(),
        return_order_code: code.clone(),
        location_code: shipment.location_code.clone(),
        return_order_time: chrono::DateTime::from_timestamp_millis(happened_ms)
            .map(crate::flows::fmt_time)
            .unwrap_or_default(),
        order_type: ORDER_TYPE.into(),
        order_items: items.clone(),
        awb_number: not_empty(&shipment.awb),
        transporter: not_empty(&shipment.transporter),
    };
    let mut rec = ReturnRecord::new(return_id(shipment.shipment_id), shipment.order_id, ReturnStatus::Queued, now_ms);
    rec.name = code.clone();
    rec.flag(flag::RTO);
    rec.tracking = not_empty(&shipment.awb).map(|awb| (awb, shipment.transporter.clone()));
    rec.units = items
        .into_iter()
        .map(|i| ReturnUnit {
            item_code: i.item_code,
            return_line_id: 0,
            fulfillment_line_id: 0,
            sku: i.channel_sku_code,
            return_code: code.clone(),
            location_code: shipment.location_code.clone(),
            reason: i.reason,
            qc: None,
            processed: false,
        })
        .collect();
    rec.wms = vec![WmsReturn {
        code,
        location_code: shipment.location_code.clone(),
        body: serde_json::to_string(&body).unwrap_or_default(),
        sent: false,
    }];
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::shipment::{ShipmentLine, ShipmentState};

    pub(crate) fn shipment() -> ShipmentRecord {
        let line = |sku: &str, code: &str, quantity| ShipmentLine {
            sku: sku.into(),
            item_code: code.into(),
            quantity,
            shopify_lines: vec![],
            unit_price: 1.0,
        };
        ShipmentRecord {
            shipment_id: 77,
            order_id: 450789469,
            order_name: "#1001".into(),
            location_code: "WH-1".into(),
            provider: "clickpost".into(),
            weight_grams: 500,
            dimensions_cm: [1, 1, 1],
            lines: vec![line("IPOD2008RED", "518995019", 2), line("IPOD2008GREEN", "466157049", 1)],
            invoice: None,
            state: ShipmentState::Booked,
            awb: "WB-77".into(),
            transporter: "Fedex".into(),
            label_url: String::new(),
            invoice_url: String::new(),
            courier_order_id: String::new(),
            courier_shipment_id: String::new(),
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn an_rto_returns_every_unit_of_the_shipment_to_where_it_left() {
        let rec = rto_return(&shipment(), 1_501_680_182_000, 5);
        assert!(rec.is_rto() && rec.id > 1 << 62 && rec.status == ReturnStatus::Queued);
        let body: serde_json::Value = serde_json::from_str(&rec.wms[0].body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "forwardOrderCode": "450789469", "returnOrderCode": "rto-77", "locationCode": "WH-1",
                "returnOrderTime": "2017-08-02T13:23:02.000Z", "orderType": "RETURN_TO_ORIGIN",
                "awbNumber": "WB-77", "transporter": "Fedex",
                "orderItems": [
                    { "itemCode": "77-518995019-1", "channelSkuCode": "IPOD2008RED", "reason": "return to origin" },
                    { "itemCode": "77-518995019-2", "channelSkuCode": "IPOD2008RED", "reason": "return to origin" },
                    { "itemCode": "77-466157049-1", "channelSkuCode": "IPOD2008GREEN", "reason": "return to origin" },
                ]
            })
        );
        assert_eq!(rec.units.iter().map(|u| u.return_code.as_str()).collect::<Vec<_>>(), ["rto-77"; 3]);
        assert_eq!(return_id(77), rec.id);
    }
}
