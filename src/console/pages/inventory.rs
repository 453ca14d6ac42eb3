//! `/inventory`: quarantined rows with Shopify's reason and a release for each, rows waiting for
//! the next push, and a resync behind a confirmation page — `channeld inventory status`,
//! `inventory release SKU` and `inventory resync`.

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{button, done, failed, page, Nav};
use super::{act, ask};
use crate::admin::{InventoryStatusView, Request};
use crate::console::auth::Operator;
use crate::console::Console;
use crate::flows::inventory::InventoryRow;

/// Pending rows shown at most (a full resync makes every row pending).
const SHOWN: usize = 500;

#[derive(Debug, Deserialize)]
pub struct ReleaseIn {
    #[serde(default)]
    sku: String,
}

pub async fn show(State(console): State<Arc<Console>>, op: Operator) -> Response {
    match ask::<InventoryStatusView>(&console, Request::InventoryStatus).await {
        Ok(v) => page("Inventory", Nav::Inventory, &op, render(&op, &v)),
        Err(e) => failed(&op, Nav::Inventory, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

fn render(op: &Operator, v: &InventoryStatusView) -> Markup {
    html! {
        p { (v.total_rows) " row(s) known (SKU × location). The push job sends what changed; "
            a href="/inventory/resync" { "resync every row…" } }
        section {
            h2 { "Quarantined (" (v.quarantined.len()) ")" }
            @if v.quarantined.is_empty() {
                p.ok { "No row is quarantined." }
            } @else {
                p { "Shopify refused these rows; they are not sent again until released (or their listing changes)." }
                table.quarantined {
                    thead { tr { th { "SKU" } th { "Location" } th { "Inventory item" } th.num { "Wanted" } th.num { "On Shopify" } th { "Shopify's reason" } th {} } }
                    tbody { @for r in &v.quarantined { (row(op, r, true)) } }
                }
            }
        }
        section {
            h2 { "Waiting for the next push (" (v.pending.len()) ")" }
            @if v.pending.is_empty() {
                p.ok { "Nothing waits." }
            } @else {
                table {
                    thead { tr { th { "SKU" } th { "Location" } th { "Inventory item" } th.num { "Wanted" } th.num { "On Shopify" } } }
                    tbody { @for r in v.pending.iter().take(SHOWN) { (row(op, r, false)) } }
                }
                @if v.pending.len() > SHOWN { p.hint { "…and " (v.pending.len() - SHOWN) " more (" code { "channeld inventory status" } " lists them all)." } }
            }
        }
    }
}

fn row(op: &Operator, r: &InventoryRow, quarantined: bool) -> Markup {
    html! {
        tr {
            td { (r.sku) }
            td { (r.location_code) " (" (r.location_id) ")" }
            td { (r.item_id) }
            td.num { (r.desired) }
            td.num { @match r.pushed { Some(n) => (n), None => "–" } }
            @if quarantined {
                td.details { (r.quarantine.as_deref().unwrap_or("")) }
                td { (button(op, "/inventory/release", "Release", &[("sku", &r.sku)])) }
            }
        }
    }
}

pub async fn release(State(console): State<Arc<Console>>, op: Operator, Form(f): Form<ReleaseIn>) -> Response {
    let message = act(&console, Request::InventoryRelease { sku: f.sku }).await;
    done(&console, &op, message, "/inventory")
}

pub async fn confirm_resync(op: Operator) -> Response {
    let body = html! {
        p { "Push every row's wanted quantity to Shopify again at the next run, whatever Shopify was last sent? "
            "Use it after stock was changed on Shopify by hand." }
        div.actions { (button(&op, "/inventory/resync", "Resync every row", &[])) " " a href="/inventory" { "Cancel" } }
    };
    page("Resync the inventory?", Nav::Inventory, &op, body)
}

pub async fn resync(State(console): State<Arc<Console>>, op: Operator) -> Response {
    let message = act(&console, Request::InventoryResync).await;
    done(&console, &op, message, "/inventory")
}
