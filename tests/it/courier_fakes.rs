//! Fakes of Clickpost and Shiprocket on 127.0.0.1, recording every call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub query: String,
    pub body: Value,
}

#[derive(Default)]
pub struct CourierState {
    pub calls: Mutex<Vec<Call>>,
    /// Clickpost: answer the next create-order with 323 and this existing waybill.
    pub already_placed: Mutex<Option<String>>,
    /// Shiprocket: the orders its search returns.
    pub orders: Mutex<Vec<Value>>,
    /// Shiprocket: tokens it accepts.
    pub tokens: Mutex<Vec<String>>,
    pub logins: Mutex<u32>,
    /// Clickpost: book without a label (it comes later, from the label fetch).
    pub no_label: Mutex<bool>,
    /// Wait this long before answering a booking.
    pub delay: Mutex<std::time::Duration>,
    /// Clickpost: reference numbers booked, with their waybills (a repeat answers 323).
    pub placed: Mutex<HashMap<String, String>>,
}

#[derive(Clone)]
pub struct FakeCourier {
    pub addr: SocketAddr,
    pub state: Arc<CourierState>,
}

impl FakeCourier {
    pub async fn start() -> Self {
        let state = Arc::new(CourierState::default());
        let addr = crate::fakes::serve(axum::Router::new().fallback(handle).with_state(state.clone())).await;
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls_to(&self, path: &str) -> Vec<Call> {
        self.state.calls.lock().unwrap().iter().filter(|c| c.path == path).cloned().collect()
    }

    pub fn logins(&self) -> u32 {
        *self.state.logins.lock().unwrap()
    }

    /// Makes Shiprocket forget every token it issued (the next call answers 401).
    pub fn expire_tokens(&self) {
        self.state.tokens.lock().unwrap().clear();
    }
}

async fn handle(
    State(state): State<Arc<CourierState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query = uri.query().unwrap_or_default().to_string();
    let path = uri.path().to_string();
    state.calls.lock().unwrap().push(Call { path: path.clone(), query: query.clone(), body: body.clone() });
    let params: HashMap<String, String> =
        query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    match path.as_str() {
        // Clickpost.
        "/api/v3/create-order/" if method == Method::POST => {
            let delay = *state.delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            let reference = body["shipment_details"]["reference_number"].as_str().unwrap_or_default().to_string();
            let repeat = state.placed.lock().unwrap().get(&reference).cloned();
            if let Some(existing) = state.already_placed.lock().unwrap().take().or(repeat) {
                state.placed.lock().unwrap().insert(reference.clone(), existing.clone());
                // Like Clickpost: the existing waybill and label, and no courier at all.
                return Json(json!({ "meta": { "status": 323, "message": "You have already placed this order", "success": true },
                    "result": { "waybill": existing, "label": format!("https://labels.example/{existing}.pdf"),
                                "reference_number": reference, "security_key": "560fee51-1af3-4d1d-a6e8-0149b0868d38" } })).into_response();
            }
            state.placed.lock().unwrap().insert(reference.clone(), format!("WB-{reference}"));
            Json(json!({ "meta": { "status": 200, "message": "Order Placed Successfully", "success": true },
                "result": { "waybill": format!("WB-{reference}"), "courier_name": "Fedex", "courier_partner_id": 1,
                            "label": if *state.no_label.lock().unwrap() { String::new() } else { format!("https://labels.example/WB-{reference}.pdf") },
                            "reference_number": reference } }))
            .into_response()
        }
        // The order Clickpost holds under a reference number, in the shape of its documentation's
        // example (the courier partner's id, no courier name).
        "/api/v3/create-order/" if method == Method::GET => {
            let reference = params.get("reference_number").cloned().unwrap_or_default();
            match state.placed.lock().unwrap().get(&reference) {
                Some(waybill) => Json(json!({ "meta": { "status": 200, "message": "Success", "success": true },
                    "result": { "security_key": "560fee51-1af3-4d1d-a6e8-0149b0868d38", "courier_partner": 1,
                                "reference_number": reference, "label": format!("https://labels.example/{waybill}.pdf"),
                                "waybill": waybill } })).into_response(),
                None => Json(json!({ "meta": { "status": 400, "message": "Order not found", "success": false }, "result": null }))
                    .into_response(),
            }
        }
        "/api/v1/fetch/shippinglabel/" => {
            let waybill = params.get("waybill").cloned().unwrap_or_default();
            Json(json!({ "meta": { "status": 200, "message": "SUCCESS", "success": true },
                "result": { "shipping_label": format!("https://labels.example/{waybill}.pdf") } }))
            .into_response()
        }
        // Shiprocket.
        "/v1/external/auth/login" => {
            *state.logins.lock().unwrap() += 1;
            let token = format!("sr-token-{}", state.logins.lock().unwrap());
            state.tokens.lock().unwrap().push(token.clone());
            Json(json!({ "token": token, "email": body["email"] })).into_response()
        }
        p if p.starts_with("/v1/external/") => {
            let bearer = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .trim_start_matches("Bearer ")
                .to_string();
            if !state.tokens.lock().unwrap().contains(&bearer) {
                return (StatusCode::UNAUTHORIZED, Json(json!({ "message": "Unauthenticated." }))).into_response();
            }
            match p {
                "/v1/external/orders" => {
                    let search = params.get("search").cloned().unwrap_or_default();
                    let data: Vec<Value> = state.orders.lock().unwrap().iter()
                        .filter(|o| o["channel_order_id"].as_str().unwrap_or_default().contains(&search)).cloned().collect();
                    Json(json!({ "data": data })).into_response()
                }
                "/v1/external/courier/assign/awb" => Json(json!({ "awb_assign_status": 1, "response": { "data": {
                    "awb_code": format!("AWB-{}", body["shipment_id"]), "courier_name": "Amazon Surface",
                    "shipment_id": body["shipment_id"] } } })).into_response(),
                "/v1/external/courier/generate/label" => Json(json!({ "label_created": 1,
                    "label_url": format!("https://sr.example/label-{}.pdf", body["shipment_id"][0]), "not_created": [] })).into_response(),
                "/v1/external/orders/print/invoice" => Json(json!({ "is_invoice_created": true,
                    "invoice_url": format!("https://sr.example/invoice-{}.pdf", body["ids"][0]), "not_created": [] })).into_response(),
                _ => (StatusCode::NOT_FOUND, "unknown").into_response(),
            }
        }
        _ => (StatusCode::OK, "courier fake").into_response(),
    }
}
