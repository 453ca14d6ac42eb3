//! A thin GraphQL Admin API client: one endpoint, a pinned API version, cost-based pacing.
//!
//! Shopify meters GraphQL by query cost: a bucket of `maximumAvailable` points refilling at
//! `restoreRate` per second, reported in `extensions.cost.throttleStatus` on every answer. The
//! client keeps that estimate, waits before a call that would overdraw it, and on `THROTTLED` (or
//! HTTP 429) waits for the refill and sends again: throttling slows work down, it never fails it.
//!
//! Other top-level `errors` are transient (Shopify's `INTERNAL_SERVER_ERROR`, timeouts, an
//! unavailable service: the outbox retries them) unless they clearly refuse the request as sent
//! ([`is_refusal`]): access denied, an inactive shop, a query too costly or not valid. A refusal
//! of the variables' values alone ([`is_input_error`], e.g. a number too large for `Int`) is told
//! apart for callers that can send other values ([`GraphqlClient::run_input`]).

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::queries::Document;
use super::token::TokenSource;
use crate::remote::{self, CallError};

/// How many times one request waits out `THROTTLED` or 429 before the caller is told to retry later.
const MAX_THROTTLE_WAITS: u32 = 60;

#[derive(Clone)]
pub struct GraphqlClient {
    http: reqwest::Client,
    base: String,
    endpoint: String,
    token: TokenSource,
    budget: std::sync::Arc<Mutex<Budget>>,
}

/// The local estimate of Shopify's cost bucket.
#[derive(Debug, Clone)]
pub struct Budget {
    pub available: f64,
    pub maximum: f64,
    pub restore_rate: f64,
    pub at: Instant,
}

impl Budget {
    fn unknown() -> Self {
        // Until Shopify tells us, assume the standard bucket.
        Self { available: 1000.0, maximum: 1000.0, restore_rate: 50.0, at: Instant::now() }
    }

    /// Points available now, counting the refill since the last report.
    fn now_available(&self, now: Instant) -> f64 {
        (self.available + self.restore_rate * now.duration_since(self.at).as_secs_f64()).min(self.maximum)
    }

