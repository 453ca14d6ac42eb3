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

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::Config;
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

    /// The order as Shopify has it now, in the same model webhooks carry; `None` when unknown.
    pub async fn order(&self, order_id: u64) -> Result<Option<ShopifyOrder>, CallError> {
        let data: Value = self.gql.run(&queries::ORDER, json!({ "id": order_gid(order_id) })).await?;
        match &data["order"] {
            Value::Null => Ok(None),
            o => queries::order_from_graphql(o)
                .map(Some)
                .ok_or_else(|| CallError::Refused { message: "Shopify Order: the answer could not be read".into() }),
        }
    }
}
