//! Every GraphQL document channeld sends to Shopify, with the shapes of their answers.
//!
//! All documents are listed in [`all`]; a test validates each, with example variables, against
//! Shopify's own Admin schema of the pinned version (`schema/admin-2026-10.graphql.gz`).
//!
//! Since 2026-04 Shopify refuses some mutations unless they carry `@idempotent(key:)`
//! ([`IDEMPOTENT_REQUIRED`]); every document channeld sends that calls one carries it, with a key
//! derived from stored state so that a replay after a crash is recognised as the same request.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::flows::inventory::PushRow;
use crate::flows::routing::FulfillmentOrderView;
use crate::flows::shopify_order::ShopifyOrder;
use crate::lenient::gid_number;

/// The mutations Shopify refuses without `@idempotent(key:)` ("The @idempotent directive is
/// required for this mutation but was not provided"). The schema cannot mark a directive as
/// required, so this is read from each mutation's description in the vendored 2026-10 schema; a
/// test keeps the two equal, another checks that every document calling one carries the directive,
/// and the test fakes refuse such a mutation without it.
pub const IDEMPOTENT_REQUIRED: &[&str] = &[
    "inventoryActivate",
    "inventoryAdjustQuantities",
    "inventoryMoveQuantities",
    "inventorySetOnHandQuantities",
    "inventorySetQuantities",
    "inventoryShipmentAddItems",
    "inventoryShipmentCreate",
    "inventoryShipmentCreateInTransit",
    "inventoryShipmentReceive",
    "inventoryTransferCreate",
    "inventoryTransferCreateAsReadyToShip",
    "inventoryTransferDuplicate",
    "inventoryTransferSetItems",
    "locationActivate",
    "locationDeactivate",
    "refundCreate",
];

/// A GraphQL document and the cost channeld expects it to take (for pacing before Shopify says).
#[derive(Debug)]
pub struct Document {
    pub name: &'static str,
    pub text: &'static str,
    pub cost: u32,
}

pub const FULFILLMENT_ORDERS: Document = Document {
    name: "FulfillmentOrders",
    cost: 12,
    text: r#"query FulfillmentOrders($id: ID!) {
  order(id: $id) {
    fulfillmentOrders(first: 50) {
      nodes { status assignedLocation { location { legacyResourceId } } }
    }
  }
}"#,
};

/// The fields of a line item the order model reads, in [`ORDER`] and [`ORDER_LINES`]. Both take
/// 80 lines a page: Shopify refuses a query costing more than 1,000 points, and each line with its
/// money costs about nine. The first page comes with the order, the rest from [`ORDER_LINES`].
macro_rules! line_item_fields {
    () => {
        r#"
      pageInfo { hasNextPage endCursor }
      nodes {
        id sku quantity currentQuantity requiresShipping isGiftCard
        originalUnitPriceSet { shopMoney { amount } }
        discountAllocations { allocatedAmountSet { shopMoney { amount } } }
        taxLines { priceSet { shopMoney { amount } } }
      }"#
    };
}

pub const ORDER: Document = Document {
    name: "Order",
    cost: 760,
    text: concat!(
        r#"query Order($id: ID!) {
  order(id: $id) {
    legacyResourceId name createdAt updatedAt cancelledAt closedAt test email phone tags
    customAttributes { key value }
    paymentGatewayNames taxesIncluded
    totalPriceSet { shopMoney { amount } }
    totalOutstandingSet { shopMoney { amount } }
    shippingAddress { ...Address }
    billingAddress { ...Address }
    lineItems(first: 80) {"#,
        line_item_fields!(),
        r#"
    }
    shippingLines(first: 50) { nodes { discountedPriceSet { shopMoney { amount } } } }
    refunds { id }
  }
}
fragment Address on MailingAddress {
  name firstName lastName address1 address2 city province zip country phone
}"#
    ),
};

/// The further pages of an order's line items (an order has up to several thousand lines).
pub const ORDER_LINES: Document = Document {
    name: "OrderLines",
    cost: 730,
    text: concat!(
        r#"query OrderLines($id: ID!, $after: String) {
  order(id: $id) {
    lineItems(first: 80, after: $after) {"#,
        line_item_fields!(),
        r#"
    }
  }
}"#
    ),
};

pub const ORDERS_UPDATED_SINCE: Document = Document {
    name: "OrdersUpdatedSince",
    cost: 252,
    text: r#"query OrdersUpdatedSince($query: String!, $after: String) {
  orders(first: 250, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes { legacyResourceId updatedAt }
    pageInfo { hasNextPage endCursor }
  }
}"#,
};

