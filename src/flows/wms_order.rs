//! Increff Standard API payloads channeld sends to the WMS (Create Outward Order, Update Order
//! Properties, Customer Cancellation). Plain serde types, no I/O.
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
