//! The views that sum the store up for the console (also reachable over the admin socket): the
//! overview — orders by status now and as they changed over the last day and week, per-hour
//! activity, outbox and inventory counts, returns by status, jobs and alerts.
//!
//! Everything here reads counters and indexes: the order counters, the per-hour activity. The outbox and inventory counts are full passes over trees that hold
//! work in progress (as the gauges make them), never over the orders.

use serde::{Deserialize, Serialize};

use super::{to_json, Response};
use crate::app::{now_ms, App};
use crate::flows::model::OrderStatus;
use crate::flows::returns::ReturnStatus;
use crate::store::{HourCounts, JobStatus, StoreError, HOUR_MS};

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
        returns: app
            .cfg
            .returns
            .enabled
            .then(|| store.return_counts(app.cfg.returns.stale_after_days, at_ms).map(|(by_status, _)| by_status))
            .transpose()
            .map_err(err)?,
        jobs: store.job_statuses().map_err(err)?,
        alerts: store.alerts().map_err(err)?,
        hours,
    })
}
