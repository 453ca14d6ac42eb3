//! Shiprocket. Shiprocket pulls orders from Shopify itself and its order creation is not
//! idempotent, so channeld never creates orders there: it finds the order Shiprocket pulled
//! (exact `channel_order_id`), assigns an AWB, and asks for the label and the invoice.
//!
//! Logging in gives a bearer token valid for 10 days: it is cached (the caller persists it in
//! the store), renewed a day early, and once more when Shiprocket answers 401.

use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::config;
use crate::lenient::value_text as text;
use crate::remote::{self, CallError};

/// Tokens last 10 days; renew after 9.
const TOKEN_LIFE_MS: i64 = 9 * 24 * 3600 * 1000;

/// An order as Shiprocket has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrOrder {
    pub order_id: String,
    pub shipment_id: String,
    pub status: String,
    pub awb: String,
    pub courier: String,
}

pub struct ShiprocketClient {
    http: reqwest::Client,
    base: String,
    email: String,
    password: config::Secret,
    courier_id: u32,
    /// (token, obtained at unix ms).
    token: Mutex<Option<(config::Secret, i64)>>,
}

impl ShiprocketClient {
    pub fn new(cfg: &config::Shiprocket) -> anyhow::Result<Self> {
        let http = crate::remote::http_client(30)?;
        Ok(Self {
            http,
            base: cfg.base_url.trim_end_matches('/').to_string(),
            email: cfg.email.clone(),
            password: cfg.password.clone(),
            courier_id: cfg.courier_id,
            token: Mutex::new(None),
        })
    }

    /// Seeds the token cache of a new client (from the store).
    pub fn seed_token(&self, token: config::Secret, obtained_ms: i64) {
        if let Ok(mut cached) = self.token.try_lock() {
            *cached = Some((token, obtained_ms));
        }
    }

    /// The cached token, to persist.
    pub async fn token_snapshot(&self) -> Option<(config::Secret, i64)> {
        self.token.lock().await.clone()
    }

    /// Logs in; returns the bearer token.
    pub async fn login(&self) -> Result<config::Secret, CallError> {
        let req = self.http.post(format!("{}/v1/external/auth/login", self.base));
        let answer = send(
            req.json(&json!({ "email": self.email, "password": self.password.expose() })),
            &[self.password.expose()],
        )
        .await
        .map_err(|e| match e {
            CallError::Refused { message } => CallError::Unauthorized { message },
            other => other,
        })?;
        match answer["token"].as_str().filter(|t| !t.is_empty()) {
            Some(t) => Ok(config::Secret::new(t)),
            None => Err(CallError::Unauthorized { message: "Shiprocket login answered without a token".into() }),
        }
    }

    async fn fresh_token(&self, force: bool) -> Result<config::Secret, CallError> {
        let mut cached = self.token.lock().await;
        let now = chrono::Utc::now().timestamp_millis();
        if let Some((token, at)) = cached.as_ref() {
            if !force && now - at < TOKEN_LIFE_MS {
                return Ok(token.clone());
            }
        }
        let token = self.login().await?;
        metrics::counter!("channeld_shiprocket_logins_total").increment(1);
        *cached = Some((token.clone(), now));
        Ok(token)
    }

    /// Sends an authenticated request; on 401 logs in again once and repeats it.
    async fn authed(&self, build: impl Fn(&str) -> reqwest::RequestBuilder) -> Result<Value, CallError> {
        let token = self.fresh_token(false).await?;
        match send(build(token.expose()), &[token.expose(), self.password.expose()]).await {
            Err(CallError::Unauthorized { .. }) => {
                let token = self.fresh_token(true).await?;
                send(build(token.expose()), &[token.expose(), self.password.expose()]).await
            }
            other => other,
        }
    }

