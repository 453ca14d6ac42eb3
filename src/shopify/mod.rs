//! Everything Shopify: webhook signatures, the REST order model, and the GraphQL Admin API client.
//!
//! - [`webhook`]: HMAC signing and constant-time verification.
//! - [`order`]: the one order model (REST JSON, read leniently).
//! - [`queries`]: every GraphQL document channeld sends, and the answers' shapes.
//! - [`graphql`]: the transport with cost-based pacing; [`token`]: where its token comes from.
//!
//! [`ShopifyClient`] is the typed facade the rest of channeld calls.

pub mod graphql;
pub mod order;
pub mod queries;
pub mod token;
pub mod webhook;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::Config;
use crate::flows::inventory::{refused_row, PushRow};
use crate::flows::routing::FulfillmentOrderView;
use crate::remote::CallError;
use graphql::GraphqlClient;
use order::ShopifyOrder;
use queries::{order_gid, FulfillmentOrdersData};
use token::TokenSource;

#[derive(Clone)]
pub struct ShopifyClient {
    gql: GraphqlClient,
}

impl ShopifyClient {
    pub fn new(cfg: &Config) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.shopify.timeout_seconds.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("channeld/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let base = cfg.shopify_base();
        let auth = cfg.shopify_auth().map_err(anyhow::Error::msg)?;
        let token = TokenSource::new(auth, http.clone(), &base);
        Ok(Self { gql: GraphqlClient::new(http, &base, &cfg.shopify.api_version, token) })
    }

    /// The order's fulfillment orders (routing); `None` when Shopify does not know the order.
    pub async fn fulfillment_orders(&self, order_id: u64) -> Result<Option<Vec<FulfillmentOrderView>>, CallError> {
        let data: FulfillmentOrdersData =
            self.gql.run(&queries::FULFILLMENT_ORDERS, json!({ "id": order_gid(order_id) })).await?;
        Ok(data.views())
    }

    /// Sets absolute "available" quantities. Returns the rows Shopify refused (by index, with its
    /// message); the other rows were applied.
    pub async fn set_quantities(
        &self,
        rows: &[PushRow],
        key: &str,
        reference: &str,
    ) -> Result<Vec<(usize, String)>, CallError> {
        let vars = queries::set_quantities_variables(rows, key, reference);
        let data: queries::SetQuantitiesData = self.gql.run(&queries::INVENTORY_SET_QUANTITIES, vars).await?;
        let errors = data.payload.map(|p| p.user_errors).unwrap_or_default();
        let mut refused = Vec::new();
        for e in &errors {
            match e.field.as_deref().and_then(refused_row) {
                Some(i) if i < rows.len() => refused.push((i, e.message.clone())),
                // An error naming no row refuses the request as a whole: nothing was applied.
                _ => {
                    return Err(CallError::Refused {
                        message: format!(
                            "Shopify refused the batch: {} ({})",
                            e.message,
                            e.code.as_deref().unwrap_or("")
                        ),
                    })
                }
            }
        }
        Ok(refused)
    }

    /// Which of these inventory item ids exist on Shopify (at most 250 per call).
    pub async fn existing_inventory_items(&self, ids: &[u64]) -> Result<HashSet<u64>, CallError> {
        let gids: Vec<String> = ids.iter().map(|&i| queries::inventory_item_gid(i)).collect();
        let data: Value = self.gql.run(&queries::INVENTORY_ITEMS, json!({ "ids": gids })).await?;
        Ok(data["nodes"]
            .as_array()
            .map(|nodes| nodes.iter().filter_map(|n| legacy_id(&n["legacyResourceId"])).collect())
            .unwrap_or_default())
    }

