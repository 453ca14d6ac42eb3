//! `channeld returns ...` (CONTRACT.md §9.2): list, show, release and retry returns, through the
//! running daemon or on the store directly.

use std::path::Path;

use anyhow::anyhow;
use serde_json::Value;

use super::admin_cmd::{call, page_of, print_json, print_message, print_next};
use super::{Output, ReturnsCmd};
use crate::admin::returns::ReturnView;
use crate::admin::Request;
use crate::config::Config;
use crate::flows::returns::ReturnStatus;

pub async fn run(path: &Path, cmd: ReturnsCmd) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    match cmd {
        ReturnsCmd::List { status, before, page, out } => {
            let status = match status.as_deref() {
                Some(s) => {
                    Some(ReturnStatus::parse(s).ok_or_else(|| anyhow!("--status {s:?} is not a return status"))?)
                }
                None => None,
            };
            let v = call(cfg, Request::ReturnsList { status, before, limit: page.limit }).await?;
            let (items, next) = page_of(v)?;
            print_list(serde_json::from_value(items.clone())?, &items, out)?;
            print_next(next, "--before")
        }
        ReturnsCmd::Show { id, out } => {
            let v = call(cfg, Request::ReturnsShow { id }).await?;
            print_one(serde_json::from_value(v.clone())?, &v, out)
        }
        ReturnsCmd::Release { id } => print_message(call(cfg, Request::ReturnsRelease { id }).await?),
        ReturnsCmd::Retry { id } => print_message(call(cfg, Request::ReturnsRetry { id }).await?),
    }
}

fn print_list(returns: Vec<ReturnView>, raw: &Value, out: Output) -> anyhow::Result<()> {
    if out.json {
        return print_json(raw);
    }
    println!("{:<16} {:<12} {:<16} {:<9} {:<14} DETAILS", "ID", "NAME", "ORDER", "STATUS", "PASS/FAIL/QC?");
    for r in &returns {
        let (pass, fail) =
            (r.units.iter().filter(|u| u.qc == "pass").count(), r.units.iter().filter(|u| u.qc == "fail").count());
        let qc = format!("{pass}/{fail}/{}", r.units.len() - pass - fail);
        let mut details: Vec<String> = r.reasons.iter().chain(&r.flags).cloned().collect();
        if r.stale {
            details.push("stale".into());
        }
        println!(
            "{:<16} {:<12} {:<16} {:<9} {:<14} {}",
            r.id,
            r.name,
            r.order_id,
            r.status.as_str(),
            qc,
            details.join("; ")
        );
    }
    eprintln!("{} return(s)", returns.len());
    Ok(())
}

fn print_one(r: ReturnView, raw: &Value, out: Output) -> anyhow::Result<()> {
    if out.json {
        return print_json(raw);
    }
    println!("return     {} ({}) of order {}", r.id, r.name, r.order_id);
    println!("status     {}{}", r.status.as_str(), if r.stale { " (stale: units awaiting QC)" } else { "" });
    println!("first seen {}", r.first_seen);
    println!("changed    {}", r.changed);
    if let Some(t) = &r.tracking {
        println!("tracking   {t}");
    }
    for reason in &r.reasons {
        println!("reason     {reason}");
    }
    for f in &r.flags {
        println!("flag       {f}");
    }
    for w in &r.wms_returns {
        println!(
            "to WMS     {} at {} ({})",
            w.return_order_code,
            w.location_code,
            if w.sent { "sent" } else { "not yet sent" }
        );
    }
    for u in &r.units {
        let mut line =
            format!("unit       {} {} at {}: QC {}, {}", u.item_code, u.sku, u.location_code, u.qc, u.disposition);
        if let Some(why) = &u.qc_reason {
            line.push_str(&format!(" ({why})"));
        }
        if !u.reason.is_empty() {
            line.push_str(&format!("; reason: {}", u.reason));
        }
        println!("{line}");
        for url in &u.image_urls {
            println!("           image {url}");
        }
    }
    for s in &r.skipped {
        println!("not sent   line {} x{}: {}", s.return_line_item, s.units, s.reason);
    }
    for refund in &r.refunds {
        println!("refunded   {refund}");
    }
    Ok(())
}
