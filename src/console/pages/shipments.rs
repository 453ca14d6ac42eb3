//! `/shipments`: shipments newest order first, a page at a time (optionally one tracking status,
//! through the status entries), with courier, AWB, booking, tracking status and last scan, label
//! and invoice links, and the courier's refusal when a booking failed.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::ask;
use super::layout::{badge, failed, page, pager, status_filters, when, Nav};
use crate::admin::shipments::ShipmentView;
use crate::admin::{Page, Request};
use crate::console::auth::Operator;
use crate::console::Console;
use crate::flows::tracking::ShipmentStatus;

const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    before: Option<String>,
}

pub async fn list(State(console): State<Arc<Console>>, op: Operator, Query(q): Query<ListQuery>) -> Response {
    let status = q.status.as_deref().and_then(ShipmentStatus::parse);
    let req = Request::ShipmentsList { status, before: q.before.clone(), limit: PAGE };
    match ask::<Page<ShipmentView>>(&console, req).await {
        Ok(shipments) => page("Shipments", Nav::Shipments, &op, render(&q, status, &shipments)),
        Err(e) => failed(&op, Nav::Shipments, StatusCode::BAD_REQUEST, &e),
    }
}

fn render(q: &ListQuery, status: Option<ShipmentStatus>, shipments: &Page<ShipmentView>) -> Markup {
    let status_param = status.map(|s| format!("status={}&", s.as_str())).unwrap_or_default();
    html! {
        (status_filters("/shipments", status.map(ShipmentStatus::as_str), ShipmentStatus::ALL.map(ShipmentStatus::as_str)))
        @if shipments.items.is_empty() {
            p { "No shipment here." }
        } @else {
            table.shipments {
                thead { tr { th { "Packed" } th { "Order" } th { "Shipment" } th { "Courier" } th { "Booking" } th { "Tracking" } th { "AWB" } th { "Label" } th { "Invoice" } } }
                tbody {
                    @for s in &shipments.items {
                        tr {
                            td.time { (when(&s.created)) }
                            td { a href={ "/orders/" (s.order_id) } { @if s.order_name.is_empty() { (s.order_id) } @else { (s.order_name) } } }
                            td { (s.shipment_id) }
                            td { (s.courier) @if !s.transporter.is_empty() { " / " (s.transporter) } }
                            td {
                                @match s.booking.split_once(": ") {
                                    Some((state, why)) => { (badge(state)) div.details { (why) } }
                                    None => { (badge(&s.booking)) }
                                }
                            }
                            td {
                                @if let Some(st) = s.status { (badge(st.as_str())) } @else { "–" }
                                @if let Some(last) = &s.last_event { div.details { (last) } }
                                @if !s.flags.is_empty() { div.details { (s.flags.join("; ")) } }
                            }
                            td { (s.awb) }
                            td { (link(&s.label_url, "label")) }
                            td { (link(&s.invoice_url, "invoice")) }
                        }
                    }
                }
            }
        }
        (pager("/shipments", &status_param, q.before.is_some(), shipments.next.as_deref()))
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
