//! A stateful fake of the Shopify Admin API for operations: access scopes, the client-credentials
//! token endpoint (with a configurable token lifetime), locations, webhook subscriptions (list,
//! create, delete), orders for routing, `orders retry` and reconciliation, fulfillments (each
//! with its id), returns (`shopify_returns_fake`) and fulfillment events (`shopify_tracking_fake`).
//! Like Shopify, it
//! refuses a mutation that needs `@idempotent(key:)` without one, and runs a refund once per key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub const STATIC_TOKEN: &str = "shpat_test";

/// Subscription id → (topic, uri, includeFields).
type Subscriptions = BTreeMap<u64, (String, String, Vec<String>)>;

pub struct AdminState {
    pub scopes: Mutex<Vec<String>>,
    pub locations: Mutex<Vec<(u64, String, bool)>>,
    pub subscriptions: Mutex<Subscriptions>,
    pub next_id: Mutex<u64>,
    /// Orders as GraphQL returns them, by id.
    pub orders: Mutex<HashMap<u64, Value>>,
    pub fulfillment_location: Mutex<u64>,
    /// Tokens issued by the client-credentials grant, with their expiry.
    pub issued: Mutex<HashMap<String, Instant>>,
    pub token_lifetime: Mutex<Duration>,
    /// Every GraphQL operation and token grant, in order: "query Locations", "grant", ...
    pub log: Mutex<Vec<String>>,
    /// Current line quantities per order (for order edits).
    pub line_quantities: Mutex<HashMap<u64, Vec<(u64, u64)>>>,
    /// Tracking numbers of fulfillments made.
    pub tracking: Mutex<Vec<String>>,
    /// Requests refused because their token was unknown or expired.
    pub refused_tokens: Mutex<u32>,
    /// The suggested refund's amount in (shop, presentment) money: (amount, currency code) each.
    pub suggested_refund: Mutex<((String, String), (String, String))>,
    /// Every `refundCreate` received: its `@idempotent` key and its input.
    pub refund_requests: Mutex<Vec<(String, Value)>>,
    /// Refunds made, by idempotency key (a repeated key returns the first refund, makes none).
    pub refunds: Mutex<BTreeMap<String, Value>>,
    /// Make the refund, then answer the next `refundCreate` with a 502 (the answer is lost).
    pub lose_next_refund_answer: Mutex<bool>,
    /// How `orderCancel`'s asynchronous job behaves.
    pub cancel_job: Mutex<CancelJob>,
    /// The order's fulfillment orders, served a page at a time (as many as the query's `first`).
    pub fulfillment_orders: Mutex<Vec<FakeFulfillmentOrder>>,
    /// Orders whose `Order` query Shopify refuses (the query would cost too much).
    pub refused_orders: Mutex<HashSet<u64>>,
    /// Returns, their fulfillments, `returnProcess` and `returnClose` (`shopify_returns_fake`).
    pub returns: crate::shopify_returns_fake::ReturnsState,
    /// Fulfillment events (`shopify_tracking_fake`).
    pub events: crate::shopify_tracking_fake::TrackingState,
}

/// A fulfillment order: id, status, and its lines (line id, order line id, remaining quantity).
#[derive(Debug, Clone)]
pub struct FakeFulfillmentOrder {
    pub id: u64,
    pub status: &'static str,
    pub lines: Vec<(u64, u64, u64)>,
}

/// The `first:` a query asks of a connection (`lineItems(first: 25`), or 50.
fn first_of(query: &str, connection: &str) -> usize {
    let Some(at) = query.find(&format!("{connection}(first: ")) else { return 50 };
    let rest = &query[at + connection.len() + 8..];
    rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())].parse().unwrap_or(50)
}

/// One page of `items` after the cursor `after` (an index), as a connection.
pub fn page(items: Vec<Value>, first: usize, after: &Value) -> Value {
    let start: usize = after.as_str().and_then(|a| a.parse().ok()).unwrap_or(0);
    let end = (start + first).min(items.len());
    let nodes: Vec<Value> = items.get(start..end).unwrap_or_default().to_vec();
    json!({ "nodes": nodes, "pageInfo": { "hasNextPage": end < items.len(), "endCursor": end.to_string() } })
}

