//! Fakes of the remote parties on 127.0.0.1: a stateful WMS (a tiny axum server that records
//! every call and behaves like Increff, including "already exists" for a repeated creation), and
//! a Shopify GraphQL endpoint built on wiremock.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// One call the fake WMS received.
#[derive(Debug, Clone)]
pub struct WmsCall {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// How the fake WMS answers the next calls.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Answer this many calls with 500 first.
    pub fail_next: u32,
    /// Answer every call with this status and message (until cleared).
    pub refuse: Option<(u16, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Do what this many calls ask, then answer them with 500 anyway: the answer is lost (as when
    /// the caller times out after the WMS acted).
    pub lose_answers: u32,
}

#[derive(Default)]
pub struct WmsState {
    pub calls: Mutex<Vec<WmsCall>>,
    /// Order codes the WMS holds (a repeat creation answers "already exists").
    pub orders: Mutex<HashSet<String>>,
    /// Return order codes the WMS holds (a repeat creation answers "already exists").
    pub returns: Mutex<HashSet<String>>,
    pub behaviour: Mutex<Behaviour>,
}

#[derive(Clone)]
pub struct FakeWms {
    pub addr: SocketAddr,
    pub state: Arc<WmsState>,
}

/// Serves a fake on a free port of 127.0.0.1 for the rest of the test.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

impl FakeWms {
    pub async fn start() -> Self {
        let state = Arc::new(WmsState::default());
        let addr = serve(axum::Router::new().fallback(answer).with_state(state.clone())).await;
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<WmsCall> {
        self.state.calls.lock().unwrap().clone()
    }

    /// Calls to one method and path, e.g. ("POST", "/orders/outward").
    pub fn calls_to(&self, m: &str, p: &str) -> Vec<WmsCall> {
        self.calls().into_iter().filter(|c| c.method == m && c.path == p).collect()
    }

    /// Bodies of the return orders the WMS took (a repeat answered "already exists" is not one).
    pub fn returns_created(&self) -> Vec<Value> {
        let taken = self.state.returns.lock().unwrap().clone();
        let mut seen = HashSet::new();
        self.calls_to("POST", "/return/return-orders")
            .into_iter()
            .map(|c| c.body)
            .filter(|b| {
                let code = b["returnOrderCode"].as_str().unwrap_or_default().to_string();
                taken.contains(&code) && seen.insert(code)
            })
            .collect()
    }

    /// Order codes of successful creations (each code once per accepted creation).
    pub fn created(&self) -> Vec<String> {
        self.state.orders.lock().unwrap().iter().cloned().collect()
    }

    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
    }
}

async fn answer(
    State(state): State<Arc<WmsState>>,
    m: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let call = WmsCall { method: m.to_string(), path: uri.path().to_string(), headers, body: body.clone() };
    state.calls.lock().unwrap().push(call);
    let (delay, fail, refuse) = {
        let mut b = state.behaviour.lock().unwrap();
        let fail = b.fail_next > 0;
        if fail {
            b.fail_next -= 1;
        }
        (b.delay, fail, b.refuse.clone())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if fail {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"code": "ERROR", "message": "temporarily down"})),
        );
    }
    if let Some((status, message)) = refuse {
        let status = StatusCode::from_u16(status).unwrap();
        return (status, axum::Json(json!({"code": "BAD_DATA", "message": message})));
    }
    let (status, answer) = act(&state, &m, uri.path(), &body);
    let lose = {
        let mut b = state.behaviour.lock().unwrap();
        let lose = b.lose_answers > 0;
        if lose {
            b.lose_answers -= 1;
        }
        lose
    };
    if lose {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"code": "ERROR", "message": "upstream timed out"})),
        );
    }
    (status, axum::Json(answer))
}

