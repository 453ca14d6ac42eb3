//! `channeld shipments ...` (CONTRACT.md §10.5): list shipments with their last status, and show
//! one with its tracking timeline, through the running daemon or on the store directly.

use std::path::Path;

use anyhow::anyhow;
use serde_json::Value;

use super::admin_cmd::{call, page_of, print_json, print_next};
use super::{Output, ShipmentsCmd};
use crate::admin::shipments::ShipmentView;
use crate::admin::Request;
use crate::config::Config;
use crate::flows::tracking::{status_name, ShipmentStatus};

pub async fn run(path: &Path, cmd: ShipmentsCmd) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    match cmd {
        ShipmentsCmd::List { status, before, page, out } => {
            let status = match status.as_deref() {
                Some(s) => {
                    Some(ShipmentStatus::parse(s).ok_or_else(|| anyhow!("--status {s:?} is not a shipment status"))?)
                }
                None => None,
            };
            let v = call(cfg, Request::ShipmentsList { status, before, limit: page.limit }).await?;
            let (items, next) = page_of(v)?;
            print_list(serde_json::from_value(items.clone())?, &items, out)?;
            print_next(next, "--before")
        }
        ShipmentsCmd::Show { id, out } => {
            let v = call(cfg, Request::ShipmentsShow { id }).await?;
            print_one(serde_json::from_value(v.clone())?, &v, out)
        }
    }
}

fn print_list(shipments: Vec<ShipmentView>, raw: &Value, out: Output) -> anyhow::Result<()> {
    if out.json {
        return print_json(raw);
    }
    println!(
        "{:<12} {:<16} {:<10} {:<11} {:<20} {:<17} LAST EVENT",
        "SHIPMENT", "ORDER", "NAME", "COURIER", "AWB", "STATUS"
    );
    for s in &shipments {
        let mut last = s.last_event.clone().unwrap_or_default();
        if !s.flags.is_empty() {
            last.push_str(&format!(" [{}]", s.flags.join(", ")));
        }
        println!(
            "{:<12} {:<16} {:<10} {:<11} {:<20} {:<17} {last}",
            s.shipment_id,
            s.order_id,
            s.order_name,
            s.courier,
            s.awb,
            s.status_text()
        );
    }
    eprintln!("{} shipment(s)", shipments.len());
    Ok(())
}

fn print_one(s: ShipmentView, raw: &Value, out: Output) -> anyhow::Result<()> {
    if out.json {
        return print_json(raw);
    }
    println!("shipment   {} of order {} ({})", s.shipment_id, s.order_id, s.order_name);
    println!(
        "courier    {} AWB {} ({}), from {}, {} unit(s)",
        s.courier, s.awb, s.transporter, s.location_code, s.units
    );
    println!("status     {} (booking: {})", s.status_text(), s.booking);
    if let Some(last) = &s.last_event {
        println!("last event {last}");
    }
    if let Some(f) = &s.fulfillment_id {
        println!("fulfilled  {f}");
    }
    if s.ndr_attempts > 0 {
        println!("ndr        {} failed attempt(s), last: {}", s.ndr_attempts, s.ndr_reason);
    }
    for f in &s.flags {
        println!("flag       {f}");
    }
    println!("changed    {}", s.changed);
    if s.dropped > 0 {
        println!("timeline   ({} older event(s) no longer kept)", s.dropped);
    }
    for e in &s.timeline {
        let what = status_name(e.code, &e.description);
        let mut line = format!("event      {} {} [{}] at {}", e.timestamp, what, e.code, e.location);
        line.push_str(&format!(": {}", e.outcome));
        if !e.note.is_empty() {
            line.push_str(&format!(" ({})", e.note));
        }
        if !e.ndr_reason.is_empty() {
            line.push_str(&format!("; reason: {}", e.ndr_reason));
        }
        println!("{line} — received {}", e.received);
    }
    for e in &s.shopify_events {
        let mut line = format!("on Shopify {} {} {}", e.status, e.happened_at, e.state);
        if !e.message.is_empty() {
            line.push_str(&format!(" \"{}\"", e.message));
        }
        println!("{line}");
    }
    Ok(())
}