fn fo_lines(fo: &FakeFulfillmentOrder) -> Vec<Value> {
    fo.lines
        .iter()
        .map(|(id, line, remaining)| {
            json!({ "id": format!("gid://shopify/FulfillmentOrderLineItem/{id}"), "remainingQuantity": remaining,
                    "lineItem": { "id": format!("gid://shopify/LineItem/{line}") } })
        })
        .collect()
}

/// The job an `orderCancel` starts: still running for the first `polls_until_done` polls of
/// `job(id:)`, then done with `status` (`SUCCEEDED` or `FAILED`, with `errors`).
#[derive(Debug, Clone)]
pub struct CancelJob {
    pub polls_until_done: u32,
    pub status: &'static str,
    pub errors: Vec<Value>,
    /// Polls received so far.
    pub polls: u32,
}

impl Default for CancelJob {
    fn default() -> Self {
        Self { polls_until_done: 1, status: "SUCCEEDED", errors: Vec::new(), polls: 0 }
    }
}

impl CancelJob {
    /// The job and its result as Shopify shows them now.
    fn view(&self) -> (Value, Value) {
        let done = self.polls >= self.polls_until_done;
        let job = json!({ "id": "gid://shopify/Job/1", "done": done });
        let result = json!({ "id": "gid://shopify/OrderCancelJobResult/1", "done": done,
            "status": if done { self.status } else { "STARTED" }, "errors": if done { self.errors.clone() } else { vec![] } });
        (job, result)
    }
}

#[derive(Clone)]
pub struct AdminShopify {
    pub addr: SocketAddr,
    pub state: Arc<AdminState>,
}

