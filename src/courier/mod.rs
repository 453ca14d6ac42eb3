//! Shipping aggregators (Clickpost, Shiprocket): one client module each, and the call metrics
//! they share.

pub mod clickpost;
pub mod shiprocket;

use crate::remote::CallError;

/// Counts and times one courier call (`channeld_courier_calls_total`, `channeld_courier_call_seconds`).
pub fn record_call<T>(courier: &'static str, started: std::time::Instant, result: &Result<T, CallError>) {
    let label = match result {
        Ok(_) => "ok",
        Err(CallError::Transient { .. }) => "transient",
        Err(CallError::Refused { .. }) => "refused",
        Err(CallError::Unauthorized { .. }) => "unauthorized",
    };
    metrics::counter!("channeld_courier_calls_total", "courier" => courier, "result" => label).increment(1);
    metrics::histogram!("channeld_courier_call_seconds", "courier" => courier).record(started.elapsed().as_secs_f64());
}
