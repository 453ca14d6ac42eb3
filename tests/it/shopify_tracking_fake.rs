//! The tracking part of the fake Shopify Admin API (CONTRACT.md §10.3): an order's fulfillments
//! with their ids and tracking numbers, a fulfillment's events (a page at a time), and
//! `fulfillmentEventCreate`, which — like Shopify — takes no idempotency key: every call it
//! accepts makes an event. It refuses a status outside `FulfillmentEventStatus` and an unknown
//! fulfillment. Served through `AdminShopify`, which hands it the operations it does not know,
//! with the tracking numbers of the fulfillments made (fulfillment `n` is the `n`th, from 1).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::sync::Notify;

/// `FulfillmentEventStatus` in the 2026-10 schema.
const STATUSES: [&str; 11] = [
    "ATTEMPTED_DELIVERY",
    "CARRIER_PICKED_UP",
    "CONFIRMED",
    "DELAYED",
    "DELIVERED",
    "FAILURE",
    "IN_TRANSIT",
    "LABEL_PRINTED",
    "LABEL_PURCHASED",
    "OUT_FOR_DELIVERY",
    "READY_FOR_PICKUP",
];

#[derive(Default)]
pub struct TrackingState {
    /// Events by fulfillment id (gid), as created: status, happenedAt, message, city.
    pub events: Mutex<HashMap<String, Vec<Value>>>,
    /// Every `fulfillmentEventCreate` input received (made or refused).
    pub calls: Mutex<Vec<Value>>,
    /// Make the next event, then wait for `release` before answering (a test kills the daemon
    /// meanwhile: Shopify has the event, channeld never heard).
    pub hold_next: Mutex<bool>,
    pub held: Notify,
    pub release: Notify,
}

impl TrackingState {
    /// The events of fulfillment `n` (1 = the first made): (status, happenedAt, message, city).
    pub fn events_of(&self, n: usize) -> Vec<(String, String, String, String)> {
        let events = self.events.lock().unwrap();
        let text = |e: &Value, k: &str| e[k].as_str().unwrap_or_default().to_string();
        events
            .get(&fulfillment_gid(n))
            .into_iter()
            .flatten()
            .map(|e| (text(e, "status"), text(e, "happenedAt"), text(e, "message"), text(e, "city")))
            .collect()
    }

    /// Every event made on any fulfillment.
    pub fn all_events(&self) -> usize {
        self.events.lock().unwrap().values().map(Vec::len).sum()
    }
}

pub fn fulfillment_gid(n: usize) -> String {
    format!("gid://shopify/Fulfillment/{n}")
}

/// Answers a tracking operation (`None`: not one of them). `numbers` are the tracking numbers of
/// the fulfillments made, in order.
pub async fn handle(state: &TrackingState, numbers: &[String], op: &str, vars: &Value) -> Option<Value> {
    Some(match op {
        "query OrderFulfillments" => {
            let fulfillments: Vec<Value> = numbers
                .iter()
                .enumerate()
                .map(|(i, n)| json!({ "id": fulfillment_gid(i + 1), "trackingInfo": [{ "number": n }] }))
                .collect();
            json!({ "order": { "fulfillments": fulfillments } })
        }
        "query FulfillmentEvents" => {
            let id = vars["id"].as_str().unwrap_or_default().to_string();
            if !known(numbers, &id) {
                return Some(json!({ "fulfillment": null }));
            }
            let all: Vec<Value> = state.events.lock().unwrap().get(&id).cloned().unwrap_or_default();
            let nodes: Vec<Value> =
                all.iter().map(|e| json!({ "status": e["status"], "happenedAt": e["happenedAt"] })).collect();
            json!({ "fulfillment": { "id": id, "events": crate::shopify_admin_fake::page(nodes, 50, &vars["after"]) } })
        }
        "mutation FulfillmentEventCreate" => return Some(create(state, numbers, &vars["fulfillmentEvent"]).await),
        _ => return None,
    })
}

fn known(numbers: &[String], id: &str) -> bool {
    (1..=numbers.len()).any(|n| fulfillment_gid(n) == id)
}

fn refused(message: &str) -> Value {
    json!({ "fulfillmentEventCreate": { "fulfillmentEvent": null,
        "userErrors": [{ "field": ["fulfillmentEvent"], "message": message }] } })
}

async fn create(state: &TrackingState, numbers: &[String], input: &Value) -> Value {
    state.calls.lock().unwrap().push(input.clone());
    let id = input["fulfillmentId"].as_str().unwrap_or_default().to_string();
    if !known(numbers, &id) {
        return refused("Fulfillment does not exist");
    }
    let status = input["status"].as_str().unwrap_or_default();
    if !STATUSES.contains(&status) {
        return refused(&format!("Status is not included in the list: {status}"));
    }
    // Like Shopify, `happenedAt` comes back without the milliseconds sent.
    let happened = input["happenedAt"].as_str().unwrap_or_default();
    let happened = chrono::DateTime::parse_from_rfc3339(happened)
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let event = json!({ "status": status, "happenedAt": happened, "message": input["message"], "city": input["city"] });
    let made = {
        let mut events = state.events.lock().unwrap();
        let list = events.entry(id).or_default();
        list.push(event.clone());
        format!("gid://shopify/FulfillmentEvent/{}", list.len())
    };
    if std::mem::take(&mut *state.hold_next.lock().unwrap()) {
        state.held.notify_one();
        state.release.notified().await;
    }
    json!({ "fulfillmentEventCreate": { "fulfillmentEvent": { "id": made, "status": status, "happenedAt": happened },
        "userErrors": [] } })
}
