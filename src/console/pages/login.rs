//! `/login` and `/logout`. The login form double-submits a token of its own (a cookie and a
//! hidden field): a login is a state change too, so another site cannot log a browser in.

use std::sync::Arc;

use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{bare, local_path};
use crate::console::auth::{
    cookie, over_https, random_token, session_cookie, set_cookie, Operator, Peer, LOGIN_COOKIE, SESSION_COOKIE,
};
use crate::console::Console;

/// How long a login form stays usable.
const FORM_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginIn {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn form(State(console): State<Arc<Console>>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let next = local_path(q.next.as_deref(), "/");
    if console.auth.logged_in(&headers) {
        return Redirect::to(&next).into_response();
    }
    login_page(StatusCode::OK, &headers, &next, None)
}

pub async fn submit(
    State(console): State<Arc<Console>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(f): Form<LoginIn>,
) -> Response {
    let next = local_path(f.next.as_deref(), "/");
    if !console.auth.login(peer, &f.username, &f.password).await {
        return login_page(StatusCode::UNAUTHORIZED, &headers, &next, Some("Wrong user name or password."));
    }
    let secure = over_https(&headers);
    let token = console.auth.start();
    let mut answer = Redirect::to(&next).into_response();
    let cookies = answer.headers_mut();
    for value in [session_cookie(&token, secure), set_cookie(LOGIN_COOKIE, "", "/login", Duration::ZERO, secure)] {
        if let Ok(v) = value.parse() {
            cookies.append(header::SET_COOKIE, v);
        }
    }
    answer
}

pub async fn logout(State(console): State<Arc<Console>>, headers: HeaderMap, op: Operator) -> Response {
    console.auth.end(&op.token);
    let gone = set_cookie(SESSION_COOKIE, "", "/", Duration::ZERO, over_https(&headers));
    ([(header::SET_COOKIE, gone)], Redirect::to("/login")).into_response()
}

/// The login page, with this browser's form token (kept while its cookie lives).
fn login_page(status: StatusCode, headers: &HeaderMap, next: &str, error: Option<&str>) -> Response {
    let token = cookie(headers, LOGIN_COOKIE).filter(|t| t.len() >= 40).map_or_else(random_token, str::to_string);
    let set = set_cookie(LOGIN_COOKIE, &token, "/login", FORM_LIFETIME, over_https(headers));
    let mut answer = bare(status, "Log in", form_markup(&token, next, error));
    if let Ok(v) = set.parse() {
        answer.headers_mut().append(header::SET_COOKIE, v);
    }
    answer
}

fn form_markup(token: &str, next: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
        form.login method="post" action="/login" {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="next" value=(next);
            label for="username" { "User name" }
            input #username type="text" name="username" autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            button type="submit" { "Log in" }
        }
        p.hint { "The account is console.username / console.password in channeld's configuration." }
    }
}
