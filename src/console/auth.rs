//! Who may use the console: one operator account (`console.username` / `console.password`),
//! sessions held in memory, and the CSRF token every state-changing request carries.
//!
//! - The password is never kept: only its HMAC-SHA-256 under a key drawn at start-up, and a login
//!   is checked by comparing such digests in constant time (the user name too, and both always,
//!   so neither a wrong user nor a wrong password answers sooner).
//! - A login is one at a time, and a wrong one from an address that failed before is answered
//!   only after a delay that doubles per failure (up to [`MAX_DELAY`]; the `/wms/*` refusals'
//!   rules): guessing costs time, and parallel guesses queue behind each other.
//! - A session is a random token in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` when the
//!   request came over https through a proxy); the server keeps only its digest, with the
//!   session's own CSRF token. Sessions end after [`IDLE`] unused or [`LIFETIME`] in all, at
//!   logout, and at a restart (they live in memory).
//! - Every POST is checked by [`require_csrf`] before any handler: its form must carry the
//!   session's token (`/login`: the token of the login cookie, double-submitted) or it is
//!   answered 403.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::Console;
use crate::config;
use crate::http::refusals::Refusals;

pub(super) const SESSION_COOKIE: &str = "channeld_session";
pub(super) const LOGIN_COOKIE: &str = "channeld_login";
/// A session unused this long ends.
const IDLE: Duration = Duration::from_secs(8 * 3600);
/// A session ends this long after its login, used or not.
const LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Sessions held at once; a login beyond ends the one unused the longest.
const MAX_SESSIONS: usize = 64;
/// The delay of a second wrong login from one address; it doubles per failure up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(8);

type Digest = [u8; 32];

/// The account, the sessions and the login throttle.
pub(super) struct Auth {
    /// Drawn at start-up: digests of the password and of session tokens are keyed with it.
    key: Digest,
    username: Digest,
    password: Digest,
    sessions: Mutex<HashMap<Digest, Session>>,
    refusals: Refusals,
    /// Logins are checked one at a time (a refused one holds it through its delay).
    gate: Semaphore,
}

struct Session {
    csrf: String,
    started: Instant,
    last_seen: Instant,
    /// A message for the next page shown (what the last action did).
    flash: Option<String>,
}