    /// How long to wait until `cost` points are available, then reserve them.
    fn reserve(&mut self, cost: f64, now: Instant) -> Duration {
        let avail = self.now_available(now);
        let wait = if avail >= cost || self.restore_rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((cost - avail) / self.restore_rate)
        };
        self.available = avail - cost;
        self.at = now;
        wait
    }

    fn observe(&mut self, status: &ThrottleStatus, now: Instant) {
        self.available = status.currently_available;
        self.maximum = status.maximum_available;
        self.restore_rate = status.restore_rate;
        self.at = now;
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThrottleStatus {
    maximum_available: f64,
    currently_available: f64,
    restore_rate: f64,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    data: Option<Value>,
    #[serde(default)]
    errors: Vec<GqlError>,
    #[serde(default)]
    extensions: Option<Extensions>,
}

#[derive(Debug, Deserialize)]
struct Extensions {
    cost: Option<Cost>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cost {
    #[serde(default)]
    requested_query_cost: Option<f64>,
    throttle_status: Option<ThrottleStatus>,
}

#[derive(Debug, Deserialize)]
struct GqlError {
    #[serde(default)]
    message: String,
    /// Where in the document the error is: present on parse and validation errors.
    #[serde(default)]
    locations: Option<Value>,
    #[serde(default)]
    extensions: Option<Value>,
}

impl GqlError {
    fn code(&self) -> &str {
        self.extensions.as_ref().and_then(|e| e.get("code")).and_then(Value::as_str).unwrap_or("")
    }
}

/// Top-level error codes that refuse the request as sent: sending it again unchanged cannot
/// help. From Shopify's documented codes (`ACCESS_DENIED`: a missing scope; `SHOP_INACTIVE`;
/// `MAX_COST_EXCEEDED`: the query costs more than a single query may) and the codes GraphQL
/// servers use for a request that is not valid.
const REFUSAL_CODES: &[&str] = &[
    "ACCESS_DENIED",
    "SHOP_INACTIVE",
    "MAX_COST_EXCEEDED",
    "BAD_REQUEST",
    "BAD_USER_INPUT",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
];

/// Whether a top-level error refuses the request (dead letter) rather than failing this attempt
/// (retry). Refusals: a code of [`REFUSAL_CODES`]; a static-validation code (graphql-ruby, which
/// Shopify runs, writes those in camelCase: `undefinedField`, `missingRequiredArguments`, ...);
/// no code but a location in the document (a parse or validation error). Everything else
/// (`INTERNAL_SERVER_ERROR`, `SERVICE_UNAVAILABLE`, `TIMEOUT`, an unknown code) is transient.
fn is_refusal(e: &GqlError) -> bool {
    let code = e.code();
    if code.is_empty() {
        return e.locations.as_ref().is_some_and(|l| l.as_array().is_some_and(|a| !a.is_empty()));
    }
    REFUSAL_CODES.contains(&code) || code.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Whether a top-level error refuses only the values given to the document's variables (graphql-ruby,
/// which Shopify runs: `Variable $input of type ...! was provided invalid value for
/// quantities.3.quantity (Could not coerce value 3000000000 to Int)`, with the offending paths in
/// `extensions.problems`), not the document or the caller.
fn is_input_error(e: &GqlError) -> bool {
    let problems = e.extensions.as_ref().is_some_and(|x| x.get("problems").is_some());
    problems
        || matches!(e.code(), "INVALID_VARIABLE" | "BAD_USER_INPUT")
        || e.message.contains("was provided invalid value")
}

/// How a request failed, for callers that can do something about refused input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Shopify refused the values of the variables ([`is_input_error`]): nothing was executed,
    /// and other values may pass. The message is Shopify's.
    Input(String),
    Call(CallError),
}

impl From<Failure> for CallError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Input(message) => CallError::Refused { message },
            Failure::Call(e) => e,
        }
    }
}

impl GraphqlClient {
    pub fn new(http: reqwest::Client, base: &str, api_version: &str, token: TokenSource) -> Self {
        Self {
            http,
            base: base.to_string(),
            endpoint: format!("{base}/admin/api/{api_version}/graphql.json"),
            token,
            budget: std::sync::Arc::new(Mutex::new(Budget::unknown())),
        }
    }

    /// Runs `doc` with `variables` and decodes `data` into `T`.
    pub async fn run<T: DeserializeOwned>(&self, doc: &Document, variables: Value) -> Result<T, CallError> {
        Ok(self.run_input(doc, variables).await?)
    }

    /// [`Self::run`], telling a refusal of the variables' values ([`Failure::Input`]) apart.
    pub async fn run_input<T: DeserializeOwned>(&self, doc: &Document, variables: Value) -> Result<T, Failure> {
        let data = self.run_value(doc, variables).await?;
        serde_json::from_value(data).map_err(|e| {
            Failure::Call(CallError::Refused { message: format!("Shopify {}: unexpected answer: {e}", doc.name) })
        })
    }

