//! Shipping aggregators (Clickpost, Shiprocket): one client module each, and the call metrics
//! they share.

pub mod clickpost;
pub mod shiprocket;

use crate::remote::CallError;

/// Sends one courier request and reads its JSON answer, counting and timing the call.
pub async fn send(
    courier: &'static str,
    party: &str,
    req: reqwest::RequestBuilder,
) -> Result<serde_json::Value, CallError> {
    let started = std::time::Instant::now();
    let result = match req.send().await {
        Ok(resp) => crate::remote::read_json(party, resp).await,
        Err(e) => Err(crate::remote::network(party, e)),
    };
    record_call(courier, started, &result);
    result
}

/// Counts and times one courier call (`channeld_courier_calls_total`, `channeld_courier_call_seconds`).
fn record_call<T>(courier: &'static str, started: std::time::Instant, result: &Result<T, CallError>) {
    let label = match result {
        Ok(_) => "ok",
        Err(CallError::Transient { .. }) => "transient",
        Err(CallError::Refused { .. }) => "refused",
        Err(CallError::Unauthorized { .. }) => "unauthorized",
    };
    metrics::counter!("channeld_courier_calls_total", "courier" => courier, "result" => label).increment(1);
    metrics::histogram!("channeld_courier_call_seconds", "courier" => courier).record(started.elapsed().as_secs_f64());
}

/// The two aggregators' clients, built once from the configuration.
pub struct Couriers {
    pub clickpost: clickpost::ClickpostClient,
    pub shiprocket: shiprocket::ShiprocketClient,
}

impl Couriers {
    pub fn new(cfg: &crate::config::Config) -> anyhow::Result<Self> {
        Ok(Self {
            clickpost: clickpost::ClickpostClient::new(&cfg.clickpost)?,
            shiprocket: shiprocket::ShiprocketClient::new(&cfg.shiprocket)?,
        })
    }
}