/// What the WMS does with a call it accepts, like Increff: a repeated creation "already exists",
/// a cancellation of an order it does not hold is "not found".
fn act(state: &WmsState, m: &Method, path: &str, body: &Value) -> (StatusCode, Value) {
    if m == Method::POST && path == "/orders/outward" {
        let code = body["orderCode"].as_str().unwrap_or_default().to_string();
        if !state.orders.lock().unwrap().insert(code.clone()) {
            return (
                StatusCode::BAD_REQUEST,
                json!({"code": "BAD_DATA", "message": format!("Order {code} already exists")}),
            );
        }
    }
    if m == Method::POST && path == "/return/return-orders" {
        let code = body["returnOrderCode"].as_str().unwrap_or_default().to_string();
        let forward = body["forwardOrderCode"].as_str().unwrap_or_default();
        if !state.orders.lock().unwrap().contains(forward) {
            return (
                StatusCode::BAD_REQUEST,
                json!({"code": "BAD_DATA", "message": format!("Forward order {forward} not found")}),
            );
        }
        if !state.returns.lock().unwrap().insert(code.clone()) {
            return (
                StatusCode::BAD_REQUEST,
                json!({"code": "BAD_DATA", "message": format!("Return order {code} already exists")}),
            );
        }
    }
    if let Some(code) = path.strip_prefix("/orders/").and_then(|p| p.strip_suffix("/cancel")) {
        if m == Method::PUT && !state.orders.lock().unwrap().contains(code) {
            return (StatusCode::NOT_FOUND, json!({"code": "BAD_DATA", "message": format!("Order {code} not found")}));
        }
    }
    (StatusCode::OK, json!({"hasError": false}))
}

/// A Shopify GraphQL endpoint. Answers the fulfillment-orders query with one open fulfillment
/// order at `location_id`, and the order query with `order` when given. Like Shopify, it refuses a
/// mutation that needs `@idempotent(key:)` without one, whatever a test mounts.
pub struct FakeShopify {
    pub server: MockServer,
}

pub const GRAPHQL_PATH: &str = "/admin/api/2026-10/graphql.json";

impl FakeShopify {
    pub async fn start(location_id: u64) -> Self {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(GRAPHQL_PATH))
            .and(|req: &Request| idempotent_refusal(req).is_some())
            .respond_with(|req: &Request| {
                ResponseTemplate::new(200).set_body_json(idempotent_refusal(req).unwrap_or_default())
            })
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(GRAPHQL_PATH))
            .and(body_string_contains("query FulfillmentOrders"))
            .respond_with(ResponseTemplate::new(200).set_body_json(fulfillment_orders(location_id)))
            .mount(&server)
            .await;
        Self { server }
    }

    pub fn url(&self) -> String {
        self.server.uri()
    }

    /// Answers the `Order` query with this GraphQL order object.
    pub async fn serve_order(&self, order: Value) {
        Mock::given(method("POST"))
            .and(path(GRAPHQL_PATH))
            .and(body_string_contains("query Order"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "data": { "order": order }, "extensions": cost() })),
            )
            .mount(&self.server)
            .await;
    }

    /// Bodies of the GraphQL requests received.
    pub async fn graphql_requests(&self) -> Vec<Value> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == GRAPHQL_PATH)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

/// Shopify's refusal of this request for a missing `@idempotent`, if it is one.
fn idempotent_refusal(req: &Request) -> Option<Value> {
    let body: Value = serde_json::from_slice(&req.body).ok()?;
    crate::shopify_inventory_fake::missing_idempotent(body["query"].as_str()?, &body["variables"])
}

pub fn cost() -> Value {
    json!({ "cost": { "requestedQueryCost": 12, "actualQueryCost": 6,
        "throttleStatus": { "maximumAvailable": 2000.0, "currentlyAvailable": 1994, "restoreRate": 100.0 } } })
}

/// The GraphQL shape of the fulfillment-orders fixture, at `location_id`.
pub fn fulfillment_orders(location_id: u64) -> Value {
    json!({ "data": { "order": { "fulfillmentOrders": { "nodes": [
        { "status": "OPEN", "assignedLocation": { "location": { "legacyResourceId": location_id.to_string() } } }
    ] } } }, "extensions": cost() })
}