    async fn run_value(&self, doc: &Document, variables: Value) -> Result<Value, Failure> {
        let body = json!({ "query": doc.text, "variables": variables });
        let mut cost = f64::from(doc.cost);
        for _ in 0..MAX_THROTTLE_WAITS {
            let wait = self.budget.lock().await.reserve(cost, Instant::now());
            if !wait.is_zero() {
                metrics::counter!("channeld_shopify_throttle_waits_total").increment(1);
                tokio::time::sleep(wait).await;
            }
            let started = Instant::now();
            let result = self.post(&body).await;
            metrics::histogram!("channeld_shopify_call_seconds").record(started.elapsed().as_secs_f64());
            let envelope = match result {
                Ok(env) => env,
                Err(Attempt::Throttled(after)) => {
                    metrics::counter!("channeld_shopify_calls_total", "result" => "throttled").increment(1);
                    tokio::time::sleep(after).await;
                    continue;
                }
                Err(Attempt::Failed(e)) => {
                    record("error", &e);
                    return Err(Failure::Call(e));
                }
            };
            let cost_info = envelope.extensions.as_ref().and_then(|e| e.cost.as_ref());
            if let Some(requested) = cost_info.and_then(|c| c.requested_query_cost) {
                cost = requested;
            }
            if let Some(status) = cost_info.and_then(|c| c.throttle_status.as_ref()) {
                self.budget.lock().await.observe(status, Instant::now());
            }
            if envelope.errors.iter().any(|e| e.code() == "THROTTLED") {
                metrics::counter!("channeld_shopify_calls_total", "result" => "throttled").increment(1);
                continue; // the next reserve() waits for the refill
            }
            if !envelope.errors.is_empty() {
                let err = top_level_error(doc, &envelope.errors);
                record(if matches!(err, CallError::Refused { .. }) { "refused" } else { "error" }, &err);
                return Err(match err {
                    CallError::Refused { message } if envelope.errors.iter().all(is_input_error) => {
                        Failure::Input(message)
                    }
                    err => Failure::Call(err),
                });
            }
            metrics::counter!("channeld_shopify_calls_total", "result" => "ok").increment(1);
            return Ok(envelope.data.unwrap_or(Value::Null));
        }
        Err(Failure::Call(CallError::transient(format!("Shopify {}: still throttled after waiting", doc.name))))
    }

    /// A GET on the REST Admin API (only `access_scopes.json` needs it), with the same token.
    pub async fn rest_get(&self, path: &str) -> Result<Value, CallError> {
        let token = self.token.token().await?;
        let url = format!("{}{path}", self.base);
        let result = match self.http.get(url).header("X-Shopify-Access-Token", token.expose()).send().await {
            Ok(resp) => remote::read_json("Shopify", resp).await,
            Err(e) => Err(remote::network("Shopify", e)),
        };
        result.map_err(|e| e.without_secrets(&[token.expose()]))
    }

    async fn post(&self, body: &Value) -> Result<Envelope, Attempt> {
        let token = self.token.token().await.map_err(Attempt::Failed)?;
        self.post_with(body, token.expose()).await.map_err(|a| match a {
            Attempt::Failed(e) => Attempt::Failed(e.without_secrets(&[token.expose()])),
            throttled => throttled,
        })
    }

    async fn post_with(&self, body: &Value, token: &str) -> Result<Envelope, Attempt> {
        let resp = self
            .http
            .post(&self.endpoint)
            .header("X-Shopify-Access-Token", token)
            .json(body)
            .send()
            .await
            .map_err(|e| Attempt::Failed(remote::network("Shopify", e)))?;
        let status = resp.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| crate::flows::retry::parse_retry_after(v, chrono::Utc::now()))
                .unwrap_or(Duration::from_secs(1));
            return Err(Attempt::Throttled(after));
        }
        if !status.is_success() {
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            if status == reqwest::StatusCode::UNAUTHORIZED {
                self.token.invalidate().await;
            }
            return Err(Attempt::Failed(remote::classify("Shopify", status, &headers, &text)));
        }
        let mut envelope = resp.json::<Envelope>().await.map_err(|e| Attempt::Failed(remote::network("Shopify", e)))?;
        // Top-level errors become call errors: they never carry the token, whatever they say.
        for e in &mut envelope.errors {
            e.message = remote::scrub(&e.message, &[token]);
        }
        Ok(envelope)
    }
}

/// The call's failure for these top-level errors: a refusal when any of them refuses the
/// request, else transient (the outbox tries again).
fn top_level_error(doc: &Document, errors: &[GqlError]) -> CallError {
    let described: Vec<String> = errors
        .iter()
        .map(|e| match e.code() {
            "" => e.message.clone(),
            code => format!("{} ({code})", e.message),
        })
        .collect();
    let message = format!("Shopify {}: {}", doc.name, described.join("; "));
    if errors.iter().any(is_refusal) {
        CallError::Refused { message }
    } else {
        CallError::transient(message)
    }
}

