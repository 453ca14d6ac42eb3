//! Increff Standard API payloads exchanged with the WMS (Create Outward Order, Update Order
//! Properties, Customer Cancellation, Create Return Order, and the Return Order Acknowledgement it
//! sends). Plain serde types, no I/O.
//!
//! They live here, where intake and order mapping build them, rather than beside the client that
//! sends them (`wms::client`): `flows` imports nothing with I/O, and the client depends on the
//! rules' types, never the other way round.

use serde::{Deserialize, Serialize};

/// `POST /orders/outward` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOutwardOrder {
    pub order_code: String,
    pub parent_order_code: String,
    /// `null` when the WMS decides the location (split or routing = wms).
    pub location_code: Option<String>,
    pub order_time: String,
    pub order_type: String,
    pub on_hold: bool,
    pub qc_status: String,
    pub dispatch_by_time: String,
    pub start_processing_time: String,
    pub payment_method: String,
    pub is_split_required: bool,
    pub pack_type: String,
    pub shipping_address: WmsAddress,
    pub billing_address: WmsAddress,
    pub order_items: Vec<OrderItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WmsAddress {
    pub name: String,
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub state: String,
    pub zip: String,
    pub country: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    pub phone: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    pub channel_sku_code: String,
    pub order_item_code: String,
    pub quantity: u32,
    pub channel_discount_per_unit: f64,
    pub selling_price_per_unit: f64,
    pub shipping_charge_per_unit: f64,
}

/// `PUT /orders/{orderCode}` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrderProperties {
    pub on_hold: bool,
    pub dispatch_by_time: String,
    pub start_processing_time: String,
}

/// `PUT /orders/{orderCode}/cancel` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerCancellation {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub location_code: Option<String>,
    pub order_items: Vec<CancelledItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelledItem {
    pub channel_sku_code: String,
    pub order_item_code: String,
    pub cancelled_quantity: u32,
}

/// `POST /return/return-orders` body (Create Return Order, CONTRACT.md §9.7): one item per unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateReturnOrder {
    pub forward_order_code: String,
    pub return_order_code: String,
    pub location_code: String,
    pub return_order_time: String,
    pub order_type: String,
    pub order_items: Vec<ReturnItem>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub awb_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transporter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnItem {
    pub item_code: String,
    pub channel_sku_code: String,
    pub reason: String,
}

/// `PUT /wms/returns/acknowledgement` body (Return Order Acknowledgement, §9.5). Unknown fields are
/// ignored; `returnItemCode` is taken for `itemCode`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnAckIn {
    #[serde(default, deserialize_with = "crate::lenient::text")]
    pub return_order_code: String,
    #[serde(default, deserialize_with = "crate::lenient::text")]
    pub forward_order_code: String,
    #[serde(default, deserialize_with = "crate::lenient::text")]
    pub location_code: String,
    #[serde(default)]
    pub order_items: Vec<ReturnAckItem>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnAckItem {
    #[serde(default, deserialize_with = "crate::lenient::text")]
    pub item_code: String,
    #[serde(default, deserialize_with = "crate::lenient::text")]
    pub return_item_code: String,
    #[serde(default, deserialize_with = "crate::lenient::text")]
    pub channel_sku_code: String,
    #[serde(default, deserialize_with = "crate::lenient::text")]
    pub qc_status: String,
    #[serde(default)]
    pub qc_reason: Option<String>,
    #[serde(default)]
    pub image_urls: Option<Vec<String>>,
}

impl ReturnAckItem {
    /// The unit it names: `itemCode`, else `returnItemCode`.
    pub fn code(&self) -> &str {
        let code = self.item_code.trim();
        if code.is_empty() {
            self.return_item_code.trim()
        } else {
            code
        }
    }
}
