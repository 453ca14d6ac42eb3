//! Tracking on Shopify (CONTRACT.md §10.3): an order's fulfillments with their tracking numbers
//! (to find the fulfillment of a shipment channeld fulfilled before it kept the id), a
//! fulfillment's events, and `fulfillmentEventCreate`.
//!
//! `fulfillmentEventCreate` takes no idempotency key (its description in 2026-10 documents none):
//! the caller stores each event before sending it and, when a send may have reached Shopify,
//! reads the fulfillment's events first ([`ShopifyClient::fulfillment_events`]).

use serde_json::{json, Value};

use super::queries::{order_gid, Document};
use super::{next_cursor, user_errors, ShopifyClient};
use crate::flows::tracking::ShopifyStep;
use crate::remote::CallError;

pub const ORDER_FULFILLMENTS: Document = Document {
    name: "OrderFulfillments",
    cost: 12,
    text: r#"query OrderFulfillments($id: ID!) {
  order(id: $id) { fulfillments(first: 250) { id trackingInfo { number } } }
}"#,
};

/// A fulfillment's events, a page at a time.
pub const FULFILLMENT_EVENTS: Document = Document {
    name: "FulfillmentEvents",
    cost: 12,
    text: r#"query FulfillmentEvents($id: ID!, $after: String) {
  fulfillment(id: $id) {
    id
    events(first: 50, after: $after) { nodes { status happenedAt } pageInfo { hasNextPage endCursor } }
  }
}"#,
};

pub const FULFILLMENT_EVENT_CREATE: Document = Document {
    name: "FulfillmentEventCreate",
    cost: 10,
    text: r#"mutation FulfillmentEventCreate($fulfillmentEvent: FulfillmentEventInput!) {
  fulfillmentEventCreate(fulfillmentEvent: $fulfillmentEvent) {
    fulfillmentEvent { id status happenedAt }
    userErrors { field message }
  }
}"#,
};

/// The most pages of one fulfillment's events read (50 each: far beyond any real journey).
const MAX_EVENT_PAGES: usize = 20;

/// The documents of this file, with example variables for the schema test.
pub fn documents() -> Vec<(&'static Document, Value)> {
    let step = ShopifyStep {
        status: "ATTEMPTED_DELIVERY".into(),
        happened_at: "2016-07-12T11:42:36.710Z".into(),
        message: "Customer Unavailable".into(),
        city: "Bengaluru_Koramangala_Dc (Karnataka)".into(),
        state: crate::flows::tracking::StepState::Queued,
    };
    vec![
        (&ORDER_FULFILLMENTS, json!({ "id": order_gid(450789469) })),
        (&FULFILLMENT_EVENTS, json!({ "id": "gid://shopify/Fulfillment/1", "after": null })),
        (&FULFILLMENT_EVENT_CREATE, event_variables("gid://shopify/Fulfillment/1", &step)),
    ]
}

/// `fulfillmentEventCreate`'s variables for a step; an empty message or city is left out.
fn event_variables(fulfillment_id: &str, step: &ShopifyStep) -> Value {
    let mut input = json!({ "fulfillmentId": fulfillment_id, "status": step.status, "happenedAt": step.happened_at });
    if !step.message.is_empty() {
        input["message"] = json!(step.message);
    }
    if !step.city.is_empty() {
        input["city"] = json!(step.city);
    }
    json!({ "fulfillmentEvent": input })
}

impl ShopifyClient {
    /// The order's fulfillments: (fulfillment id, its tracking numbers); `None` when Shopify does
    /// not know the order.
    pub async fn order_fulfillments(&self, order_id: u64) -> Result<Option<Vec<(String, Vec<String>)>>, CallError> {
        let data: Value = self.gql.run(&ORDER_FULFILLMENTS, json!({ "id": order_gid(order_id) })).await?;
        let order = &data["order"];
        if order.is_null() {
            return Ok(None);
        }
        let fulfillments = order["fulfillments"].as_array().into_iter().flatten();
        Ok(Some(
            fulfillments
                .filter_map(|f| {
                    let numbers = f["trackingInfo"].as_array().into_iter().flatten();
                    let numbers = numbers.filter_map(|t| t["number"].as_str().map(str::to_string)).collect();
                    Some((f["id"].as_str()?.to_string(), numbers))
                })
                .collect(),
        ))
    }

    /// Every event of a fulfillment: (status, happenedAt); `None` when Shopify does not know it.
    pub async fn fulfillment_events(&self, fulfillment_id: &str) -> Result<Option<Vec<(String, String)>>, CallError> {
        let (mut events, mut after) = (Vec::new(), None::<String>);
        for _ in 0..MAX_EVENT_PAGES {
            let vars = json!({ "id": fulfillment_id, "after": after });
            let data: Value = self.gql.run(&FULFILLMENT_EVENTS, vars).await?;
            let f = &data["fulfillment"];
            if f.is_null() {
                return Ok(None);
            }
            let page = &f["events"];
            for e in page["nodes"].as_array().into_iter().flatten() {
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                events.push((text("status"), text("happenedAt")));
            }
            match next_cursor(page) {
                Some(cursor) => after = Some(cursor),
                None => return Ok(Some(events)),
            }
        }
        Err(CallError::Refused {
            message: format!("Shopify fulfillment {fulfillment_id}: more than {MAX_EVENT_PAGES} pages of events"),
        })
    }

    /// Creates one fulfillment event. `userErrors` are a refusal.
    pub async fn create_fulfillment_event(&self, fulfillment_id: &str, step: &ShopifyStep) -> Result<(), CallError> {
        let data: Value = self.gql.run(&FULFILLMENT_EVENT_CREATE, event_variables(fulfillment_id, step)).await?;
        user_errors(&data["fulfillmentEventCreate"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_s_variables_leave_out_what_it_does_not_have() {
        let (_, vars) = &documents()[2];
        assert_eq!(vars["fulfillmentEvent"]["message"], "Customer Unavailable");
        let step = ShopifyStep {
            status: "DELIVERED".into(),
            happened_at: "2017-08-02T16:00:00.000Z".into(),
            message: String::new(),
            city: String::new(),
            state: crate::flows::tracking::StepState::Queued,
        };
        let vars = event_variables("gid://shopify/Fulfillment/9", &step);
        assert_eq!(
            vars,
            json!({ "fulfillmentEvent": { "fulfillmentId": "gid://shopify/Fulfillment/9", "status": "DELIVERED",
                    "happenedAt": "2017-08-02T16:00:00.000Z" } })
        );
    }
}