/// One HTTP exchange that did not give an envelope.
enum Attempt {
    /// HTTP 429: wait this long and send again.
    Throttled(Duration),
    Failed(CallError),
}

fn record(result: &'static str, e: &CallError) {
    if let CallError::Unauthorized { message } = e {
        tracing::error!(reason = %message, "Shopify refused channeld's credentials: Shopify work is paused until fixed (see channeld doctor)");
        metrics::counter!("channeld_shopify_auth_failures_total").increment(1);
    }
    metrics::counter!("channeld_shopify_calls_total", "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_waits_for_refill() {
        let t0 = Instant::now();
        let mut b = Budget { available: 100.0, maximum: 1000.0, restore_rate: 50.0, at: t0 };
        assert_eq!(b.reserve(80.0, t0), Duration::ZERO);
        // 20 left; 120 more needs 100 points = 2 s of refill.
        assert_eq!(b.reserve(120.0, t0), Duration::from_secs(2));
        b.observe(&ThrottleStatus { maximum_available: 1000.0, currently_available: 0.0, restore_rate: 100.0 }, t0);
        assert_eq!(b.reserve(50.0, t0 + Duration::from_millis(500)), Duration::ZERO);
    }

    fn errors(json: Value) -> Vec<GqlError> {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn server_side_top_level_errors_are_transient_refusals_are_not() {
        let doc = &super::super::queries::ORDER;
        for code in ["INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT", "SOMETHING_NEW"] {
            let e = errors(json!([{ "message": "Internal error. Looks like something went wrong on our end.",
                "extensions": { "code": code, "requestId": "1b355a21" } }]));
            assert!(matches!(top_level_error(doc, &e), CallError::Transient { .. }), "{code}");
        }
        assert!(matches!(
            top_level_error(doc, &errors(json!([{ "message": "Request timed out" }]))),
            CallError::Transient { .. }
        ));
        for code in ["ACCESS_DENIED", "SHOP_INACTIVE", "MAX_COST_EXCEEDED", "undefinedField"] {
            let e = errors(json!([{ "message": "no", "extensions": { "code": code } }]));
            match top_level_error(doc, &e) {
                CallError::Refused { message } => assert!(message.contains(code), "{message}"),
                other => panic!("{code}: {other:?}"),
            }
        }
        let parse = errors(json!([{ "message": "Parse error on \"}\"", "locations": [{ "line": 1, "column": 9 }] }]));
        assert!(matches!(top_level_error(doc, &parse), CallError::Refused { .. }));
        // A value the variables' types cannot take refuses that input, and only that.
        let coerce = errors(
            json!([{ "message": "Variable $input of type InventorySetQuantitiesInput! was provided invalid value for quantities.1.quantity (Could not coerce value 3000000000 to Int)",
            "locations": [{ "line": 1, "column": 33 }],
            "extensions": { "value": {}, "problems": [{ "path": ["quantities", 1, "quantity"], "explanation": "Could not coerce value 3000000000 to Int" }] } }]),
        );
        assert!(matches!(top_level_error(doc, &coerce), CallError::Refused { .. }));
        assert!(coerce.iter().all(is_input_error));
        let denied = errors(json!([{ "message": "Access denied", "extensions": { "code": "ACCESS_DENIED" } }]));
        assert!(!denied.iter().any(is_input_error), "a refusal of the caller is not about the input");
        // One refusal among transient errors refuses the request.
        let mixed = errors(json!([{ "message": "a", "extensions": { "code": "INTERNAL_SERVER_ERROR" } },
            { "message": "b", "extensions": { "code": "ACCESS_DENIED" } }]));
        assert!(matches!(top_level_error(doc, &mixed), CallError::Refused { .. }));
    }
}
