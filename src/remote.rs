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
    resp.json().await.map_err(|e| network(party, e))
}

/// A network-level failure (connect, timeout, reading the body): always transient.
///
/// This is the one place reqwest errors become messages. reqwest writes the request's URL into
/// its error text (`... for url (http://host/path?key=...)`) and Clickpost's API key rides in that
/// query string, so the URL is taken out at the source ([`reqwest::Error::without_url`]); the
/// causes below it (connection refused, timed out, ...) are kept, and the whole text is redacted
/// once more in case a cause repeats the address.
pub fn network(party: &str, e: reqwest::Error) -> CallError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not be reached"
    } else {
        "failed"
    };
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    CallError::transient(format!("{party} {what}: {}", redact_urls(&text)))
}

impl CallError {
    /// The same error with every occurrence of these secrets (API keys, passwords, tokens) in
    /// its message replaced: a remote party may echo a credential back in an error body.
    pub fn without_secrets(self, secrets: &[&str]) -> Self {
        let scrub = |m: String| scrub(&m, secrets);
        match self {
            CallError::Transient { message, retry_after } => {
                CallError::Transient { message: scrub(message), retry_after }
            }
            CallError::Refused { message } => CallError::Refused { message: scrub(message) },
            CallError::Unauthorized { message } => CallError::Unauthorized { message: scrub(message) },
        }
    }
}

/// `msg` with every occurrence of a non-empty secret replaced by `[redacted]`.
pub fn scrub(msg: &str, secrets: &[&str]) -> String {
    secrets.iter().filter(|s| !s.is_empty()).fold(msg.to_string(), |m, s| m.replace(s, "[redacted]"))
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

/// Removes query strings and user info from every URL in a message (they may carry API keys),
/// wherever the URL starts: reqwest writes them as `(http://...)`, others quote them.
pub fn redact_urls(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(start) = find_url(rest) {
        out.push_str(&rest[..start]);
        let url_len = rest[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '(' | '"' | '\'' | '<' | '>' | ',' | ';'))
            .unwrap_or(rest.len() - start);
        out.push_str(&redact_url(&rest[start..start + url_len]));
        rest = &rest[start + url_len..];
    }
    out.push_str(rest);
    out
}

/// Where the next `http://` or `https://` (any case) begins.
fn find_url(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    [lower.find("http://"), lower.find("https://")].into_iter().flatten().min()
}

fn redact_url(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = url.split_at(scheme_end);
    // `user:password@host`: the part before an `@` in the authority is a credential.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => format!("[redacted]@{}", &rest[at + 1..]),
        None => rest.to_string(),
    };
    match rest.find(['?', '#']) {
        Some(q) => format!("{scheme}{}?[redacted]", &rest[..q]),
        None => format!("{scheme}{rest}"),
    }
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
        // reqwest's own form: the URL in parentheses, not at the start of a word.
        assert_eq!(
            redact_urls("error sending request for url (http://127.0.0.1:9/api/v3/create-order/?username=u&key=abc)"),
            "error sending request for url (http://127.0.0.1:9/api/v3/create-order/?[redacted])"
        );
        assert_eq!(redact_urls("see \"HTTPS://a.b/c#key=abc\"."), "see \"HTTPS://a.b/c?[redacted]\".");
        assert_eq!(redact_urls("at https://user:pw@host/x?k=1"), "at https://[redacted]@host/x?[redacted]");
        assert_eq!(redact_urls("no url here"), "no url here");
    }

    #[test]
    fn secrets_are_scrubbed_from_every_kind_of_error() {
        let e = CallError::Refused { message: "Clickpost answered 400: invalid key cp-secret-1".into() };
        assert_eq!(
            e.without_secrets(&["cp-secret-1", ""]).to_string(),
            "Clickpost answered 400: invalid key [redacted]"
        );
        let e = CallError::transient("token tok-9 expired");
        assert_eq!(e.without_secrets(&["tok-9"]).to_string(), "token [redacted] expired");
    }
}