pub const LOCATIONS: Document = Document {
    name: "Locations",
    cost: 252,
    text: r#"query Locations {
  locations(first: 250, includeInactive: true) { nodes { legacyResourceId name isActive } }
}"#,
};

pub const WEBHOOK_SUBSCRIPTIONS: Document = Document {
    name: "WebhookSubscriptions",
    cost: 252,
    text: r#"query WebhookSubscriptions {
  webhookSubscriptions(first: 250) { nodes { id topic uri includeFields filter } }
}"#,
};

pub const WEBHOOK_CREATE: Document = Document {
    name: "WebhookSubscriptionCreate",
    cost: 10,
    text: r#"mutation WebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: { uri: $uri, format: JSON }) {
    webhookSubscription { id }
    userErrors { field message }
  }
}"#,
};

pub const WEBHOOK_DELETE: Document = Document {
    name: "WebhookSubscriptionDelete",
    cost: 10,
    text: r#"mutation WebhookSubscriptionDelete($id: ID!) {
  webhookSubscriptionDelete(id: $id) {
    deletedWebhookSubscriptionId
    userErrors { field message }
  }
}"#,
};

pub const ORDER_CLOSE: Document = Document {
    name: "OrderClose",
    cost: 10,
    text: r#"mutation OrderClose($input: OrderCloseInput!) {
  orderClose(input: $input) {
    order { closed }
    userErrors { field message }
  }
}"#,
};

pub const ORDER_CANCEL: Document = Document {
    name: "OrderCancel",
    cost: 10,
    text: r#"mutation OrderCancel($orderId: ID!, $restock: Boolean!, $notifyCustomer: Boolean, $refundMethod: OrderCancelRefundMethodInput, $staffNote: String) {
  orderCancel(orderId: $orderId, reason: OTHER, restock: $restock, notifyCustomer: $notifyCustomer, refundMethod: $refundMethod, staffNote: $staffNote) {
    job { id done }
    jobResult { id done status errors { field message code } }
    orderCancelUserErrors { field message code }
  }
}"#,
};

/// Polls the job an `orderCancel` started: `job(id:)` says whether it ran; the cancellation's own
/// result (`OrderCancelJobResult`, a node) says how it ended, `FAILED` with its errors included.
pub const ORDER_CANCEL_JOB: Document = Document {
    name: "OrderCancelJob",
    cost: 2,
    text: r#"query OrderCancelJob($jobId: ID!, $resultId: ID!, $withResult: Boolean!) {
  job(id: $jobId) { id done }
  jobResult: node(id: $resultId) @include(if: $withResult) {
    ... on OrderCancelJobResult { id done status errors { field message code } }
  }
}"#,
};

pub const ORDER_LINE_QUANTITIES: Document = Document {
    name: "OrderLineQuantities",
    cost: 110,
    text: r#"query OrderLineQuantities($id: ID!) {
  order(id: $id) { lineItems(first: 100) { nodes { id currentQuantity } } }
}"#,
};

pub const ORDER_EDIT_BEGIN: Document = Document {
    name: "OrderEditBegin",
    cost: 10,
    text: r#"mutation OrderEditBegin($id: ID!) {
  orderEditBegin(id: $id) { calculatedOrder { id } userErrors { field message } }
}"#,
};

pub const ORDER_EDIT_SET_QUANTITY: Document = Document {
    name: "OrderEditSetQuantity",
    cost: 10,
    text: r#"mutation OrderEditSetQuantity($id: ID!, $lineItemId: ID!, $quantity: Int!, $restock: Boolean) {
  orderEditSetQuantity(id: $id, lineItemId: $lineItemId, quantity: $quantity, restock: $restock) {
    calculatedLineItem { id }
    userErrors { field message }
  }
}"#,
};

pub const ORDER_EDIT_COMMIT: Document = Document {
    name: "OrderEditCommit",
    cost: 10,
    text: r#"mutation OrderEditCommit($id: ID!, $notifyCustomer: Boolean, $staffNote: String) {
  orderEditCommit(id: $id, notifyCustomer: $notifyCustomer, staffNote: $staffNote) { order { id } userErrors { field message } }
}"#,
};

pub const SUGGESTED_REFUND: Document = Document {
    name: "SuggestedRefund",
    cost: 20,
    text: r#"query SuggestedRefund($id: ID!, $lines: [RefundLineItemInput!]) {
  order(id: $id) {
    suggestedRefund(refundLineItems: $lines) {
      suggestedTransactions {
        gateway parentTransaction { id }
        amountSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
      }
    }
  }
}"#,
};