    /// One page of product variants: (SKU, inventory item id) pairs and the cursor of the next page.
    pub async fn variants_page(&self, after: Option<&str>) -> Result<(Vec<(String, u64)>, Option<String>), CallError> {
        let data: Value = self.gql.run(&queries::PRODUCT_VARIANTS, json!({ "after": after })).await?;
        let pv = &data["productVariants"];
        let variants = pv["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| {
                        Some((n["sku"].as_str()?.to_string(), legacy_id(&n["inventoryItem"]["legacyResourceId"])?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok((variants, next_cursor(pv)))
    }

    /// One page of orders updated at or after `since`: (id, updatedAt) and the next page's cursor.
    pub async fn orders_updated_since(
        &self,
        since: &str,
        after: Option<&str>,
    ) -> Result<(Vec<(u64, String)>, Option<String>), CallError> {
        let vars = json!({ "query": format!("updated_at:>='{since}'"), "after": after });
        let data: Value = self.gql.run(&queries::ORDERS_UPDATED_SINCE, vars).await?;
        let o = &data["orders"];
        let orders = o["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| Some((legacy_id(&n["legacyResourceId"])?, n["updatedAt"].as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok((orders, next_cursor(o)))
    }

    /// Every location: (id, name, active).
    pub async fn locations(&self) -> Result<Vec<(u64, String, bool)>, CallError> {
        let data: Value = self.gql.run(&queries::LOCATIONS, json!({})).await?;
        Ok(data["locations"]["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| {
                        let name = n["name"].as_str().unwrap_or_default().to_string();
                        Some((legacy_id(&n["legacyResourceId"])?, name, n["isActive"] == true))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn webhook_subscriptions(&self) -> Result<Vec<Subscription>, CallError> {
        let data: Value = self.gql.run(&queries::WEBHOOK_SUBSCRIPTIONS, json!({})).await?;
        Ok(serde_json::from_value(data["webhookSubscriptions"]["nodes"].clone()).unwrap_or_default())
    }

    pub async fn create_webhook(&self, topic: &str, uri: &str) -> Result<(), CallError> {
        let data: Value = self.gql.run(&queries::WEBHOOK_CREATE, json!({ "topic": topic, "uri": uri })).await?;
        user_errors(&data["webhookSubscriptionCreate"])
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<(), CallError> {
        let data: Value = self.gql.run(&queries::WEBHOOK_DELETE, json!({ "id": id })).await?;
        user_errors(&data["webhookSubscriptionDelete"])
    }

    /// Closes (archives) an order. An order already closed counts as done.
    pub async fn close_order(&self, order_id: u64) -> Result<(), CallError> {
        let data: Value =
            self.gql.run(&queries::ORDER_CLOSE, json!({ "input": { "id": order_gid(order_id) } })).await?;
        match user_errors(&data["orderClose"]) {
            Err(CallError::Refused { message }) if message.to_lowercase().contains("closed") => Ok(()),
            other => other,
        }
    }

    /// The access scopes granted to channeld's token (REST: the only place Shopify lists them).
    pub async fn access_scopes(&self) -> Result<Vec<String>, CallError> {
        let v = self.gql.rest_get("/admin/oauth/access_scopes.json").await?;
        Ok(v["access_scopes"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["handle"].as_str().map(str::to_string)).collect())
            .unwrap_or_default())
    }

    /// The order as Shopify has it now, in the same model webhooks carry; `None` when unknown.
    pub async fn order(&self, order_id: u64) -> Result<Option<ShopifyOrder>, CallError> {
        let data: Value = self.gql.run(&queries::ORDER, json!({ "id": order_gid(order_id) })).await?;
        match &data["order"] {
            Value::Null => Ok(None),
            o => queries::order_from_graphql(o)
                .map(Some)
                .ok_or_else(|| CallError::Refused {
                    message: format!(
                        "Shopify order {order_id} could not be read, or has more than {} lines (then only its webhook can bring it)",
                        queries::ORDER_LINE_LIMIT
                    ),
                }),
        }
    }
}

/// `UnsignedInt64` arrives as a string; accept a number too.
fn legacy_id(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The cursor of the next page of a connection, when there is one.
fn next_cursor(connection: &Value) -> Option<String> {
    let info = &connection["pageInfo"];
    (info["hasNextPage"] == true).then(|| info["endCursor"].as_str().map(str::to_string)).flatten()
}

/// A mutation payload's `userErrors` as a refusal.
fn user_errors(payload: &Value) -> Result<(), CallError> {
    match payload["userErrors"].as_array() {
        Some(errors) if !errors.is_empty() => {
            let msgs: Vec<&str> = errors.iter().filter_map(|e| e["message"].as_str()).collect();
            Err(CallError::Refused { message: format!("Shopify refused: {}", msgs.join("; ")) })
        }
        _ => Ok(()),
    }
}

/// A webhook subscription as Shopify lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Subscription {
    pub id: String,
    pub topic: String,
    #[serde(default)]
    pub uri: String,
    #[serde(default, rename = "includeFields")]
    pub include_fields: Vec<String>,
    #[serde(default)]
    pub filter: Option<String>,
}
