//! How an outbound call ended, shared by every client (WMS, Shopify, couriers) so the outbox can
//! decide between retrying, pausing and dead-lettering without knowing which party it spoke to.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::flows::retry::parse_retry_after;

/// The HTTP client every outbound party uses: a whole-call timeout, a connect timeout, and a
/// user agent naming channeld and its version.
pub fn http_client(timeout_seconds: u64) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_seconds.max(1)))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("channeld/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Worth trying again: network error, timeout, 429, 5xx, or the API's own "try again".
    #[error("{message}")]
    Transient { message: String, retry_after: Option<Duration> },
    /// The other side refused; retrying the same request will not help.
    #[error("{message}")]
    Refused { message: String },
    /// Our credentials were refused: pause the work (and alert) instead of dead-lettering it.
    #[error("{message}")]
    Unauthorized { message: String },
}

impl CallError {
    pub fn transient(message: impl Into<String>) -> Self {
        CallError::Transient { message: message.into(), retry_after: None }
    }
}

/// Classifies a non-success HTTP answer.
pub fn classify(party: &str, status: StatusCode, headers: &HeaderMap, body: &str) -> CallError {
    let message = format!("{party} answered {status}: {}", summarize(body));
    if status == StatusCode::UNAUTHORIZED {
        return CallError::Unauthorized { message };
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        return CallError::Transient { message, retry_after };
    }
    CallError::Refused { message }
}

/// The JSON body of a successful answer; any other answer classified as a [`CallError`].
pub async fn read_json(party: &str, resp: reqwest::Response) -> Result<serde_json::Value, CallError> {
    if !resp.status().is_success() {
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap_or_default();
        return Err(classify(party, status, &headers, &text));
    }
    resp.json().await.map_err(|e| network(party, &e))
}

/// A network-level failure (connect, timeout, reading the body): always transient.
pub fn network(party: &str, e: &reqwest::Error) -> CallError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not be reached"
    } else {
        "failed"
    };
    // reqwest's message can carry the URL; ours never carry credentials in URLs except
    // Clickpost's query key, so strip queries before showing it.
    CallError::transient(format!("{party} {what}: {}", redact_urls(&e.to_string())))
}

/// The readable part of an error body: `errorMessage`, `message` or `description` when it is
/// JSON, else the text, cut to 300 characters.
pub fn summarize(body: &str) -> String {
    let picked = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| {
        let parts: Vec<String> = ["errorMessage", "message", "description"]
            .iter()
            .filter_map(|k| v.get(*k).and_then(|m| m.as_str()).map(str::to_string))
            .filter(|m| !m.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(": "))
    });
    let text = picked.unwrap_or_else(|| body.trim().to_string());
    let mut cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// Removes query strings from URLs in a message (they may carry API keys).
pub fn redact_urls(msg: &str) -> String {
    msg.split(' ')
        .map(|w| match (w.starts_with("http"), w.find('?')) {
            (true, Some(q)) => format!("{}?[redacted]", &w[..q]),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let h = HeaderMap::new();
        assert!(matches!(classify("WMS", StatusCode::BAD_GATEWAY, &h, ""), CallError::Transient { .. }));
        assert!(matches!(classify("WMS", StatusCode::UNAUTHORIZED, &h, ""), CallError::Unauthorized { .. }));
        let refused = classify(
            "WMS",
            StatusCode::BAD_REQUEST,
            &h,
            r#"{"code":"BAD_DATA","message":"Input validation failed","description":"[channelSkuCode: may not be null]"}"#,
        );
        assert_eq!(
            refused.to_string(),
            "WMS answered 400 Bad Request: Input validation failed: [channelSkuCode: may not be null]"
        );
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            classify("WMS", StatusCode::TOO_MANY_REQUESTS, &h, ""),
            CallError::Transient {
                message: "WMS answered 429 Too Many Requests: ".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn urls_lose_their_query() {
        assert_eq!(redact_urls("error for http://x/api?key=abc now"), "error for http://x/api?[redacted] now");
    }
}