/// A random token, URL- and cookie-safe.
pub(super) fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Auth {
    pub(super) fn new(cfg: &config::Console) -> Self {
        let key: Digest = rand::random();
        Self {
            username: digest(&key, cfg.username.as_bytes()),
            password: digest(&key, cfg.password.expose().as_bytes()),
            key,
            sessions: Mutex::new(HashMap::new()),
            refusals: Refusals::new(FIRST_DELAY, MAX_DELAY),
            gate: Semaphore::new(1),
        }
    }

    /// Whether `username` / `password` are the account's. A refusal is logged and, when the
    /// address failed before, answered late.
    pub(super) async fn login(&self, peer: Option<IpAddr>, username: &str, password: &str) -> bool {
        // The semaphore is never closed, so acquiring only waits.
        let _one_at_a_time = self.gate.acquire().await.expect("the login gate is never closed");
        let user_ok = digest(&self.key, username.as_bytes()).ct_eq(&self.username);
        let password_ok = digest(&self.key, password.as_bytes()).ct_eq(&self.password);
        if bool::from(user_ok & password_ok) {
            return true;
        }
        let verdict = self.refusals.refused(peer, Instant::now());
        metrics::counter!("channeld_console_logins_refused_total").increment(1);
        if let Some(refused) = verdict.log {
            let peer = peer.map(|p| p.to_string()).unwrap_or_default();
            tracing::warn!(
                peer,
                refused,
                failures = verdict.failures,
                "console login refused (wrong user name or password)"
            );
        }
        tokio::time::sleep(verdict.delay).await;
        false
    }

    /// Starts a session; returns its token (for the cookie).
    pub(super) fn start(&self) -> String {
        let token = random_token();
        let now = Instant::now();
        let session = Session { csrf: random_token(), started: now, last_seen: now, flash: None };
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, s| alive(s, now));
            if sessions.len() >= MAX_SESSIONS {
                if let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k) {
                    sessions.remove(&oldest);
                }
            }
            sessions.insert(digest(&self.key, token.as_bytes()), session);
        }
        token
    }

    /// The CSRF token of the live session `token`, marking it used, and its pending message.
    fn visit(&self, token: &str) -> Option<(String, Option<String>)> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().ok()?;
        let key = digest(&self.key, token.as_bytes());
        match sessions.get_mut(&key) {
            Some(s) if alive(s, now) => {
                s.last_seen = now;
                Some((s.csrf.clone(), s.flash.take()))
            }
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// The CSRF token of the live session `token`, without marking it used.
    fn csrf_of(&self, token: &str) -> Option<String> {
        let sessions = self.sessions.lock().ok()?;
        sessions.get(&digest(&self.key, token.as_bytes())).filter(|s| alive(s, Instant::now())).map(|s| s.csrf.clone())
    }

    /// Leaves a message for the session's next page.
    pub(super) fn flash(&self, token: &str, message: String) {
        if let Ok(mut sessions) = self.sessions.lock() {
            if let Some(s) = sessions.get_mut(&digest(&self.key, token.as_bytes())) {
                s.flash = Some(message);
            }
        }
    }

    /// Whether the request carries a live session.
    pub(super) fn logged_in(&self, headers: &HeaderMap) -> bool {
        cookie(headers, SESSION_COOKIE).is_some_and(|t| self.csrf_of(t).is_some())
    }

    pub(super) fn end(&self, token: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(&digest(&self.key, token.as_bytes()));
        }
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_seen) < IDLE && now.duration_since(s.started) < LIFETIME
}

fn digest(key: &Digest, text: &[u8]) -> Digest {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text);
    mac.finalize().into_bytes().into()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// Whether the request came over https (through a proxy that says so): cookies are then `Secure`.
