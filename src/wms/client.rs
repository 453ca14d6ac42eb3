//! The outbound WMS client (Increff Omni Standard API): Create Outward Order, Update Order
//! Properties, Customer Cancellation. Headers `authUsername`, `authPassword`, `authDomainName`.
//!
//! Creation and cancellation are replay-safe: a 4xx saying the order already exists
//! (`wms.already_exists_pattern`) or is already cancelled (`wms.already_cancelled_pattern`) means
//! the WMS has what we asked for, e.g. when our record of its earlier 200 was lost in a crash.
//! A cancellation is also sent for an order whose creation may not have arrived (its answer was
//! lost): a 4xx saying the WMS does not know the order (`wms.unknown_order_pattern`) means there
//! is nothing there to ship, which is what the cancellation asks for.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::config;
use crate::flows::wms_order::{CreateOutwardOrder, CustomerCancellation};
use crate::remote::{self, CallError};

/// Whether an answer's body contains `pattern` (already lower-case), ignoring case.
fn says(body: &str, pattern: &str) -> bool {
    body.to_lowercase().contains(pattern)
}

/// How a creation ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    /// A 4xx matching `wms.already_exists_pattern`: the WMS already has it (e.g. our record of its
    /// earlier 200 was lost in a crash). Counts as delivered.
    AlreadyExisted,
}

#[derive(Clone)]
pub struct WmsClient {
    /// Until when (unix ms) calls are not sent because the WMS refused our credentials: every
    /// call in that time (`wms.auth_pause_seconds`) is answered "unauthorized" without being sent,
    /// so a wrong password is not tried once per queued order.
    paused_until: Arc<AtomicI64>,
    auth_pause: Duration,
    http: reqwest::Client,
    base: String,
    username: String,
    password: config::Secret,
    domain: String,
    already_exists: String,
    already_cancelled: String,
    unknown_order: String,
}

impl WmsClient {
    pub fn new(cfg: &config::Wms) -> anyhow::Result<Self> {
        let http = crate::remote::http_client(cfg.timeout_seconds)?;
        Ok(Self {
            paused_until: Arc::new(AtomicI64::new(0)),
            auth_pause: Duration::from_secs(cfg.auth_pause_seconds),
            http,
            base: cfg.base_url.trim_end_matches('/').to_string(),
            username: cfg.auth_username.clone(),
            password: cfg.auth_password.clone(),
            domain: cfg.auth_domain.clone(),
            already_exists: cfg.already_exists_pattern.to_lowercase(),
            already_cancelled: cfg.already_cancelled_pattern.to_lowercase(),
            unknown_order: cfg.unknown_order_pattern.to_lowercase(),
        })
    }

    pub async fn create_order(&self, body: &CreateOutwardOrder) -> Result<Created, CallError> {
        let json = serde_json::to_vec(body).map_err(|e| CallError::Refused { message: e.to_string() })?;
        match self.send("create_order", Method::POST, "/orders/outward", json).await {
            Ok(()) => Ok(Created::New),
            Err((Some(status), text, _)) if status.is_client_error() && self.says_already_exists(&text) => {
                Ok(Created::AlreadyExisted)
            }
            Err((_, _, e)) => Err(e),
        }
    }

    /// Create Return Order (CONTRACT.md §9.7) with a body built earlier (resent unchanged); an
    /// answer that the WMS already has it counts as delivered.
    pub async fn create_return(&self, body: &str) -> Result<Created, CallError> {
        match self.send("create_return", Method::POST, "/return/return-orders", body.as_bytes().to_vec()).await {
            Ok(()) => Ok(Created::New),
            Err((Some(status), text, _)) if status.is_client_error() && self.says_already_exists(&text) => {
                Ok(Created::AlreadyExisted)
            }
            Err((_, _, e)) => Err(e),
        }
    }

    pub async fn update_order(&self, order_code: &str, body: &str) -> Result<(), CallError> {
        let path = format!("/orders/{order_code}");
        self.send("update_order", Method::PUT, &path, body.as_bytes().to_vec()).await.map_err(|(_, _, e)| e)
    }

    pub async fn cancel_order(&self, order_code: &str, body: &CustomerCancellation) -> Result<(), CallError> {
        let json = serde_json::to_vec(body).map_err(|e| CallError::Refused { message: e.to_string() })?;
        let path = format!("/orders/{order_code}/cancel");
        match self.send("cancel_order", Method::PUT, &path, json).await {
            Ok(()) => Ok(()),
            // Already cancelled at the WMS, or never there: what this call asks for is done.
            Err((Some(status), text, _))
                if status.is_client_error()
                    && (says(&text, &self.already_cancelled) || says(&text, &self.unknown_order)) =>
            {
                Ok(())
            }
            Err((_, _, e)) => Err(e),
        }
    }

    /// Any HTTP answer from the base URL: the WMS has no side-effect-free credential check (so
    /// this call carries none).
    pub async fn reachable(&self) -> Result<StatusCode, CallError> {
        self.http.get(&self.base).send().await.map(|r| r.status()).map_err(|e| remote::network("WMS", e))
    }

    fn says_already_exists(&self, body: &str) -> bool {
        says(body, &self.already_exists)
    }

    /// Sends one call; on failure also returns the status and body so callers can read them.
    async fn send(
        &self,
        call: &'static str,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(), (Option<StatusCode>, String, CallError)> {
        let now = chrono::Utc::now().timestamp_millis();
        if now < self.paused_until.load(Ordering::Acquire) {
            let message = "the WMS refused channeld's credentials a moment ago: WMS work is paused".to_string();
            return Err((None, String::new(), CallError::Unauthorized { message }));
        }
        let started = Instant::now();
        let result = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authUsername", &self.username)
            .header("authPassword", self.password.expose())
            .header("authDomainName", &self.domain)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await;
        let secrets = [self.password.expose()];
        let outcome = match result {
            Err(e) => Err((None, String::new(), remote::network("WMS", e).without_secrets(&secrets))),
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let text = resp.text().await.unwrap_or_default();
                let err = remote::classify("WMS", status, &headers, &text).without_secrets(&secrets);
                Err((Some(status), text, err))
            }
        };
        if let Err((_, _, CallError::Unauthorized { message })) = &outcome {
            self.paused_until.store(now + self.auth_pause.as_millis() as i64, Ordering::Release);
            tracing::error!(reason = %message, pause_seconds = self.auth_pause.as_secs(), "the WMS refused channeld's credentials (wms.auth_username / auth_password / auth_domain): WMS work is paused until fixed (see channeld doctor)");
            metrics::counter!("channeld_wms_auth_failures_total").increment(1);
        }
        let label = match &outcome {
            Ok(()) => "ok",
            Err((_, _, CallError::Transient { .. })) => "transient",
            Err((_, _, CallError::Unauthorized { .. })) => "unauthorized",
            Err(_) => "refused",
        };
        metrics::counter!("channeld_wms_calls_total", "call" => call, "result" => label).increment(1);
        metrics::histogram!("channeld_wms_call_seconds", "call" => call).record(started.elapsed().as_secs_f64());
        outcome
    }
}