impl AdminShopify {
    pub async fn start() -> Self {
        let scopes = channeld::flows::scopes::REQUIRED.iter().chain(&channeld::flows::scopes::RETURNS);
        let all: Vec<String> = scopes.map(|(s, _)| s.to_string()).collect();
        let state = Arc::new(AdminState {
            scopes: Mutex::new(all),
            locations: Mutex::new(vec![(24826418, "Warehouse".into(), true), (655441491, "Store".into(), true)]),
            subscriptions: Mutex::new(BTreeMap::new()),
            next_id: Mutex::new(1),
            orders: Mutex::new(HashMap::new()),
            fulfillment_location: Mutex::new(24826418),
            issued: Mutex::new(HashMap::new()),
            token_lifetime: Mutex::new(Duration::from_secs(3600)),
            log: Mutex::new(Vec::new()),
            refused_tokens: Mutex::new(0),
            line_quantities: Mutex::new(HashMap::new()),
            tracking: Mutex::new(Vec::new()),
            suggested_refund: Mutex::new((("199.65".into(), "INR".into()), ("199.65".into(), "INR".into()))),
            refund_requests: Mutex::new(Vec::new()),
            refunds: Mutex::new(BTreeMap::new()),
            lose_next_refund_answer: Mutex::new(false),
            cancel_job: Mutex::new(CancelJob::default()),
            fulfillment_orders: Mutex::new(vec![FakeFulfillmentOrder {
                id: 1046000780,
                status: "OPEN",
                lines: vec![(1072503277, 518995019, 1)],
            }]),
            refused_orders: Mutex::new(HashSet::new()),
            returns: crate::shopify_returns_fake::ReturnsState::new(),
            events: crate::shopify_tracking_fake::TrackingState::default(),
        });
        let addr = crate::fakes::serve(axum::Router::new().fallback(handle).with_state(state.clone())).await;
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_subscription(&self, topic: &str, uri: &str, include_fields: &[&str]) -> u64 {
        let mut next = self.state.next_id.lock().unwrap();
        let id = *next;
        *next += 1;
        let fields = include_fields.iter().map(|s| s.to_string()).collect();
        self.state.subscriptions.lock().unwrap().insert(id, (topic.into(), uri.into(), fields));
        id
    }

    pub fn subscriptions(&self) -> Vec<(String, String)> {
        self.state.subscriptions.lock().unwrap().values().map(|(t, u, _)| (t.clone(), u.clone())).collect()
    }

    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    /// Puts an order (GraphQL shape) on the fake shop.
    pub fn put_order(&self, order: Value) {
        let id: u64 = order["legacyResourceId"].as_str().unwrap().parse().unwrap();
        self.state.orders.lock().unwrap().insert(id, order);
    }
}

fn token_ok(state: &AdminState, headers: &HeaderMap) -> bool {
    let token = headers.get("X-Shopify-Access-Token").and_then(|v| v.to_str().ok()).unwrap_or("");
    if token == STATIC_TOKEN {
        return true;
    }
    state.issued.lock().unwrap().get(token).is_some_and(|exp| Instant::now() < *exp)
}

async fn handle(State(state): State<Arc<AdminState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if uri.path() == "/admin/oauth/access_token" {
        let text = String::from_utf8_lossy(&body);
        if !text.contains("grant_type=client_credentials") || !text.contains("client_secret=cc-secret") {
            return (StatusCode::BAD_REQUEST, "bad grant").into_response();
        }
        let lifetime = *state.token_lifetime.lock().unwrap();
        let token = format!("cc-{}", uuid::Uuid::new_v4().simple());
        state.issued.lock().unwrap().insert(token.clone(), Instant::now() + lifetime);
        state.log.lock().unwrap().push("grant".into());
        return Json(json!({ "access_token": token, "scope": "read_orders", "expires_in": lifetime.as_secs() }))
            .into_response();
    }
    if !token_ok(&state, &headers) {
        *state.refused_tokens.lock().unwrap() += 1;
        return (StatusCode::UNAUTHORIZED, Json(json!({ "errors": "[API] Invalid API key or access token" })))
            .into_response();
    }
    if uri.path() == "/admin/oauth/access_scopes.json" {
        let scopes: Vec<Value> = state.scopes.lock().unwrap().iter().map(|s| json!({ "handle": s })).collect();
        return Json(json!({ "access_scopes": scopes })).into_response();
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query = req["query"].as_str().unwrap_or_default();
    let vars = &req["variables"];
    let op = query.split('(').next().unwrap_or_default().split('{').next().unwrap_or_default().trim().to_string();
    state.log.lock().unwrap().push(op.clone());
    if let Some(refused) = crate::shopify_inventory_fake::missing_idempotent(query, vars) {
        state.log.lock().unwrap().push(format!("refused {op}: no @idempotent"));
        return Json(refused).into_response();
    }
    let data = match op.as_str() {
        "query Locations" => {
            let nodes: Vec<Value> = state.locations.lock().unwrap().iter()
                .map(|(id, name, active)| json!({ "legacyResourceId": id.to_string(), "name": name, "isActive": active }))
                .collect();
            json!({ "locations": { "nodes": nodes } })
        }
        "query WebhookSubscriptions" => {
            let nodes: Vec<Value> = state
                .subscriptions
                .lock()
                .unwrap()
                .iter()
                .map(|(id, (topic, uri, fields))| {
                    json!({ "id": format!("gid://shopify/WebhookSubscription/{id}"),
                    "topic": topic, "uri": uri, "includeFields": fields, "filter": "" })
                })
                .collect();
            json!({ "webhookSubscriptions": { "nodes": nodes } })
        }
        "mutation WebhookSubscriptionCreate" => {
            let mut next = state.next_id.lock().unwrap();
            let id = *next;
            *next += 1;
            let entry =
                (vars["topic"].as_str().unwrap().to_string(), vars["uri"].as_str().unwrap().to_string(), vec![]);
            state.subscriptions.lock().unwrap().insert(id, entry);
            json!({ "webhookSubscriptionCreate": { "webhookSubscription": { "id": format!("gid://shopify/WebhookSubscription/{id}") }, "userErrors": [] } })
        }
        "mutation WebhookSubscriptionDelete" => {
            let id: u64 = vars["id"].as_str().unwrap().rsplit('/').next().unwrap().parse().unwrap();
            state.subscriptions.lock().unwrap().remove(&id);
            json!({ "webhookSubscriptionDelete": { "deletedWebhookSubscriptionId": vars["id"], "userErrors": [] } })
        }
        "mutation OrderCancel" => {
            state.log.lock().unwrap().push(format!(
                "cancel {} restock={}",
                vars["orderId"].as_str().unwrap_or_default(),
                vars["restock"]
            ));
            let mut job = state.cancel_job.lock().unwrap();
            job.polls = 0;
            let (job, result) = job.view();
            json!({ "orderCancel": { "job": job, "jobResult": result, "orderCancelUserErrors": [] } })
        }
        "query OrderCancelJob" => {
            let mut job = state.cancel_job.lock().unwrap();
            job.polls += 1;
            let (view, result) = job.view();
            let mut data = json!({ "job": view });
            if vars["withResult"] == true && vars["resultId"] == result["id"] {
                data["jobResult"] = result;
            }
            data
        }
        "query OrderLineQuantities" => {
            let id: u64 = vars["id"].as_str().unwrap().rsplit('/').next().unwrap().parse().unwrap();
            let lines = state.line_quantities.lock().unwrap().get(&id).cloned().unwrap_or_default();
            let nodes: Vec<Value> = lines
                .iter()
                .map(|(l, q)| json!({ "id": format!("gid://shopify/LineItem/{l}"), "currentQuantity": q }))
                .collect();
            json!({ "order": { "lineItems": { "nodes": nodes } } })
        }
        "mutation OrderEditBegin" => {
            json!({ "orderEditBegin": { "calculatedOrder": { "id": "gid://shopify/CalculatedOrder/9" }, "userErrors": [] } })
        }
        "mutation OrderEditSetQuantity" => {
            state.log.lock().unwrap().push(format!(
                "set {} {}",
                vars["lineItemId"].as_str().unwrap_or_default(),
                vars["quantity"]
            ));
            json!({ "orderEditSetQuantity": { "calculatedLineItem": { "id": vars["lineItemId"] }, "userErrors": [] } })
        }
        "mutation OrderEditCommit" => {
            json!({ "orderEditCommit": { "order": { "id": "gid://shopify/Order/1" }, "userErrors": [] } })
        }
        "query SuggestedRefund" => {
            let ((shop, shop_cur), (pres, pres_cur)) = state.suggested_refund.lock().unwrap().clone();
            json!({ "order": { "suggestedRefund": { "suggestedTransactions": [
                { "gateway": "bogus", "parentTransaction": { "id": "gid://shopify/OrderTransaction/7" },
                  "amountSet": { "shopMoney": { "amount": shop, "currencyCode": shop_cur },
                                 "presentmentMoney": { "amount": pres, "currencyCode": pres_cur } } } ] } } })
        }
        "mutation RefundCreate" => {
            let key = vars["key"].as_str().unwrap_or_default().to_string();
            state.refund_requests.lock().unwrap().push((key.clone(), vars["input"].clone()));
            let mut refunds = state.refunds.lock().unwrap();
            if !refunds.contains_key(&key) {
                let id = format!("gid://shopify/Refund/{}", refunds.len() + 1);
                refunds.insert(key, json!({ "id": id }));
                state.log.lock().unwrap().push(format!(
                    "refund {}",
                    vars["input"]["transactions"][0]["amount"].as_str().unwrap_or_default()
                ));
            }
            let refund = refunds.get(vars["key"].as_str().unwrap_or_default()).cloned();
            if std::mem::take(&mut *state.lose_next_refund_answer.lock().unwrap()) {
                return (StatusCode::BAD_GATEWAY, "upstream went away").into_response();
            }
            json!({ "refundCreate": { "refund": refund, "userErrors": [] } })
        }
        "query FulfillmentState" => {
            let numbers: Vec<Value> = state
                .tracking
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    json!({ "id": crate::shopify_tracking_fake::fulfillment_gid(i + 1), "trackingInfo": [{ "number": n }] })
                })
                .collect();
            let line_page = first_of(query, "lineItems");
            let fos: Vec<Value> = state
                .fulfillment_orders
                .lock()
                .unwrap()
                .iter()
                .map(|fo| {
                    json!({ "id": format!("gid://shopify/FulfillmentOrder/{}", fo.id), "status": fo.status,
                            "lineItems": page(fo_lines(fo), line_page, &Value::Null) })
                })
                .collect();
            let fos = page(fos, first_of(query, "fulfillmentOrders"), &vars["after"]);
            json!({ "order": { "fulfillments": numbers, "fulfillmentOrders": fos } })
        }
        "query FulfillmentOrderLines" => {
            let id: u64 = vars["id"].as_str().unwrap().rsplit('/').next().unwrap().parse().unwrap();
            let fos = state.fulfillment_orders.lock().unwrap();
            match fos.iter().find(|fo| fo.id == id) {
                Some(fo) => json!({ "fulfillmentOrder": {
                    "lineItems": page(fo_lines(fo), first_of(query, "lineItems"), &vars["after"]) } }),
                None => json!({ "fulfillmentOrder": null }),
            }
        }
        "mutation FulfillmentCreate" => {
            let number = vars["fulfillment"]["trackingInfo"]["number"].as_str().unwrap_or_default().to_string();
            state.log.lock().unwrap().push(format!(
                "fulfill {number} {} company={}",
                vars["fulfillment"]["lineItemsByFulfillmentOrder"],
                vars["fulfillment"]["trackingInfo"]["company"].as_str().unwrap_or_default()
            ));
            let made = {
                let mut tracking = state.tracking.lock().unwrap();
                tracking.push(number);
                crate::shopify_tracking_fake::fulfillment_gid(tracking.len())
            };
            json!({ "fulfillmentCreate": { "fulfillment": { "id": made }, "userErrors": [] } })
        }
        "mutation OrderClose" => {
            let id = vars["input"]["id"].as_str().unwrap_or_default().to_string();
            state.log.lock().unwrap().push(format!("closed {id}"));
            json!({ "orderClose": { "order": { "closed": true }, "userErrors": [] } })
        }
        "query FulfillmentOrders" => {
            let loc = *state.fulfillment_location.lock().unwrap();
            json!({ "order": { "fulfillmentOrders": { "nodes": [
                { "status": "OPEN", "assignedLocation": { "location": { "legacyResourceId": loc.to_string() } } } ] } } })
        }
        "query OrdersUpdatedSince" => {
            let nodes: Vec<Value> = state
                .orders
                .lock()
                .unwrap()
                .values()
                .map(|o| json!({ "legacyResourceId": o["legacyResourceId"], "updatedAt": o["updatedAt"] }))
                .collect();
            json!({ "orders": { "nodes": nodes, "pageInfo": { "hasNextPage": false, "endCursor": null } } })
        }
        // Like Shopify, an order's lines come a page at a time (as many as the query's `first`).
        "query Order" | "query OrderLines" => {
            let id: u64 = vars["id"].as_str().unwrap().rsplit('/').next().unwrap().parse().unwrap();
            if state.refused_orders.lock().unwrap().contains(&id) {
                return Json(json!({ "errors": [{ "message": "Query cost is 1212, which exceeds the single query max cost limit (1000).",
                    "extensions": { "code": "MAX_COST_EXCEEDED", "cost": 1212, "maxCost": 1000 } }] }))
                .into_response();
            }
            let Some(mut order) = state.orders.lock().unwrap().get(&id).cloned() else {
                return Json(json!({ "data": { "order": null } })).into_response();
            };
            let lines = order["lineItems"]["nodes"].as_array().cloned().unwrap_or_default();
            let after = if op == "query Order" { Value::Null } else { vars["after"].clone() };
            let lines = page(lines, first_of(query, "lineItems"), &after);
            if op == "query Order" {
                order["lineItems"] = lines;
                json!({ "order": order })
            } else {
                json!({ "order": { "lineItems": lines } })
            }
        }
        _ => {
            let numbers = state.tracking.lock().unwrap().clone();
            let answered = match crate::shopify_returns_fake::handle(&state.returns, &op, vars).await {
                Some(data) => Some(data),
                None => crate::shopify_tracking_fake::handle(&state.events, &numbers, &op, vars).await,
            };
            match answered {
                Some(data) => data,
                None => {
                    return Json(json!({ "errors": [{ "message": format!("the fake does not know {op}") }] }))
                        .into_response()
                }
            }
        }
    };
    Json(json!({ "data": data, "extensions": { "cost": { "requestedQueryCost": 10, "throttleStatus":
        { "maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0 } } } }))
    .into_response()
}
