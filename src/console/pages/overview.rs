//! `/`: is channeld well — readiness and alerts, each job's last run, orders by status now and
//! lately, what waits in the outbox and the inventory, returns, and two charts of the last week:
//! orders received, sent and rejected per hour, and how long webhooks took to be acknowledged.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::ask;
use super::layout::{badge, failed, page, Nav};
use crate::admin::overview::{OverviewView, WEEK_HOURS};
use crate::admin::Request;
use crate::console::auth::Operator;
use crate::console::chart::{hourly, Series};
use crate::console::Console;
use crate::flows::model::OrderStatus;
use crate::store::{hour_of, HOUR_MS};
use crate::telemetry::LatencyHour;

pub async fn show(State(console): State<Arc<Console>>, op: Operator) -> Response {
    let view: OverviewView = match ask(&console, Request::Overview).await {
        Ok(v) => v,
        Err(e) => return failed(&op, Nav::Overview, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    // Readiness asks the filesystem for its free space: a blocking thread.
    let app = console.app.clone();
    let ready = tokio::task::spawn_blocking(move || app.readiness())
        .await
        .unwrap_or_else(|_| Err("the readiness check failed".into()));
    let first_hour = hour_of(view.at_ms) - (WEEK_HOURS - 1) * HOUR_MS;
    let latency = console.app.ack_latency.hours(first_hour);
    let returns_on = console.app.cfg.returns.enabled;
    page("Overview", Nav::Overview, &op, render(&view, ready, first_hour, &latency, returns_on))
}

fn render(
    v: &OverviewView,
    ready: Result<(), String>,
    first_hour: i64,
    latency: &[LatencyHour],
    returns: bool,
) -> Markup {
    html! {
        section.health {
            @match &ready {
                Ok(()) => p.ok { "Ready: serving, every worker running, the store can write." },
                Err(why) => p.error { "Not ready: " (why) },
            }
            @for (name, alert) in &v.alerts {
                p.error { "Alert " b { (name) } ": " (alert.summary) }
            }
        }
        section.cards {
            (card("Orders received", &format!("{} in 24 h", v.received_day), &format!("{} in 7 days", v.received_week), "/orders"))
            (card("Outbox", &format!("{} pending", v.outbox_pending), &format!("{} dead", v.outbox_dead), "/outbox"))
            (card("Inventory", &format!("{} pending", v.inventory_pending), &format!("{} quarantined", v.inventory_quarantined), "/inventory"))
        }
        section {
            h2 { "Orders by status" }
            table {
                thead { tr { th { "Status" } th.num { "Now" } th.num { "Entered in 24 h" } th.num { "Entered in 7 days" } } }
                tbody {
                    @for s in &v.orders {
                        tr {
                            td { a href={ "/orders?status=" (s.status.as_str()) } { (badge(s.status.as_str())) } }
                            td.num { (s.now) } td.num { (s.last_day) } td.num { (s.last_week) }
                        }
                    }
                }
            }
        }
        (orders_chart(v, first_hour))
        (latency_chart(latency, first_hour))
        @if returns {
            section {
                h2 { "Returns by status" }
                table {
                    tbody {
                        @for (status, n) in v.returns.iter().flatten() {
                            tr { td { (badge(status.as_str())) } td.num { (n) } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Jobs" }
            @if v.jobs.is_empty() {
                p { "No job has run yet." }
            } @else {
                table {
                    thead { tr { th { "Job" } th { "Last run" } th { "Result" } th { "Summary" } } }
                    tbody {
                        @for (job, s) in &v.jobs {
                            tr {
                                td { (job) }
                                td { (ago(v.at_ms, s.last_run_ms)) }
                                td { (badge(if s.ok { "ok" } else { "failed" })) }
                                td { (s.summary) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn card(title: &str, first: &str, second: &str, href: &str) -> Markup {
    html! {
        a.card href=(href) {
            span.title { (title) }
            span.big { (first) }
            span { (second) }
        }
    }
}

/// Where hour `hour_ms` falls in the week's charts that begin at `first_hour`, when inside them.
fn slot(first_hour: i64, hour_ms: i64) -> Option<usize> {
    usize::try_from((hour_ms - first_hour) / HOUR_MS).ok().filter(|i| *i < WEEK_HOURS as usize)
}

/// Received, sent and rejected per hour over the week.
fn orders_chart(v: &OverviewView, first_hour: i64) -> Markup {
    let mut received = vec![0.0; WEEK_HOURS as usize];
    let (mut sent, mut rejected) = (received.clone(), received.clone());
    for h in &v.hours {
        if let Some(i) = slot(first_hour, h.hour_ms) {
            received[i] = h.received as f64;
            sent[i] = h.entered(OrderStatus::Sent) as f64;
            rejected[i] = h.entered(OrderStatus::Rejected) as f64;
        }
    }
    let series = [
        Series { name: "received", class: "s1", values: received, total: true },
        Series { name: "sent to the WMS", class: "s2", values: sent, total: true },
        Series { name: "rejected", class: "s3", values: rejected, total: true },
    ];
    html! { section { h2 { "Orders per hour, last 7 days (UTC)" } (hourly("Orders per hour", first_hour, &series)) } }
}

/// Mean and slowest webhook acknowledgement per hour (since this process started).
fn latency_chart(latency: &[LatencyHour], first_hour: i64) -> Markup {
    let mut mean = vec![0.0; WEEK_HOURS as usize];
    let mut max = mean.clone();
    for h in latency {
        if let Some(i) = slot(first_hour, h.hour_ms) {
            (mean[i], max[i]) = (h.mean_ms(), h.max_ms);
        }
    }
    let series = [
        Series { name: "mean", class: "s1", values: mean, total: false },
        Series { name: "slowest", class: "s3", values: max, total: false },
    ];
    html! {
        section {
            h2 { "Webhook acknowledgement latency (ms), per hour" }
            p.hint { "From receipt to the 200 answer, the event durably stored. Kept in memory: since channeld last started." }
            (hourly("Acknowledgement latency (ms)", first_hour, &series))
        }
    }
}

/// `at_ms` as a time and how long before `now_ms`.
fn ago(now_ms: i64, at_ms: i64) -> String {
    let time = chrono::DateTime::from_timestamp_millis(at_ms).map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    let secs = (now_ms - at_ms).max(0) / 1000;
    let since = match secs {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    };
    format!("{} ({since})", time.unwrap_or_default())
}
