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

/// The longest `locationCode` or `shipmentCode` taken. channeld's own shipment codes are decimal
/// ids and location codes are short; a bound keeps every stored handover record small (sled puts
/// a large one in a file it never syncs).
pub const MAX_CODE_CHARS: usize = 64;

/// The handed-over (order id, shipment code) pairs, or why the request is refused as a whole.
pub fn entries(req: &HandoverIn) -> Result<Vec<(u64, String)>, String> {
    if req.handover_items.is_empty() {
        return Err("handoverItems is empty".into());
    }
    bounded("locationCode", &req.location_code)?;
    req.handover_items
        .iter()
        .map(|item| match item.order_code.trim().parse::<u64>() {
            Ok(id) => Ok((id, bounded("shipmentCode", &item.shipment_code)?)),
            Err(_) => Err(format!("orderCode {:?} is not a Shopify order id", cut(&item.order_code))),
        })
        .collect()
}

/// `code` trimmed, or a refusal naming `field` when it is longer than [`MAX_CODE_CHARS`].
fn bounded(field: &str, code: &str) -> Result<String, String> {
    let code = code.trim();
    if code.chars().count() > MAX_CODE_CHARS {
        return Err(format!("{field} {:?}... is longer than {MAX_CODE_CHARS} characters", cut(code)));
    }
    Ok(code.to_string())
}

/// The start of a code quoted back in an error.
fn cut(code: &str) -> String {
    code.chars().take(MAX_CODE_CHARS).collect()
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

    #[test]
    fn codes_longer_than_the_bound_refuse_the_call_naming_the_field() {
        let long = "x".repeat(MAX_CODE_CHARS + 1);
        let fits = "y".repeat(MAX_CODE_CHARS);
        let body = |loc: &str, ship: &str| {
            format!(
                r#"{{"locationCode": "{loc}", "handoverItems": [{{"orderCode": "12", "shipmentCode": "{ship}"}}]}}"#
            )
        };
        assert_eq!(read(&body("WH", &fits)).unwrap(), vec![(12, fits.clone())]);
        let err = read(&body("WH", &long)).unwrap_err();
        assert!(err.starts_with("shipmentCode") && err.contains("longer than 64"), "{err}");
        assert!(read(&body(&long, "1")).unwrap_err().starts_with("locationCode"));
        let order = format!(r#"{{"handoverItems": [{{"orderCode": "{}"}}]}}"#, "z".repeat(100_000));
        assert!(read(&order).unwrap_err().len() < 200, "a refusal quotes only the start of a long code");
    }
}