    /// The order Shiprocket pulled from Shopify, matched exactly on `channel_order_id` (the
    /// Shopify order name without `#`, or the order id). A cancelled order is a refusal.
    pub async fn find_order(&self, name: &str, order_id: u64) -> Result<SrOrder, CallError> {
        let wanted = [name.trim_start_matches('#').to_string(), order_id.to_string()];
        for search in &wanted {
            let url = format!("{}/v1/external/orders", self.base);
            let answer = self.authed(|t| self.http.get(&url).bearer_auth(t).query(&[("search", search)])).await?;
            let found = answer["data"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| wanted.contains(&text(&o["channel_order_id"])));
            if let Some(o) = found {
                let shipment = o["shipments"].as_array().and_then(|s| s.first()).cloned().unwrap_or(Value::Null);
                let order = SrOrder {
                    order_id: text(&o["id"]),
                    shipment_id: [text(&shipment["id"]), text(&o["shipment_id"])]
                        .into_iter()
                        .find(|s| !s.is_empty())
                        .unwrap_or_default(),
                    status: text(&o["status"]),
                    awb: [text(&shipment["awb"]), text(&o["awb_code"])]
                        .into_iter()
                        .find(|s| !s.is_empty())
                        .unwrap_or_default(),
                    courier: [text(&shipment["courier"]), text(&o["courier_name"])]
                        .into_iter()
                        .find(|s| !s.is_empty())
                        .unwrap_or_default(),
                };
                if order.status.to_uppercase().contains("CANCEL") {
                    return Err(CallError::Refused { message: format!("the order is {} at Shiprocket", order.status) });
                }
                return Ok(order);
            }
        }
        Err(CallError::transient(format!("Shiprocket has not pulled order {name} from Shopify yet")))
    }

    /// Assigns an AWB; returns (awb, courier). An AWB assigned before (e.g. before a crash) is
    /// read back from the order.
    pub async fn assign_awb(&self, order: &SrOrder, name: &str, order_id: u64) -> Result<(String, String), CallError> {
        let mut body = json!({ "shipment_id": number_or_text(&order.shipment_id) });
        if self.courier_id > 0 {
            body["courier_id"] = json!(self.courier_id);
        }
        let url = format!("{}/v1/external/courier/assign/awb", self.base);
        match self.authed(|t| self.http.post(&url).bearer_auth(t).json(&body)).await {
            Ok(answer)
                if answer["awb_assign_status"].as_u64() == Some(1) || text(&answer["awb_assign_status"]) == "1" =>
            {
                let data = &answer["response"]["data"];
                Ok((text(&data["awb_code"]), text(&data["courier_name"])))
            }
            Ok(answer) => Err(CallError::Refused {
                message: format!("Shiprocket did not assign an AWB: {}", remote::summarize(&answer.to_string())),
            }),
            Err(CallError::Refused { message }) => {
                let again = self.find_order(name, order_id).await?;
                if again.awb.is_empty() {
                    Err(CallError::Refused { message })
                } else {
                    Ok((again.awb, again.courier))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The label URL, or `None` when Shiprocket has not made it yet.
    pub async fn generate_label(&self, shipment_id: &str) -> Result<Option<String>, CallError> {
        let url = format!("{}/v1/external/courier/generate/label", self.base);
        let body = json!({ "shipment_id": [number_or_text(shipment_id)] });
        let answer = self.authed(|t| self.http.post(&url).bearer_auth(t).json(&body)).await?;
        let created = answer["label_created"].as_u64() == Some(1) || text(&answer["label_created"]) == "1";
        Ok(created.then(|| text(&answer["label_url"])).filter(|u| !u.is_empty()))
    }

    /// The invoice URL, or `None` when Shiprocket has not made it yet.
    pub async fn print_invoice(&self, order_id: &str) -> Result<Option<String>, CallError> {
        let url = format!("{}/v1/external/orders/print/invoice", self.base);
        let body = json!({ "ids": [number_or_text(order_id)] });
        let answer = self.authed(|t| self.http.post(&url).bearer_auth(t).json(&body)).await?;
        let created =
            answer["is_invoice_created"].as_bool() == Some(true) || text(&answer["is_invoice_created"]) == "1";
        Ok(created.then(|| text(&answer["invoice_url"])).filter(|u| !u.is_empty()))
    }
}

async fn send(req: reqwest::RequestBuilder, secrets: &[&str]) -> Result<Value, CallError> {
    super::send("shiprocket", "Shiprocket", req).await.map_err(|e| e.without_secrets(secrets))
}

/// Ids go back as numbers when they are numeric.
fn number_or_text(s: &str) -> Value {
    s.parse::<u64>().map_or_else(|_| json!(s), |n| json!(n))
}
