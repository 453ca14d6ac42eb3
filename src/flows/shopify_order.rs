//! The one order model: Shopify's REST order JSON (what webhooks carry), read leniently.
//!
//! Real orders carry `null` where one expects a value (`shipping_address: null`, `sku: ""`,
//! `customer: null`), and money as strings. Every field here tolerates absence and `null`, so a
//! signed order is always stored; what cannot be mapped becomes a rejection, never a loss. Orders
//! fetched by GraphQL are converted into this same type (`shopify::queries`), so both paths produce
//! the same WMS payload.

use serde::Deserialize;

use crate::lenient::{count, flag, flag_true, id, list, money, opt_count, text};

/// A Shopify order as far as channeld uses it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ShopifyOrder {
    pub id: u64,
    #[serde(deserialize_with = "text")]
    pub name: String,
    #[serde(deserialize_with = "text")]
    pub created_at: String,
    #[serde(deserialize_with = "text")]
    pub updated_at: String,
    #[serde(deserialize_with = "text")]
    pub cancelled_at: String,
    /// Set when the order is closed (archived) on Shopify.
    #[serde(deserialize_with = "text")]
    pub closed_at: String,
    #[serde(deserialize_with = "flag")]
    pub test: bool,
    #[serde(deserialize_with = "text")]
    pub email: String,
    #[serde(deserialize_with = "text")]
    pub contact_email: String,
    #[serde(deserialize_with = "text")]
    pub phone: String,
    /// Comma-separated, as Shopify's REST API gives them.
    #[serde(deserialize_with = "text")]
    pub tags: String,
    #[serde(deserialize_with = "list")]
    pub note_attributes: Vec<NoteAttribute>,
    #[serde(deserialize_with = "list")]
    pub payment_gateway_names: Vec<String>,
    #[serde(deserialize_with = "flag")]
    pub taxes_included: bool,
    #[serde(deserialize_with = "money")]
    pub total_price: f64,
    #[serde(deserialize_with = "money")]
    pub total_outstanding: f64,
    pub shipping_address: Option<Address>,
    pub billing_address: Option<Address>,
    #[serde(deserialize_with = "list")]
    pub line_items: Vec<LineItem>,
    #[serde(deserialize_with = "list")]
    pub shipping_lines: Vec<ShippingLine>,
    /// Only counted: a new refund after creation is flagged, not forwarded.
    #[serde(deserialize_with = "list")]
    pub refunds: Vec<serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NoteAttribute {
    #[serde(deserialize_with = "text")]
    pub name: String,
    #[serde(deserialize_with = "text")]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Address {
    #[serde(deserialize_with = "text")]
    pub name: String,
    #[serde(deserialize_with = "text")]
    pub first_name: String,
    #[serde(deserialize_with = "text")]
    pub last_name: String,
    #[serde(deserialize_with = "text")]
    pub address1: String,
    #[serde(deserialize_with = "text")]
    pub address2: String,
    #[serde(deserialize_with = "text")]
    pub city: String,
    #[serde(deserialize_with = "text")]
    pub province: String,
    #[serde(deserialize_with = "text")]
    pub zip: String,
    #[serde(deserialize_with = "text")]
    pub country: String,
    #[serde(deserialize_with = "text")]
    pub phone: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct LineItem {
    /// A number or a numeric string; `None` when missing or unreadable (such a line cannot be
    /// sent: the order is rejected naming it, not lost).
    #[serde(deserialize_with = "id")]
    pub id: Option<u64>,
    #[serde(deserialize_with = "text")]
    pub sku: String,
    #[serde(deserialize_with = "count")]
    pub quantity: u32,
    /// Quantity after removals and refunds; absent in older payloads (then `quantity` counts).
    #[serde(deserialize_with = "opt_count")]
    pub current_quantity: Option<u32>,
    #[serde(deserialize_with = "money")]
    pub price: f64,
    #[serde(deserialize_with = "flag_true")]
    pub requires_shipping: bool,
    #[serde(deserialize_with = "flag")]
    pub gift_card: bool,
    #[serde(deserialize_with = "list")]
    pub discount_allocations: Vec<Amount>,
    #[serde(deserialize_with = "list")]
    pub tax_lines: Vec<TaxLine>,
}

impl Default for LineItem {
    fn default() -> Self {
        Self {
            id: None,
            sku: String::new(),
            quantity: 0,
            current_quantity: None,
            price: 0.0,
            requires_shipping: true,
            gift_card: false,
            discount_allocations: Vec::new(),
            tax_lines: Vec::new(),
        }
    }
}

impl LineItem {
    /// The quantity still ordered (CONTRACT.md §5.1: `current_quantity`, else `quantity`).
    pub fn open_quantity(&self) -> u32 {
        self.current_quantity.unwrap_or(self.quantity)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Amount {
    #[serde(deserialize_with = "money")]
    pub amount: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TaxLine {
    #[serde(deserialize_with = "money")]
    pub price: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ShippingLine {
    #[serde(deserialize_with = "money")]
    pub discounted_price: f64,
}

/// Reads a webhook body: `Ok(None)` when it is not JSON or has no numeric `id` (answered 400);
/// otherwise the order, or the id alone with the reason the rest could not be read.
pub fn parse_webhook_body(body: &[u8]) -> Option<(u64, Result<ShopifyOrder, String>)> {
    /// The id alone: the rest of the body is skipped, not built into a JSON tree (which cost a
    /// quarter of the webhook path's CPU).
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Number>,
    }
    if body.trim_ascii_start().first() != Some(&b'{') {
        return None; // serde would read a struct from an array too
    }
    let id = serde_json::from_slice::<IdOnly>(body).ok()?.id?.as_u64()?;
    let order = serde_json::from_slice::<ShopifyOrder>(body).map_err(|e| format!("the order could not be read: {e}"));
    Some((id, order))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fixture() -> Vec<u8> {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/shopify/order_450789469_get_2025-10.json"))
                .unwrap();
        serde_json::to_vec(&v["order"]).unwrap()
    }

    #[test]
    fn reads_the_fixture_order() {
        let (id, order) = parse_webhook_body(&fixture()).unwrap();
        let order = order.unwrap();
        assert_eq!(id, 450789469);
        assert_eq!(order.name, "#1001");
        assert_eq!(order.line_items.len(), 3);
        assert_eq!(order.line_items[1].sku, "IPOD2008RED");
        assert_eq!(order.line_items[1].open_quantity(), 1);
        assert_eq!(order.line_items[0].open_quantity(), 0);
        assert_eq!(order.refunds.len(), 1);
        assert_eq!(order.shipping_address.unwrap().zip, "40202");
    }

    #[test]
    fn nulls_everywhere_still_parse() {
        let body = br#"{"id": 7, "name": null, "line_items": [{"id": 1, "sku": null, "quantity": null,
            "price": null, "requires_shipping": null}], "shipping_address": null, "tags": null,
            "note_attributes": null, "payment_gateway_names": null, "refunds": null}"#;
        let (id, order) = parse_webhook_body(body).unwrap();
        let order = order.unwrap();
        assert_eq!(id, 7);
        assert!(order.shipping_address.is_none());
        assert!(order.line_items[0].requires_shipping);
    }

    #[test]
    fn not_json_or_no_numeric_id_is_refused() {
        assert!(parse_webhook_body(b"nope").is_none());
        assert!(parse_webhook_body(br#"{"id":"12"}"#).is_none());
        assert!(parse_webhook_body(br#"[1]"#).is_none());
    }

    #[test]
    fn line_ids_and_counts_are_read_leniently() {
        let body = br#"{"id": 7, "line_items": [{"id": "11", "current_quantity": "2"}, {"id": null},
            {"id": "x", "current_quantity": -1}]}"#;
        let order = parse_webhook_body(body).unwrap().1.unwrap();
        let read: Vec<(Option<u64>, Option<u32>)> =
            order.line_items.iter().map(|l| (l.id, l.current_quantity)).collect();
        assert_eq!(read, vec![(Some(11), Some(2)), (None, None), (None, None)]);
    }

    #[test]
    fn unreadable_fields_keep_the_id() {
        let (id, order) = parse_webhook_body(br#"{"id": 9, "line_items": "oops"}"#).unwrap();
        assert_eq!(id, 9);
        assert!(order.unwrap_err().contains("could not be read"));
    }
}
