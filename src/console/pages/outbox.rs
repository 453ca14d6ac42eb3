//! `/outbox`: dead letters with their last error (or, with `?all=1`, every queued call), a retry
//! for each, and "retry all" behind a confirmation page — `channeld outbox list` and
//! `outbox retry ID|--all-dead`.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{badge, button, done, failed, local_path, page, when, Nav};
use super::{act, ask};
use crate::admin::{EntryView, Page, Request};
use crate::console::auth::{encode, Operator};
use crate::console::Console;
use crate::store::OutboxCounts;

const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: Option<String>,
    #[serde(default)]
    after: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RetryIn {
    /// Where to go back to (the order's page, when retried from there).
    #[serde(default)]
    back: Option<String>,
}

pub async fn list(State(console): State<Arc<Console>>, op: Operator, Query(q): Query<ListQuery>) -> Response {
    let all = q.all.is_some();
    let req = Request::OutboxList { since_ms: None, after: q.after.clone(), limit: PAGE, dead_only: !all };
    match ask::<Page<EntryView>>(&console, req).await {
        Ok(entries) => page("Outbox", Nav::Outbox, &op, render(&op, all, &q, &entries)),
        Err(e) => failed(&op, Nav::Outbox, StatusCode::BAD_REQUEST, &e),
    }
}

fn render(op: &Operator, all: bool, q: &ListQuery, entries: &Page<EntryView>) -> Markup {
    let this = if all { "/outbox?all=1&" } else { "/outbox?" };
    html! {
        nav.filters {
            a href="/outbox" class=[(!all).then_some("current")] { "dead letters" }
            a href="/outbox?all=1" class=[all.then_some("current")] { "every queued call" }
        }
        @if !all {
            p { "Calls that will not be tried again by themselves: a refusal, or "
                code { "outbox.max_attempts" } " used. Retry one when its cause is fixed, or every one at once. "
                a href="/outbox/retry-all" { "Retry every dead letter…" } }
        }
        @if entries.items.is_empty() {
            p.ok { @if all { "Nothing is queued." } @else { "No dead letter." } }
        } @else {
            table.outbox {
                thead { tr { th { "Entry" } th { "Order" } th { "Call" } th { "State" } th.num { "Attempts" } th { "Queued" } th { "Next attempt" } th { "Last error" } th {} } }
                tbody {
                    @for e in &entries.items {
                        tr id={ "entry-" (e.id) } {
                            td { (e.id) }
                            td { a href={ "/orders/" (e.order_id) } { (e.order_id) } }
                            td { (e.call) }
                            td { (badge(&e.state)) }
                            td.num { (e.attempts) }
                            td.time { (when(&e.queued)) }
                            td.time { @if e.state == "pending" { (when(&e.next_attempt)) } }
                            td.details { (e.last_error.as_deref().unwrap_or("")) }
                            td { (button(op, &format!("/outbox/{}/retry", e.id), "Retry", &[])) }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if q.after.is_some() { a href=(this.trim_end_matches(['?', '&'])) { "← First" } }
            @if let Some(next) = &entries.next { a href={ (this) "after=" (encode(next)) } { "Next →" } }
        }
    }
}

pub async fn retry_one(
    State(console): State<Arc<Console>>,
    op: Operator,
    Path(id): Path<u64>,
    Form(f): Form<RetryIn>,
) -> Response {
    let message = act(&console, Request::OutboxRetry { seq: Some(id) }).await;
    done(&console, &op, message, &local_path(f.back.as_deref(), "/outbox"))
}

/// The confirmation step before replaying every dead letter.
pub async fn confirm_retry_all(State(console): State<Arc<Console>>, op: Operator) -> Response {
    let dead = match ask::<OutboxCounts>(&console, Request::OutboxCounts).await {
        Ok(counts) => counts.dead,
        Err(e) => return failed(&op, Nav::Outbox, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let body = html! {
        @if dead == 0 {
            p.ok { "No dead letter: nothing to retry." }
            p { a href="/outbox" { "Back to the outbox" } }
        } @else {
            p { "Put every dead letter — " b { (dead) " call(s)" } " — back in line now, each with a fresh attempt count? "
                "Each runs after the calls queued before it for its order." }
            div.actions {
                (button(&op, "/outbox/retry-all", &format!("Retry all {dead}"), &[]))
                " " a href="/outbox" { "Cancel" }
            }
        }
    };
    page("Retry every dead letter?", Nav::Outbox, &op, body)
}

pub async fn retry_all(State(console): State<Arc<Console>>, op: Operator) -> Response {
    let message = act(&console, Request::OutboxRetry { seq: None }).await;
    done(&console, &op, message, "/outbox")
}
