//! `/shipments`: recent bookings, newest first a page at a time through the shipments' time
//! index, with AWB, courier, label and invoice links, and the courier's refusal when one failed.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::ask;
use super::layout::{badge, failed, page, when, Nav};
use crate::admin::overview::ShipmentView;
use crate::admin::{Page, Request};
use crate::console::auth::{encode, Operator};
use crate::console::Console;

const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    before: Option<String>,
}

pub async fn list(State(console): State<Arc<Console>>, op: Operator, Query(q): Query<ListQuery>) -> Response {
    let req = Request::ShipmentsList { before: q.before.clone(), limit: PAGE };
    match ask::<Page<ShipmentView>>(&console, req).await {
        Ok(shipments) => page("Shipments", Nav::Shipments, &op, render(&q, &shipments)),
        Err(e) => failed(&op, Nav::Shipments, StatusCode::BAD_REQUEST, &e),
    }
}

fn render(q: &ListQuery, shipments: &Page<ShipmentView>) -> Markup {
    html! {
        @if shipments.items.is_empty() {
            p { "No shipment yet." }
        } @else {
            table.shipments {
                thead { tr { th { "Packed" } th { "Order" } th { "Shipment" } th { "Courier" } th { "State" } th { "AWB" } th { "Label" } th { "Invoice" } } }
                tbody {
                    @for s in &shipments.items {
                        tr {
                            td.time { (when(&s.created)) }
                            td { a href={ "/orders/" (s.order_id) } { @if s.order_name.is_empty() { (s.order_id) } @else { (s.order_name) } } }
                            td { (s.shipment_id) }
                            td { (s.provider) @if !s.transporter.is_empty() { " / " (s.transporter) } }
                            td {
                                (badge(&s.state))
                                @if let Some(why) = &s.failure { div.details { (why) } }
                            }
                            td { (s.awb) }
                            td { (link(&s.label_url, "label")) }
                            td { (link(&s.invoice_url, "invoice")) }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if q.before.is_some() { a href="/shipments" { "← Newest" } }
            @if let Some(next) = &shipments.next { a href={ "/shipments?before=" (encode(next)) } { "Older →" } }
        }
    }
}

/// A link to a courier's document (opened as is: the console loads nothing from it).
fn link(url: &str, text: &str) -> Markup {
    html! {
        @if url.starts_with("https://") || url.starts_with("http://") {
            a href=(url) rel="noreferrer noopener" target="_blank" { (text) }
        } @else if url.is_empty() {
            "–"
        } @else {
            (url)
        }
    }
}