pub const REFUND_CREATE: Document = Document {
    name: "RefundCreate",
    cost: 10,
    text: r#"mutation RefundCreate($input: RefundInput!, $key: String!) {
  refundCreate(input: $input) @idempotent(key: $key) { refund { id } userErrors { field message } }
}"#,
};

/// Fulfillment orders (a page of them, each with its first page of lines) and the ids and tracking
/// numbers of the order's fulfillments. Both connections are paged through: an order can have more than
/// one page of fulfillment orders, and a fulfillment order more than one page of lines.
pub const FULFILLMENT_STATE: Document = Document {
    name: "FulfillmentState",
    cost: 320,
    text: r#"query FulfillmentState($id: ID!, $after: String) {
  order(id: $id) {
    fulfillments(first: 50) { id trackingInfo { number } }
    fulfillmentOrders(first: 10, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id status
        lineItems(first: 25) {
          pageInfo { hasNextPage endCursor }
          nodes { id remainingQuantity lineItem { id } }
        }
      }
    }
  }
}"#,
};

/// The further pages of one fulfillment order's lines.
pub const FULFILLMENT_ORDER_LINES: Document = Document {
    name: "FulfillmentOrderLines",
    cost: 210,
    text: r#"query FulfillmentOrderLines($id: ID!, $after: String) {
  fulfillmentOrder(id: $id) {
    lineItems(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { id remainingQuantity lineItem { id } }
    }
  }
}"#,
};

pub const FULFILLMENT_CREATE: Document = Document {
    name: "FulfillmentCreate",
    cost: 10,
    text: r#"mutation FulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) { fulfillment { id } userErrors { field message } }
}"#,
};

pub const INVENTORY_SET_QUANTITIES: Document = Document {
    name: "InventorySetQuantities",
    cost: 10,
    text: r#"mutation InventorySetQuantities($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}"#,
};

pub const INVENTORY_ITEMS: Document = Document {
    name: "InventoryItems",
    cost: 260,
    text: r#"query InventoryItems($ids: [ID!]!) {
  nodes(ids: $ids) { ... on InventoryItem { legacyResourceId } }
}"#,
};

pub const PRODUCT_VARIANTS: Document = Document {
    name: "ProductVariants",
    cost: 260,
    text: r#"query ProductVariants($after: String) {
  productVariants(first: 250, after: $after) {
    nodes { sku inventoryItem { legacyResourceId } }
    pageInfo { hasNextPage endCursor }
  }
}"#,
};

