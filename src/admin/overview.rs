//! The views that sum the store up for the console (also reachable over the admin socket): the
//! overview — orders by status now and as they changed over the last day and week, per-hour
//! activity, outbox and inventory counts, returns by status, jobs and alerts — and the recent
//! shipments page.
//!
//! Everything here reads counters and indexes: the order counters, the per-hour activity, the
//! shipments' time index. The outbox and inventory counts are full passes over trees that hold
//! work in progress (as the gauges make them), never over the orders.

use serde::{Deserialize, Serialize};

use super::{time, to_json, Page, Response};
use crate::app::{now_ms, App};
use crate::flows::model::OrderStatus;
use crate::flows::returns::ReturnStatus;
use crate::flows::shipment::{ShipmentRecord, ShipmentState};
use crate::store::{HourCounts, JobStatus, ShipmentCursor, StoreError};

const HOUR_MS: i64 = 3_600_000;
/// The span of the overview's hourly activity.
pub const WEEK_HOURS: i64 = 7 * 24;

/// How many orders have a status now, and how many entered it lately.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusCount {
    pub status: OrderStatus,
    pub now: usize,
    pub last_day: u64,
    pub last_week: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverviewView {
    /// When it was read (unix ms).
    pub at_ms: i64,
    pub orders: Vec<StatusCount>,
    /// Orders first seen in the last 24 hours and 7 days.
    pub received_day: u64,
    pub received_week: u64,
    /// The last 7 days, hour by hour (hours with nothing left out), oldest first.
    pub hours: Vec<HourCounts>,
    pub outbox_pending: usize,
    pub outbox_dead: usize,
    pub inventory_pending: usize,
    pub inventory_quarantined: usize,
    pub inventory_rows: usize,
    /// Returns by status, when returns are enabled.
    pub returns: Option<Vec<(ReturnStatus, usize)>>,
    pub jobs: Vec<(String, JobStatus)>,
    pub alerts: Vec<(String, JobStatus)>,
}

/// A shipment as the console lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipmentView {
    pub order_id: u64,
    pub order_name: String,
    pub shipment_id: u64,
    pub provider: String,
    /// `booking`, `booked` or `failed`.
    pub state: String,
    /// The courier's refusal, when it failed.
    pub failure: Option<String>,
    pub awb: String,
    pub transporter: String,
    pub label_url: String,
    /// The invoice: the courier's (Shiprocket), else the one the pack call sent.
    pub invoice_url: String,
    pub created: String,
    pub updated: String,
}

pub(super) fn overview(app: &App) -> Response {
    let err = |e: StoreError| e.to_string();
    let store = &app.store;
    let at_ms = now_ms();
    let hours = store.activity_hours(at_ms - WEEK_HOURS * HOUR_MS).map_err(err)?;
    let day_from = at_ms - 24 * HOUR_MS;
    let within = |from: i64, f: &dyn Fn(&HourCounts) -> u64| -> u64 {
        hours.iter().filter(|h| h.hour_ms + HOUR_MS > from).map(f).sum()
    };
    let orders = store
        .order_counts()
        .map_err(err)?
        .into_iter()
        .map(|(status, now)| StatusCount {
            status,
            now,
            last_day: within(day_from, &|h| h.entered(status)),
            last_week: within(0, &|h| h.entered(status)),
        })
        .collect();
    let outbox = store.outbox_counts().map_err(err)?;
    let rows = store.inventory_rows().map_err(err)?;
    to_json(&OverviewView {
        at_ms,
        orders,
        received_day: within(day_from, &|h| h.received),
        received_week: within(0, &|h| h.received),
        outbox_pending: outbox.pending,
        outbox_dead: outbox.dead,
        inventory_pending: rows.iter().filter(|r| r.is_pending()).count(),
        inventory_quarantined: rows.iter().filter(|r| r.quarantine.is_some()).count(),
        inventory_rows: rows.len(),
        returns: app.cfg.returns.enabled.then(|| returns_by_status(app)).transpose().map_err(err)?,
        jobs: store.job_statuses().map_err(err)?,
        alerts: store.alerts().map_err(err)?,
        hours,
    })
}

/// Returns by status (returns are few: one pass, as their gauge does).
fn returns_by_status(app: &App) -> Result<Vec<(ReturnStatus, usize)>, StoreError> {
    let mut counts = [0usize; ReturnStatus::ALL.len()];
    app.store.each_return(|r| {
        if let Some(i) = ReturnStatus::ALL.iter().position(|s| *s == r.status) {
            counts[i] += 1;
        }
        Ok(())
    })?;
    Ok(ReturnStatus::ALL.into_iter().zip(counts).collect())
}

pub(super) fn shipments(app: &App, before: Option<&str>, limit: usize) -> Response {
    let cursor = match before {
        Some(c) => Some(ShipmentCursor::parse(c).ok_or_else(|| format!("--before {c:?} is not a page cursor"))?),
        None => None,
    };
    let rows = app.store.recent_shipments(cursor, limit + 1).map_err(|e| e.to_string())?;
    let page = Page::of(rows, limit, |s| ShipmentCursor::of(s).to_string());
    to_json(&Page { items: page.items.iter().map(shipment_view).collect::<Vec<_>>(), next: page.next })
}

fn shipment_view(s: &ShipmentRecord) -> ShipmentView {
    let (state, failure) = match &s.state {
        ShipmentState::Booking => ("booking", None),
        ShipmentState::Booked => ("booked", None),
        ShipmentState::Failed(why) => ("failed", Some(why.clone())),
    };
    let invoice_url = match (&s.invoice_url, &s.invoice) {
        (url, _) if !url.is_empty() => url.clone(),
        (_, Some(i)) => i.url.clone(),
        _ => String::new(),
    };
    ShipmentView {
        order_id: s.order_id,
        order_name: s.order_name.clone(),
        shipment_id: s.shipment_id,
        provider: s.provider.clone(),
        state: state.into(),
        failure,
        awb: s.awb.clone(),
        transporter: s.transporter.clone(),
        label_url: s.label_url.clone(),
        invoice_url,
        created: time(s.created_ms),
        updated: time(s.updated_ms),
    }
}
