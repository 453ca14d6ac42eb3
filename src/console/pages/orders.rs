//! `/orders` (search by id or `#name`, filter by status, newest first a page at a time through the
//! order-list index) and `/orders/{id}` (every reason and flag, the items, calls still queued with
//! a retry for dead ones, returns, shipments with their tracking status, and the timeline); `POST /orders/{id}/retry` is
//! `channeld orders retry`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{badge, button, done, failed, page, pager, status_filters, when, Nav};
use super::{act, ask};
use crate::admin::{OrderView, Page, Request};
use crate::console::auth::Operator;
use crate::console::Console;
use crate::flows::model::OrderStatus;

/// Orders per page.
const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    before: Option<String>,
}

pub async fn list(State(console): State<Arc<Console>>, op: Operator, Query(query): Query<ListQuery>) -> Response {
    let mut note = None;
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        match ask::<OrderView>(&console, Request::OrdersShow { id: q.to_string() }).await {
            Ok(found) => return Redirect::to(&format!("/orders/{}", found.id)).into_response(),
            Err(e) => note = Some(e),
        }
    }
    let status = query.status.as_deref().and_then(OrderStatus::parse);
    let req = Request::OrdersList { status, since_ms: None, before: query.before.clone(), limit: PAGE };
    match ask::<Page<OrderView>>(&console, req).await {
        Ok(orders) => page("Orders", Nav::Orders, &op, render_list(&query, status, &orders, note.as_deref())),
        Err(e) => failed(&op, Nav::Orders, StatusCode::BAD_REQUEST, &e),
    }
}

fn render_list(query: &ListQuery, status: Option<OrderStatus>, orders: &Page<OrderView>, note: Option<&str>) -> Markup {
    let status_param = status.map(|s| format!("status={}&", s.as_str())).unwrap_or_default();
    html! {
        form.search method="get" action="/orders" {
            label for="q" { "Order id or #name" }
            input #q type="search" name="q" value=[query.q.as_deref()] placeholder="#1001";
            button type="submit" { "Find" }
        }
        @if let Some(n) = note {
            p.error { (n) }
        }
        (status_filters("/orders", status.map(OrderStatus::as_str), OrderStatus::ALL.map(OrderStatus::as_str)))
        @if orders.items.is_empty() {
            p { "No order here." }
        } @else {
            table.orders {
                thead { tr { th { "Order" } th { "Id" } th { "Status" } th { "Location" } th { "First seen" } th { "Reasons and flags" } } }
                tbody {
                    @for o in &orders.items {
                        tr {
                            td { a href={ "/orders/" (o.id) } { (o.name) } }
                            td { a href={ "/orders/" (o.id) } { (o.id) } }
                            td { (badge(o.status.as_str())) }
                            td { (o.location_code.as_deref().unwrap_or("–")) }
                            td.time { (when(&o.first_seen)) }
                            td.details { (o.reasons.iter().chain(&o.flags).cloned().collect::<Vec<_>>().join("; ")) }
                        }
                    }
                }
            }
        }
        (pager("/orders", &status_param, query.before.is_some(), orders.next.as_deref()))
    }
}

pub async fn show(State(console): State<Arc<Console>>, op: Operator, Path(id): Path<String>) -> Response {
    match ask::<OrderView>(&console, Request::OrdersShow { id }).await {
        Ok(order) => {
            let title = format!("Order {}", order.name);
            page(&title, Nav::Orders, &op, render_order(&op, &order))
        }
        Err(e) => failed(&op, Nav::Orders, StatusCode::NOT_FOUND, &e),
    }
}

fn render_order(op: &Operator, o: &OrderView) -> Markup {
    let back = format!("/orders/{}", o.id);
    html! {
        dl.facts {
            dt { "Id" } dd { (o.id) }
            dt { "Status" } dd { (badge(o.status.as_str())) }
            dt { "At the WMS" } dd { (if o.wms_created { "yes" } else { "no" }) }
            dt { "Cancelled" } dd { (if o.cancelled { "yes" } else { "no" }) }
            dt { "Location" } dd { (o.location_code.as_deref().unwrap_or("–")) }
            dt { "First seen" } dd { (when(&o.first_seen)) }
            dt { "Changed" } dd { (when(&o.changed)) }
        }
        @if !o.reasons.is_empty() {
            section {
                h2 { "Reasons" }
                ul.reasons { @for r in &o.reasons { li { (r) } } }
            }
        }
        @if !o.flags.is_empty() {
            section {
                h2 { "Flags" }
                ul.flags { @for f in &o.flags { li { (f) } } }
            }
        }
        @if o.status == OrderStatus::Rejected {
            section.actions {
                p { "Fixed on Shopify since? Fetch the order again and run it through validation (" code { "channeld orders retry" } ")." }
                (button(op, &format!("/orders/{}/retry", o.id), "Fetch again and retry", &[]))
            }
        }
        @if !o.items.is_empty() {
            section {
                h2 { "Items" }
                table {
                    thead { tr { th { "SKU" } th { "orderItemCode" } th.num { "Quantity" } } }
                    tbody { @for i in &o.items { tr { td { (i.sku) } td { (i.order_item_code) } td.num { (i.quantity) } } } }
                }
            }
        }
        @if !o.outbox.is_empty() {
            section {
                h2 { "Calls queued" }
                table {
                    thead { tr { th { "Entry" } th { "Call" } th { "State" } th.num { "Attempts" } th { "Last error" } th {} } }
                    tbody {
                        @for e in &o.outbox {
                            tr {
                                td { (e.id) } td { (e.call) } td { (badge(&e.state)) } td.num { (e.attempts) }
                                td.details { (e.last_error.as_deref().unwrap_or("")) }
                                td { @if e.state == "dead" { (button(op, &format!("/outbox/{}/retry", e.id), "Retry", &[("back", &back)])) } }
                            }
                        }
                    }
                }
            }
        }
        @if !o.returns.is_empty() {
            section {
                h2 { "Returns" }
                ul { @for r in &o.returns {
                    li { (r.name) " " (badge(r.status.as_str())) " — " (r.pass) " passed QC, " (r.fail) " failed, " (r.awaiting) " awaiting" }
                } }
            }
        }
        @if !o.shipments.is_empty() {
            section {
                h2 { "Shipments" }
                ul { @for s in &o.shipments {
                    li {
                        (s.shipment_id) " " (s.courier) " AWB " (s.awb) " " (badge(&s.status))
                        @if let Some(last) = &s.last_event { " — " (last) }
                        @if !s.flags.is_empty() { " (" (s.flags.join("; ")) ")" }
                    }
                } }
            }
        }
        section {
            h2 { "Timeline" }
            ol.timeline {
                @for e in &o.timeline {
                    li class=(e.kind) { span.time { (when(&e.at)) } " " span.kind { (e.kind) } " " span.text { (e.text) } }
                }
            }
        }
    }
}

pub async fn retry(State(console): State<Arc<Console>>, op: Operator, Path(id): Path<String>) -> Response {
    let message = act(&console, Request::OrdersRetry { id: id.clone() }).await;
    let to = match id.trim().parse::<u64>() {
        Ok(n) => format!("/orders/{n}"),
        Err(_) => "/orders".to_string(),
    };
    done(&console, &op, message, &to)
}
