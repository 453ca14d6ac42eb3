//! The operator console (CONTRACT.md §4.4, README "Console"): server-rendered pages on a listener
//! of its own (`console.listen`, never the webhook listener), always behind a login.
//!
//! It owns no operation: every page and every button runs an admin request through
//! [`admin::execute`](crate::admin::execute), exactly what `channeld orders`, `outbox` and
//! `inventory` run over the admin socket, so the console and the CLI cannot disagree. Handlers
//! read the request, make that one call, and render what it answered.
//!
//! - `auth`: the login, sessions (an `HttpOnly`, `SameSite=Strict` cookie) and the CSRF token
//!   every state-changing request must carry (a layer: a POST without it is 403 before any
//!   handler runs);
//! - `pages`: one file per page, and the shell they share; `chart`: the server-rendered SVG
//!   charts (pure); `console.css`: the only style sheet, compiled into the binary.
//!
//! No page loads anything from elsewhere and none needs JavaScript: forms and links only. Every
//! answer carries a Content-Security-Policy that allows this origin's style sheet and nothing
//! else, and `Cache-Control: no-store` (the pages show personal data).

mod auth;
mod chart;
mod pages;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::Config;
use crate::http::ConnLimits;

/// Forms are small: a body larger than this is refused (413).
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Connections the console keeps open at once: a few operators' browsers.
const MAX_CONNECTIONS: usize = 64;
/// From request head to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every console handler shares.
pub struct Console {
    pub app: Arc<App>,
    auth: auth::Auth,
}

/// Binds `console.listen`, or says once why there is no console (naming the key to set) and
/// returns `None`.
pub async fn bind(cfg: &Config) -> anyhow::Result<Option<TcpListener>> {
    if let Some(why) = cfg.console.off_because() {
        tracing::info!(
            "the operator console is off ({why}); set console.password (CHANNELD_CONSOLE__PASSWORD) and console.listen to serve it"
        );
        return Ok(None);
    }
    let listener = TcpListener::bind(&cfg.console.listen)
        .await
        .with_context(|| format!("could not listen on {} (console.listen)", cfg.console.listen))?;
    Ok(Some(listener))
}

/// Serves the console on `listener` until `stop` resolves.
pub async fn serve(app: Arc<App>, listener: TcpListener, stop: impl Future<Output = ()>) {
    // The webhook listener's timeouts, and room for a few operators' browsers.
    let limits = ConnLimits { max_connections: MAX_CONNECTIONS, ..ConnLimits::from(&app.cfg.server) };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listen = %addr, "the operator console is serving");
    }
    crate::http::serve(listener, router(app), limits, stop).await;
}

/// Every route of the console. Only `/login` and the style sheet answer without a session.
pub fn router(app: Arc<App>) -> Router {
    let console = Arc::new(Console { auth: auth::Auth::new(&app.cfg.console), app });
    Router::new()
        .route("/", get(pages::overview::show))
        .route("/orders", get(pages::orders::list))
        .route("/orders/{id}", get(pages::orders::show))
        .route("/orders/{id}/retry", post(pages::orders::retry))
        .route("/outbox", get(pages::outbox::list))
        .route("/outbox/{id}/retry", post(pages::outbox::retry_one))
        .route("/outbox/retry-all", get(pages::outbox::confirm_retry_all).post(pages::outbox::retry_all))
        .route("/inventory", get(pages::inventory::show))
        .route("/inventory/release", post(pages::inventory::release))
        .route("/inventory/resync", get(pages::inventory::confirm_resync).post(pages::inventory::resync))
        .route("/shipments", get(pages::shipments::list))
        .route("/login", get(pages::login::form).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/static/console.css", get(pages::layout::stylesheet))
        .fallback(pages::layout::not_found)
        .layer(middleware::from_fn_with_state(console.clone(), require_csrf))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn(protect))
        .with_state(console)
}

/// Refuses (403) every state-changing request whose form does not carry the right CSRF token
/// ([`auth::check_csrf`]), before any handler runs.
async fn require_csrf(State(console): State<Arc<Console>>, req: Request, next: Next) -> Response {
    match auth::check_csrf(&console, req).await {
        Ok(req) => next.run(req).await,
        Err(auth::CsrfRefusal::TooLarge) => {
            (axum::http::StatusCode::PAYLOAD_TOO_LARGE, "the form is too large\n").into_response()
        }
        Err(auth::CsrfRefusal::Invalid) => pages::layout::forbidden(),
    }
}

/// The headers every console answer carries: nothing from elsewhere may load, no other site may
/// frame it, nothing is cached (personal data), and no referrer leaves it.
async fn protect(req: Request, next: Next) -> Response {
    let mut answer = next.run(req).await;
    let h = answer.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
         base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    answer
}
