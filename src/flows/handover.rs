//! Handover (`POST /wms/handover`): the WMS says which orders' shipments left the warehouse. This
//! reads the request into (order id, shipment code) pairs; the store records them and the archive
//! job closes the orders on Shopify.

use serde::Deserialize;

/// `POST /wms/handover` body (Increff Handover Notification).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandoverIn {
    #[serde(default)]
    pub location_code: String,
    #[serde(default)]
    pub handover_items: Vec<HandoverItemIn>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandoverItemIn {
    #[serde(default)]
    pub order_code: String,
    #[serde(default, deserialize_with = "crate::lenient::text")]
    pub shipment_code: String,
}

/// The handed-over (order id, shipment code) pairs, or why the request is refused as a whole.
pub fn entries(req: &HandoverIn) -> Result<Vec<(u64, String)>, String> {
    if req.handover_items.is_empty() {
        return Err("handoverItems is empty".into());
    }
    req.handover_items
        .iter()
        .map(|item| match item.order_code.trim().parse::<u64>() {
            Ok(id) => Ok((id, item.shipment_code.trim().to_string())),
            Err(_) => Err(format!("orderCode {:?} is not a Shopify order id", item.order_code)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Result<Vec<(u64, String)>, String> {
        entries(&serde_json::from_str(body).unwrap())
    }

    #[test]
    fn the_fixture_handover_reads_once_its_order_code_is_a_shopify_id() {
        // Increff's published example names "order123"; channeld sends Shopify order ids as codes.
        let fixture = include_str!("../../tests/fixtures/increff/handover_notification_request.json");
        assert!(read(fixture).unwrap_err().contains("\"order123\""));
        let ours = fixture.replace("\"order123\"", "\"450789469\"");
        assert_eq!(read(&ours).unwrap(), vec![(450789469, "ship123".to_string())]);
        assert!(read(r#"{"handoverItems": [{"orderCode": "12", "shipmentCode": 5}, {"orderCode": "x"}]}"#)
            .unwrap_err()
            .contains("\"x\""));
        assert_eq!(read(r#"{"handoverItems": []}"#).unwrap_err(), "handoverItems is empty");
    }
}