pub(super) fn over_https(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    text("x-forwarded-proto").split(',').next().is_some_and(|p| p.trim() == "https")
        || text("forwarded").split([';', ',']).any(|p| p.trim() == "proto=https")
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Secure` over https; an empty `value` with
/// `max_age` 0 removes the cookie.
pub(super) fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={}{secure}", max_age.as_secs())
}

/// The session cookie for a new session.
pub(super) fn session_cookie(token: &str, secure: bool) -> String {
    set_cookie(SESSION_COOKIE, token, "/", LIFETIME, secure)
}

/// The caller's address (the proxy's, behind one), when the server recorded it.
pub(super) struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}

/// A logged-in operator, for a page handler: the session's token, its CSRF token (for the page's
/// forms) and the message its last action left.
pub(super) struct Operator {
    pub token: String,
    pub csrf: String,
    pub flash: Option<String>,
}

/// No live session: browsers are sent to the login page (and back afterwards), other clients get
/// 401.
pub(super) struct LoginFirst {
    browser: bool,
    back_to: String,
}

impl IntoResponse for LoginFirst {
    fn into_response(self) -> Response {
        if self.browser {
            Redirect::to(&format!("/login?next={}", encode(&self.back_to))).into_response()
        } else {
            (StatusCode::UNAUTHORIZED, "401: log in to the console at /login first\n").into_response()
        }
    }
}

impl FromRequestParts<Arc<Console>> for Operator {
    type Rejection = LoginFirst;

    async fn from_request_parts(parts: &mut Parts, console: &Arc<Console>) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, SESSION_COOKIE).unwrap_or_default().to_string();
        match console.auth.visit(&token) {
            Some((csrf, flash)) => Ok(Operator { token, csrf, flash }),
            None => Err(LoginFirst {
                browser: wants_html(&parts.headers),
                back_to: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
            }),
        }
    }
}

/// A browser asks for HTML; scripts and monitoring probes do not.
fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

/// What [`encode`] leaves as it is: RFC 3986's unreserved characters, and `/` (paths read better).
const KEEP: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// Percent-encodes `text` for a query string value.
pub(super) fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

/// The value of field `name` in an `application/x-www-form-urlencoded` body.
pub(super) fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Why a form was refused by [`check_csrf`].
pub(super) enum CsrfRefusal {
    /// Larger than the console's forms ever are (413).
    TooLarge,
    /// No token, or not the right one (403).
    Invalid,
}

/// Checks that a state-changing request's form carries the right CSRF token: the session's, or on
/// `/login` the one of the login cookie. GET and HEAD pass as they are; a checked request comes back
/// with its body buffered. The console's middleware runs it before any handler, so no route can
/// forget it.
pub(super) async fn check_csrf(console: &Console, req: Request) -> Result<Request, CsrfRefusal> {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(req);
    }
    let expected = if req.uri().path() == "/login" {
        cookie(req.headers(), LOGIN_COOKIE).map(str::to_string)
    } else {
        cookie(req.headers(), SESSION_COOKIE).and_then(|t| console.auth.csrf_of(t))
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, super::MAX_FORM_BYTES).await else {
        return Err(CsrfRefusal::TooLarge);
    };
    let sent = form_field(&bytes, "csrf");
    let valid = match (expected, sent) {
        (Some(e), Some(s)) if !e.is_empty() => bool::from(e.as_bytes().ct_eq(s.as_bytes())),
        _ => false,
    };
    if !valid {
        tracing::warn!(path = parts.uri.path(), "console: a form without a valid CSRF token was refused");
        return Err(CsrfRefusal::Invalid);
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(password: &str) -> Auth {
        Auth::new(&config::Console {
            listen: "127.0.0.1:0".into(),
            username: "admin".into(),
            password: config::Secret::new(password),
        })
    }

    #[tokio::test]
    async fn only_the_account_logs_in_and_the_password_is_not_kept() {
        let a = auth("s3cret");
        assert!(a.login(None, "admin", "s3cret").await);
        assert!(!a.login(None, "admin", "S3cret").await);
        assert!(!a.login(None, "root", "s3cret").await);
        assert_ne!(&a.password[..], b"s3cret");
        assert_ne!(a.password, auth("s3cret").password, "keyed afresh at each start");
    }

    #[tokio::test]
    async fn sessions_carry_their_csrf_token_and_a_message_once_and_end_at_logout() {
        let a = auth("pw");
        let token = a.start();
        let (csrf, flash) = a.visit(&token).unwrap();
        assert!(csrf.len() >= 40 && flash.is_none());
        a.flash(&token, "done".into());
        assert_eq!(a.visit(&token).unwrap().1.as_deref(), Some("done"));
        assert_eq!(a.visit(&token).unwrap().1, None, "shown once");
        assert_eq!(a.csrf_of(&token), Some(csrf));
        assert!(a.visit("forged").is_none());
        a.end(&token);
        assert!(a.visit(&token).is_none());
        for _ in 0..(MAX_SESSIONS + 5) {
            a.start();
        }
        assert_eq!(a.sessions.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn cookies_forms_and_https_are_read_as_browsers_and_proxies_send_them() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; channeld_session=tok; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert!(!over_https(&h));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(over_https(&h));
        assert!(set_cookie("c", "v", "/", LIFETIME, true).ends_with("HttpOnly; SameSite=Strict; Max-Age=86400; Secure"));
        assert_eq!(form_field(b"sku=A%2FB+1&csrf=xyz", "sku").as_deref(), Some("A/B 1"));
        assert_eq!(form_field(b"sku=A&csrf=xyz", "csrf").as_deref(), Some("xyz"));
        assert_eq!(form_field(b"bad=%", "bad").as_deref(), Some("%"));
        assert_eq!(encode("/orders?status=rejected"), "/orders%3Fstatus%3Drejected");
    }
}