/// The documents of this file, with example variables for the schema test ([`super::documents`]
/// adds those of returns and tracking).
pub fn documents() -> Vec<(&'static Document, Value)> {
    let row = PushRow { sku: "A".into(), item_id: 49148385, location_id: 655441491, quantity: 4 };
    vec![
        (&FULFILLMENT_ORDERS, json!({ "id": order_gid(450789469) })),
        (&ORDER, json!({ "id": order_gid(450789469) })),
        (&ORDER_LINES, json!({ "id": order_gid(450789469), "after": "eyJsYXN0X2lkIjo1MTg5OTUwMTl9" })),
        (
            &INVENTORY_SET_QUANTITIES,
            set_quantities_variables(&[row], "channeld-0123", "logistics://channeld/test/push/1"),
        ),
        (&INVENTORY_ITEMS, json!({ "ids": [inventory_item_gid(49148385)] })),
        (&PRODUCT_VARIANTS, json!({ "after": null })),
        (&ORDERS_UPDATED_SINCE, json!({ "query": "updated_at:>='2026-11-27T10:00:00Z'", "after": null })),
        (&LOCATIONS, json!({})),
        (&WEBHOOK_SUBSCRIPTIONS, json!({})),
        (
            &WEBHOOK_CREATE,
            json!({ "topic": "ORDERS_CREATE", "uri": "https://connector.example.com/shopify/api/push/orders" }),
        ),
        (&WEBHOOK_DELETE, json!({ "id": "gid://shopify/WebhookSubscription/1" })),
        (&ORDER_CLOSE, json!({ "input": { "id": order_gid(450789469) } })),
        (
            &ORDER_CANCEL,
            json!({ "orderId": order_gid(1), "restock": true, "notifyCustomer": false,
                    "refundMethod": { "originalPaymentMethodsRefund": true }, "staffNote": "x" }),
        ),
        (
            &ORDER_CANCEL_JOB,
            json!({ "jobId": "gid://shopify/Job/1", "resultId": "gid://shopify/OrderCancelJobResult/1", "withResult": true }),
        ),
        (&ORDER_LINE_QUANTITIES, json!({ "id": order_gid(1) })),
        (&ORDER_EDIT_BEGIN, json!({ "id": order_gid(1) })),
        (
            &ORDER_EDIT_SET_QUANTITY,
            json!({ "id": "gid://shopify/CalculatedOrder/1", "lineItemId": calculated_line_gid(2), "quantity": 0, "restock": true }),
        ),
        (
            &ORDER_EDIT_COMMIT,
            json!({ "id": "gid://shopify/CalculatedOrder/1", "notifyCustomer": false, "staffNote": "x" }),
        ),
        (
            &SUGGESTED_REFUND,
            json!({ "id": order_gid(1), "lines": [{ "lineItemId": line_gid(2), "quantity": 1, "restockType": "NO_RESTOCK" }] }),
        ),
        (
            &REFUND_CREATE,
            json!({ "input": { "orderId": order_gid(1), "notify": false, "note": "x", "currency": "EUR", "transactions": [
                { "orderId": order_gid(1), "parentId": "gid://shopify/OrderTransaction/3", "amount": "10.00",
                  "gateway": "bogus", "kind": "REFUND" } ] }, "key": refund_key(1, 42) }),
        ),
        (&FULFILLMENT_STATE, json!({ "id": order_gid(1), "after": null })),
        (
            &FULFILLMENT_ORDER_LINES,
            json!({ "id": "gid://shopify/FulfillmentOrder/1", "after": "eyJsYXN0X2lkIjoxfQ==" }),
        ),
        (
            &FULFILLMENT_CREATE,
            json!({ "fulfillment": { "notifyCustomer": false,
                "trackingInfo": { "number": "785578015860", "company": "Fedex", "url": "https://example.com/t" },
                "lineItemsByFulfillmentOrder": [{ "fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1",
                    "fulfillmentOrderLineItems": [{ "id": "gid://shopify/FulfillmentOrderLineItem/2", "quantity": 1 }] }] } }),
        ),
    ]
}

/// The `@idempotent` key of the refund an outbox entry makes: derived from the stored entry (its
/// order and sequence number), never random, so a replay of the same entry (after a crash, a
/// retry or `outbox retry`) is the same request to Shopify and refunds once.
pub fn refund_key(order_id: u64, entry_seq: u64) -> String {
    format!("channeld-refund-{order_id}-{entry_seq}")
}

pub fn line_gid(id: u64) -> String {
    format!("gid://shopify/LineItem/{id}")
}

/// In an order edit, a calculated line item shares the numeric id of the order's line item.
pub fn calculated_line_gid(id: u64) -> String {
    format!("gid://shopify/CalculatedLineItem/{id}")
}

pub fn inventory_item_gid(id: u64) -> String {
    format!("gid://shopify/InventoryItem/{id}")
}

pub fn location_gid(id: u64) -> String {
    format!("gid://shopify/Location/{id}")
}

/// Variables of one `inventorySetQuantities` call: absolute "available" quantities, no compare.
pub fn set_quantities_variables(rows: &[PushRow], key: &str, reference: &str) -> Value {
    let quantities: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "inventoryItemId": inventory_item_gid(r.item_id),
                "locationId": location_gid(r.location_id),
                "quantity": r.quantity,
                "changeFromQuantity": null,
            })
        })
        .collect();
    json!({
        "input": { "name": "available", "reason": "correction", "referenceDocumentUri": reference, "quantities": quantities },
        "key": key,
    })
}

#[derive(Debug, Deserialize)]
pub struct SetQuantitiesData {
    #[serde(rename = "inventorySetQuantities")]
    pub payload: Option<SetQuantitiesPayload>,
}

