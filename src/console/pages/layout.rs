//! The shell every page shares (head, navigation, the message of the last action, the logout
//! button), the small pieces pages are made of, the answers that are not a page of their own
//! (not found, forbidden, an error), and the style sheet.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};

use crate::console::auth::{encode, Operator};
use crate::console::Console;

/// The style sheet, compiled in: the console loads nothing from elsewhere.
const CSS: &str = include_str!("../console.css");

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Orders,
    Outbox,
    Inventory,
    Shipments,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Overview, "/", "Overview"),
    (Nav::Orders, "/orders", "Orders"),
    (Nav::Outbox, "/outbox", "Outbox"),
    (Nav::Inventory, "/inventory", "Inventory"),
    (Nav::Shipments, "/shipments", "Shipments"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · channeld" }
            link rel="stylesheet" href="/static/console.css";
        }
    }
}

/// A page of the console, for a logged-in operator.
pub fn page(title: &str, nav: Nav, op: &Operator, body: Markup) -> Response {
    page_with_status(StatusCode::OK, title, nav, op, body)
}

pub fn page_with_status(status: StatusCode, title: &str, nav: Nav, op: &Operator, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    span.brand { "channeld" }
                    nav {
                        @for (entry, href, label) in NAV {
                            a href=(href) class=[(entry == nav).then_some("current")] { (label) }
                        }
                    }
                    form.logout method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(op.csrf);
                        button type="submit" { "Log out" }
                    }
                }
                main {
                    @if let Some(message) = &op.flash {
                        p.flash role="status" { (message) }
                    }
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    (status, markup).into_response()
}

/// A page without the navigation (login, and refusals before a session exists).
pub fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main {
                    p.brand { "channeld" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    (status, markup).into_response()
}

pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], CSS).into_response()
}

pub async fn not_found() -> Response {
    bare(StatusCode::NOT_FOUND, "Not found", html! { p { "There is no such page. " a href="/" { "To the overview" } } })
}

/// A state-changing request without a valid CSRF token.
pub fn forbidden() -> Response {
    bare(
        StatusCode::FORBIDDEN,
        "Refused",
        html! {
            p { "This form expired, or it did not come from this console. Go back, reload the page and try again." }
            p { a href="/" { "To the overview" } }
        },
    )
}

/// What the store or a command answered instead of the page.
pub fn failed(op: &Operator, nav: Nav, status: StatusCode, message: &str) -> Response {
    let title = if status == StatusCode::NOT_FOUND { "Not found" } else { "Could not load this page" };
    page_with_status(status, title, nav, op, html! { p.error { (message) } })
}

/// After an action: the message for the next page, and back to `to`.
pub fn done(console: &Console, op: &Operator, message: String, to: &str) -> Response {
    console.auth.flash(&op.token, message);
    Redirect::to(to).into_response()
}

/// A path on this console to return to after an action, or `fallback` (never another site).
pub fn local_path(wanted: Option<&str>, fallback: &str) -> String {
    match wanted {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => fallback.to_string(),
    }
}

/// A one-button form posting to `action`, with the CSRF token and `fields`.
pub fn button(op: &Operator, action: &str, label: &str, fields: &[(&str, &str)]) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(op.csrf);
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" { (label) }
        }
    }
}

/// Links to a list filtered by each status (`?status=`), `all` first, the current one marked.
pub fn status_filters<'a>(path: &str, current: Option<&str>, statuses: impl IntoIterator<Item = &'a str>) -> Markup {
    html! {
        nav.filters {
            a href=(path) class=[current.is_none().then_some("current")] { "all" }
            @for s in statuses {
                a href={ (path) "?status=" (s) } class=[(current == Some(s)).then_some("current")] { (s) }
            }
        }
    }
}

/// A newest-first list's pager: back to the newest page when on an older one (`paged`), and on to
/// the page before cursor `next`, keeping the filter in `query` (`status=x&` or empty).
pub fn pager(path: &str, query: &str, paged: bool, next: Option<&str>) -> Markup {
    html! {
        nav.pager {
            @if paged { a href={ (path) "?" (query) } { "← Newest" } }
            @if let Some(next) = next { a href={ (path) "?" (query) "before=" (encode(next)) } { "Older →" } }
        }
    }
}

/// A status as a coloured label.
pub fn badge(text: &str) -> Markup {
    html! { span class={ "badge " (text) } { (text) } }
}

/// An RFC 3339 time as the console shows it: `2026-11-27 10:00:00 UTC`.
pub fn when(rfc3339: &str) -> String {
    match rfc3339.split_once('T') {
        Some((day, time)) => {
            let time = time.trim_end_matches('Z');
            let time = time.split_once('.').map_or(time, |(t, _)| t);
            format!("{day} {time} UTC")
        }
        None => rfc3339.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_console_are_returned_to() {
        assert_eq!(local_path(Some("/orders/7"), "/outbox"), "/orders/7");
        for bad in ["//evil.example/x", "https://evil.example", "/\\evil", "orders"] {
            assert_eq!(local_path(Some(bad), "/outbox"), "/outbox", "{bad}");
        }
        assert_eq!(local_path(None, "/outbox"), "/outbox");
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(when("2026-11-27T10:00:00.000Z"), "2026-11-27 10:00:00 UTC");
        assert_eq!(when(""), "");
    }
}
