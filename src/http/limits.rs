//! Admission: how much work the server takes on at once. A request is admitted only when a
//! request slot (`server.max_concurrent_requests`) and room for its body
//! (`server.max_buffered_body_bytes`) are both free; otherwise it is answered 503 with
//! `Retry-After` at once, its body unread. Room for a body is counted before the body is read —
//! its `Content-Length`, or `max_body_bytes` when it is sent in chunks — and held until the
//! answer, so however many callers send large bodies (signed or not: a webhook's signature can
//! only be checked on the whole body), at most that many bytes of them are in memory. A declared
//! length over `max_body_bytes` is answered 413 unread.
//!
//! `/healthz` is not counted: it must answer while the server is busy.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::config;

/// The shared counters every admitted request draws from.
pub struct Admission {
    requests: Arc<Semaphore>,
    /// One permit per byte of request body being held.
    body_bytes: Arc<Semaphore>,
    max_body_bytes: usize,
    max_buffered: usize,
}

impl Admission {
    pub fn new(s: &config::Server) -> Arc<Self> {
        // The configuration keeps the body budget within u32 (one acquire takes at most that many).
        let max_buffered = s.max_buffered_body_bytes.min(u32::MAX as usize);
        Arc::new(Self {
            requests: Arc::new(Semaphore::new(s.max_concurrent_requests)),
            body_bytes: Arc::new(Semaphore::new(max_buffered)),
            max_body_bytes: s.max_body_bytes,
            max_buffered,
        })
    }

    /// The bytes a request's body will take, before it is read.
    fn body_need(&self, headers: &HeaderMap) -> Need {
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        match declared {
            Some(n) if n > self.max_body_bytes as u64 => Need::TooLarge,
            Some(n) => Need::Bytes(n as usize),
            None if headers.contains_key(header::TRANSFER_ENCODING) => Need::Bytes(self.max_body_bytes),
            None => Need::Bytes(0),
        }
    }
}

enum Need {
    Bytes(usize),
    TooLarge,
}

/// The admission middleware (see the module docs).
pub async fn admit(State(a): State<Arc<Admission>>, req: Request, next: Next) -> Response {
    let Ok(_request) = a.requests.clone().try_acquire_owned() else {
        return busy("busy", "too many requests at once; try again shortly");
    };
    let need = match a.body_need(req.headers()) {
        Need::TooLarge => {
            metrics::counter!("channeld_http_refused_total", "reason" => "too_large").increment(1);
            let message = format!("the request body is over server.max_body_bytes ({} bytes)", a.max_body_bytes);
            return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
        }
        Need::Bytes(n) => n,
    };
    // `need` is at most max_body_bytes, which the configuration keeps within the budget and u32.
    let _body = match need {
        0 => None,
        n => match a.body_bytes.clone().try_acquire_many_owned(n as u32) {
            Ok(held) => Some(held),
            Err(_) => return busy("body_budget", "too many request bodies at once; try again shortly"),
        },
    };
    metrics::gauge!("channeld_http_body_bytes_held").set((a.max_buffered - a.body_bytes.available_permits()) as f64);
    let answer = next.run(req).await;
    drop(_body);
    metrics::gauge!("channeld_http_body_bytes_held").set((a.max_buffered - a.body_bytes.available_permits()) as f64);
    answer
}

fn busy(reason: &'static str, message: &'static str) -> Response {
    metrics::counter!("channeld_http_refused_total", "reason" => reason).increment(1);
    let mut answer = (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    answer
}