#[derive(Debug, Deserialize)]
pub struct SetQuantitiesPayload {
    #[serde(rename = "userErrors", default)]
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserError {
    #[serde(default)]
    pub field: Option<Vec<String>>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

pub fn order_gid(id: u64) -> String {
    format!("gid://shopify/Order/{id}")
}

#[derive(Debug, Deserialize)]
pub struct FulfillmentOrdersData {
    pub order: Option<FoOrder>,
}

#[derive(Debug, Deserialize)]
pub struct FoOrder {
    #[serde(rename = "fulfillmentOrders")]
    pub fulfillment_orders: Nodes<FoNode>,
}

#[derive(Debug, Deserialize)]
pub struct Nodes<T> {
    pub nodes: Vec<T>,
}

#[derive(Debug, Deserialize)]
pub struct FoNode {
    pub status: String,
    #[serde(rename = "assignedLocation")]
    pub assigned_location: Option<FoAssigned>,
}

#[derive(Debug, Deserialize)]
pub struct FoAssigned {
    pub location: Option<LegacyId>,
}

#[derive(Debug, Deserialize)]
pub struct LegacyId {
    #[serde(rename = "legacyResourceId")]
    pub legacy_resource_id: Value,
}

impl FulfillmentOrdersData {
    pub fn views(self) -> Option<Vec<FulfillmentOrderView>> {
        Some(
            self.order?
                .fulfillment_orders
                .nodes
                .into_iter()
                .map(|n| FulfillmentOrderView {
                    status: n.status,
                    location_id: n.assigned_location.and_then(|a| a.location).and_then(|l| {
                        match l.legacy_resource_id {
                            Value::String(s) => s.parse().ok(),
                            Value::Number(n) => n.as_u64(),
                            _ => None,
                        }
                    }),
                })
                .collect(),
        )
    }
}

/// Converts the `order` of an [`ORDER`] answer, with every page of its lines in
/// `lineItems.nodes`, into the REST order model, so an order fetched by GraphQL and the same order
/// from a webhook give the same WMS payload. `None` when the answer cannot be read, or still
/// says more lines follow.
pub fn order_from_graphql(order: &Value) -> Option<ShopifyOrder> {
    let money = |v: &Value| v.pointer("/shopMoney/amount").cloned().unwrap_or(Value::Null);
    let addr = |v: &Value| {
        if v.is_null() {
            return Value::Null;
        }
        json!({
            "name": v["name"], "first_name": v["firstName"], "last_name": v["lastName"],
            "address1": v["address1"], "address2": v["address2"], "city": v["city"],
            "province": v["province"], "zip": v["zip"], "country": v["country"], "phone": v["phone"],
        })
    };
    let nodes = |v: &Value| v["nodes"].as_array().cloned().unwrap_or_default();
    let lines: Vec<Value> = nodes(&order["lineItems"])
        .iter()
        .map(|l| {
            json!({
                "id": l["id"].as_str().and_then(gid_number),
                "sku": l["sku"],
                "quantity": l["quantity"],
                "current_quantity": l["currentQuantity"],
                "price": money(&l["originalUnitPriceSet"]),
                "requires_shipping": l["requiresShipping"],
                "gift_card": l["isGiftCard"],
                "discount_allocations": l["discountAllocations"].as_array().map(|d| d.iter()
                    .map(|a| json!({ "amount": money(&a["allocatedAmountSet"]) })).collect::<Vec<_>>()),
                "tax_lines": l["taxLines"].as_array().map(|t| t.iter()
                    .map(|t| json!({ "price": money(&t["priceSet"]) })).collect::<Vec<_>>()),
            })
        })
        .collect();
    let tags = order["tags"].as_array().map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "));
    let rest = json!({
        "id": order["legacyResourceId"].as_str().and_then(|s| s.parse::<u64>().ok()).or_else(|| order["legacyResourceId"].as_u64()),
        "name": order["name"],
        "created_at": order["createdAt"],
        "updated_at": order["updatedAt"],
        "cancelled_at": order["cancelledAt"],
        "closed_at": order["closedAt"],
        "test": order["test"],
        "email": order["email"],
        "phone": order["phone"],
        "tags": tags,
        "note_attributes": order["customAttributes"].as_array().map(|a| a.iter()
            .map(|kv| json!({ "name": kv["key"], "value": kv["value"] })).collect::<Vec<_>>()),
        "payment_gateway_names": order["paymentGatewayNames"],
        "taxes_included": order["taxesIncluded"],
        "total_price": money(&order["totalPriceSet"]),
        "total_outstanding": money(&order["totalOutstandingSet"]),
        "shipping_address": addr(&order["shippingAddress"]),
        "billing_address": addr(&order["billingAddress"]),
        "line_items": lines,
        "shipping_lines": nodes(&order["shippingLines"]).iter()
            .map(|s| json!({ "discounted_price": money(&s["discountedPriceSet"]) })).collect::<Vec<_>>(),
        "refunds": order["refunds"],
    });
    rest["id"].as_u64()?;
    if order["lineItems"]["pageInfo"]["hasNextPage"] == true {
        // Never map a truncated order: the missing lines would silently not reach the WMS.
        return None;
    }
    serde_json::from_value(rest).ok()
}
