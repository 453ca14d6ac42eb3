//! The `returns` commands (CONTRACT.md §9.2) as the admin socket and the CLI run them, and the
//! views they print: a return with every unit, its location, QC result, reason, images and
//! disposition, the refunds and every flag; and an order's returns summed up for `orders show`.

use serde::{Deserialize, Serialize};

use super::{time, to_json, Page, Response};
use crate::app::App;
use crate::flows::returns::{ReturnRecord, ReturnStatus};

/// A return as `returns list` / `returns show` print it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReturnView {
    pub id: u64,
    pub name: String,
    pub order_id: u64,
    pub status: ReturnStatus,
    pub reasons: Vec<String>,
    pub flags: Vec<String>,
    /// Sent with units still awaiting QC for longer than `returns.stale_after_days`.
    pub stale: bool,
    pub wms_returns: Vec<WmsReturnView>,
    pub units: Vec<UnitView>,
    pub skipped: Vec<SkippedView>,
    pub tracking: Option<String>,
    pub refunds: Vec<String>,
    pub first_seen: String,
    pub changed: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WmsReturnView {
    pub return_order_code: String,
    pub location_code: String,
    pub sent: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitView {
    pub item_code: String,
    pub sku: String,
    pub location_code: String,
    pub reason: String,
    /// `pass`, `fail`, or `awaiting`.
    pub qc: String,
    pub qc_reason: Option<String>,
    pub image_urls: Vec<String>,
    /// What was done on Shopify: `restocked`, `not restocked`, or `pending`.
    pub disposition: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkippedView {
    pub return_line_item: u64,
    pub units: u32,
    pub reason: String,
}

/// An order's return in `orders show`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReturnSummary {
    pub id: u64,
    pub name: String,
    pub status: ReturnStatus,
    pub pass: usize,
    pub fail: usize,
    pub awaiting: usize,
    pub refunded: Vec<String>,
    pub flags: Vec<String>,
}

pub(super) fn list(app: &App, status: Option<ReturnStatus>, before: Option<&str>, limit: usize) -> Response {
    let before = match before {
        Some(c) => Some(c.trim().parse::<u64>().map_err(|_| format!("--before {c:?} is not a page cursor"))?),
        None => None,
    };
    let rows = app.store.returns_page(status, before, limit + 1).map_err(|e| e.to_string())?;
    let page = Page::of(rows, limit, |r| r.id.to_string());
    to_json(&Page { items: page.items.iter().map(|r| view(app, r)).collect::<Vec<_>>(), next: page.next })
}

pub(super) fn show(app: &App, which: &str) -> Response {
    match crate::services::returns::find(app, which).map_err(|e| e.to_string())? {
        Some(rec) => to_json(&view(app, &rec)),
        None => Err(format!("no return {which} is stored (a Shopify return id, #name or returnOrderCode)")),
    }
}

pub(super) fn release(app: &App, which: &str) -> Response {
    let rec = crate::services::returns::release(app, which).map_err(|e| e.to_string())?;
    Ok(serde_json::Value::String(format!("return {} released: it is sent to the WMS behind its order's calls", rec.id)))
}

pub(super) fn retry(app: &App, which: &str) -> Response {
    let n = crate::services::returns::retry(app, which).map_err(|e| e.to_string())?;
    Ok(serde_json::Value::String(format!("{n} call(s) of the return in line; each does only what is left")))
}

/// The returns of an order, summed up.
pub(super) fn summaries(returns: &[ReturnRecord]) -> Vec<ReturnSummary> {
    returns
        .iter()
        .map(|r| {
            let (pass, fail, awaiting) = r.qc_counts();
            ReturnSummary {
                id: r.id,
                name: r.name.clone(),
                status: r.status,
                pass,
                fail,
                awaiting,
                refunded: refunds(r),
                flags: r.flags.clone(),
            }
        })
        .collect()
}

fn refunds(r: &ReturnRecord) -> Vec<String> {
    r.refunds.iter().map(|(amount, currency)| format!("{amount} {currency}")).collect()
}

fn view(app: &App, r: &ReturnRecord) -> ReturnView {
    ReturnView {
        id: r.id,
        name: r.name.clone(),
        order_id: r.order_id,
        status: r.status,
        reasons: r.reasons.clone(),
        flags: r.flags.clone(),
        stale: r.is_stale(app.cfg.returns.stale_after_days, crate::app::now_ms()),
        wms_returns: r
            .wms
            .iter()
            .map(|w| WmsReturnView {
                return_order_code: w.code.clone(),
                location_code: w.location_code.clone(),
                sent: w.sent,
            })
            .collect(),
        units: r
            .units
            .iter()
            .map(|u| UnitView {
                item_code: u.item_code.clone(),
                sku: u.sku.clone(),
                location_code: u.location_code.clone(),
                reason: u.reason.clone(),
                qc: match &u.qc {
                    Some(q) if q.pass => "pass",
                    Some(_) => "fail",
                    None => "awaiting",
                }
                .into(),
                qc_reason: u.qc.as_ref().and_then(|q| q.reason.clone()),
                image_urls: u.qc.as_ref().map(|q| q.image_urls.clone()).unwrap_or_default(),
                disposition: match (&u.qc, u.processed) {
                    (Some(_), true) if r.is_rto() => "nothing on Shopify (return to origin)",
                    (Some(q), true) if q.pass && app.cfg.returns.restock => "restocked",
                    (Some(_), true) => "not restocked",
                    _ => "pending",
                }
                .into(),
            })
            .collect(),
        skipped: r
            .skipped
            .iter()
            .map(|s| SkippedView { return_line_item: s.return_line_id, units: s.quantity, reason: s.reason.clone() })
            .collect(),
        tracking: r.tracking.as_ref().map(|(n, c)| if c.is_empty() { n.clone() } else { format!("{n} ({c})") }),
        refunds: refunds(r),
        first_seen: time(r.first_seen_ms),
        changed: time(r.changed_ms),
    }
}
