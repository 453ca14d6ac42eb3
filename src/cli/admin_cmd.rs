//! `channeld orders ...` and `channeld outbox ...`: sent to the running daemon over the admin
//! socket, or run against the store directly when no daemon answers.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use super::{OrdersCmd, OutboxCmd, Output};
use crate::admin::{self, socket, EntryView, OrderView, Request};
use crate::app::App;
use crate::config::Config;
use crate::flows::model::OrderStatus;
use crate::store::{Store, StoreError};

pub async fn orders(path: &Path, cmd: OrdersCmd) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    match cmd {
        OrdersCmd::List { status, since, before, page, out } => {
            let status = status.as_deref().and_then(OrderStatus::parse);
            let since_ms = since_ms(since.as_deref())?;
            let v = call(cfg, Request::OrdersList { status, since_ms, before, limit: page.limit }).await?;
            let (items, next) = page_of(v)?;
            print_orders(serde_json::from_value(items.clone())?, &items, out)?;
            print_next(next, "--before")
        }
        OrdersCmd::Show { id, out } => {
            let v = call(cfg, Request::OrdersShow { id }).await?;
            print_order(serde_json::from_value(v.clone())?, &v, out)
        }
        OrdersCmd::Retry { id } => print_message(call(cfg, Request::OrdersRetry { id }).await?),
    }
}

pub async fn outbox(path: &Path, cmd: OutboxCmd) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    match cmd {
        OutboxCmd::List { since, after, page, out } => {
            let since_ms = since_ms(since.as_deref())?;
            let v = call(cfg, Request::OutboxList { since_ms, after, limit: page.limit, dead_only: false }).await?;
            let (items, next) = page_of(v)?;
            print_entries(serde_json::from_value(items.clone())?, &items, out)?;
            print_next(next, "--after")
        }
        OutboxCmd::Retry { id, .. } => print_message(call(cfg, Request::OutboxRetry { seq: id }).await?),
    }
}

/// `--since TIME` in unix ms.
fn since_ms(since: Option<&str>) -> anyhow::Result<Option<i64>> {
    let Some(t) = since else { return Ok(None) };
    let at = crate::flows::parse_time(t).ok_or_else(|| anyhow!("--since {t:?} is not an RFC 3339 time"))?;
    Ok(Some(at.timestamp_millis()))
}

/// How long a command waits for a daemon that holds the store but does not answer yet (starting
/// or stopping).
const LOCKED_PATIENCE: Duration = Duration::from_secs(5);

/// Runs a request in the daemon, or locally when none is running. A daemon that holds the store
/// but does not answer yet (starting: its socket comes up after the store opens) is asked again
/// until [`LOCKED_PATIENCE`] runs out.
pub(super) async fn call(cfg: Config, req: Request) -> anyhow::Result<Value> {
    let deadline = Instant::now() + LOCKED_PATIENCE;
    loop {
        if let Some(answer) = socket::call(&cfg.storage.path, &req).await.context("the admin socket failed")? {
            return answer.map_err(|e| anyhow!(e));
        }
        match try_open_store(&cfg).await? {
            Some(store) => {
                let app = tokio::task::spawn_blocking(move || crate::services::open(cfg, store)).await??;
                let answer = admin::execute(&app, req).await;
                let closed = app.store.clone();
                tokio::task::spawn_blocking(move || closed.close()).await??;
                return answer.map_err(|e| anyhow!(e));
            }
            None if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            None => bail!(held_by_a_silent_daemon(&cfg.storage.path)),
        }
    }
}

/// Opens the store directly (no daemon runs) and replays what it had not made durable, on a
/// blocking thread.
pub(super) async fn open_app(cfg: Config) -> anyhow::Result<Arc<App>> {
    let store = open_store(&cfg).await?;
    tokio::task::spawn_blocking(move || crate::services::open(cfg, store)).await?
}

/// Opens (or creates) the store when no daemon answers on its socket. A daemon that is stopping
/// (or starting) still holds the store for a moment: wait a little before giving up.
pub(super) async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let deadline = Instant::now() + LOCKED_PATIENCE;
    loop {
        match try_open_store(cfg).await? {
            Some(store) => return Ok(store),
            None if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            None => bail!(held_by_a_silent_daemon(&cfg.storage.path)),
        }
    }
}

/// Opens (or creates) the store; `None` while another process holds it.
async fn try_open_store(cfg: &Config) -> anyhow::Result<Option<Store>> {
    let storage = &cfg.storage.path;
    // A fresh install has no store yet: it is created (the onboarding imports listings before
    // `serve` ever ran).
    if storage.exists() {
        refuse_other_users(storage)?;
    }
    let opts = crate::store::OpenOptions::from(&cfg.storage);
    let path = storage.clone();
    match tokio::task::spawn_blocking(move || Store::open_with(&path, &opts)).await? {
        Err(StoreError::Locked(_)) => Ok(None),
        other => Ok(Some(other?)),
    }
}

fn held_by_a_silent_daemon(storage: &Path) -> String {
    format!(
        "a channeld process holds the store at {} but its admin socket does not answer; is it starting or stopping?",
        storage.display()
    )
}

/// Files a command creates in the store must stay the daemon user's: refuse to open someone else's.
pub(super) fn refuse_other_users(storage: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(storage)?.uid();
    // /proc/self is owned by the effective user of this process.
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(owner);
    if owner != me {
        bail!(
            "the store at {} belongs to user id {owner}; run this command as that user (e.g. sudo -u channeld ...)",
            storage.display()
        );
    }
    Ok(())
}

/// A page's rows and the cursor of the next page.
pub(super) fn page_of(v: Value) -> anyhow::Result<(Value, Option<String>)> {
    let page: crate::admin::Page<Value> = serde_json::from_value(v)?;
    Ok((Value::Array(page.items), page.next))
}

/// Tells how to get the next page (on stderr, so `--json` output stays one array).
pub(super) fn print_next(next: Option<String>, flag: &str) -> anyhow::Result<()> {
    if let Some(cursor) = next {
        eprintln!("more: continue with {flag} {cursor}");
    }
    Ok(())
}

pub(super) fn print_message(v: Value) -> anyhow::Result<()> {
    println!("{}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
    Ok(())
}

pub(super) fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn print_orders(orders: Vec<OrderView>, raw: &Value, out: Output) -> anyhow::Result<()> {
    if out.json {
        return print_json(raw);
    }
    println!("{:<16} {:<10} {:<10} {:<10} DETAILS", "ID", "NAME", "STATUS", "LOCATION");
    for o in &orders {
        let details = o.reasons.iter().chain(&o.flags).cloned().collect::<Vec<_>>().join("; ");
        let loc = o.location_code.as_deref().unwrap_or("-");
        println!("{:<16} {:<10} {:<10} {:<10} {details}", o.id, o.name, o.status.as_str(), loc);
    }
    eprintln!("{} order(s)", orders.len());
    Ok(())
}

fn print_order(o: OrderView, raw: &Value, out: Output) -> anyhow::Result<()> {
    if out.json {
        return print_json(raw);
    }
    println!("order      {} ({})", o.id, o.name);
    println!("status     {}", o.status.as_str());
    println!("at WMS     {}", if o.wms_created { "yes" } else { "no" });
    println!("location   {}", o.location_code.as_deref().unwrap_or("-"));
    println!("first seen {}", o.first_seen);
    println!("changed    {}", o.changed);
    for r in &o.reasons {
        println!("reason     {r}");
    }
    for f in &o.flags {
        println!("flag       {f}");
    }
    for i in &o.items {
        println!("item       {} x{} (orderItemCode {})", i.sku, i.quantity, i.order_item_code);
    }
    for e in &o.outbox {
        let error = e.last_error.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
        println!("queued     {} {} (entry {}, {} attempt(s)){error}", e.call, e.state, e.id, e.attempts);
    }
    for r in &o.returns {
        let mut line = format!(
            "return     {} {} {}: {} pass, {} fail, {} awaiting QC",
            r.id,
            r.name,
            r.status.as_str(),
            r.pass,
            r.fail,
            r.awaiting
        );
        if !r.refunded.is_empty() {
            line.push_str(&format!("; refunded {}", r.refunded.join(" + ")));
        }
        if !r.flags.is_empty() {
            line.push_str(&format!("; flags: {}", r.flags.join(", ")));
        }
        println!("{line}");
    }
    for s in &o.shipments {
        let mut line = format!("shipment   {} {} AWB {}: {}", s.shipment_id, s.courier, s.awb, s.status);
        if let Some(last) = &s.last_event {
            line.push_str(&format!(", last: {last}"));
        }
        if !s.flags.is_empty() {
            line.push_str(&format!("; flags: {}", s.flags.join(", ")));
        }
        println!("{line}");
    }
    for e in &o.timeline {
        println!("{:<10} {}  {}", if e.kind == "dead" { "DEAD" } else { "event" }, e.at, e.text);
    }
    Ok(())
}

fn print_entries(entries: Vec<EntryView>, raw: &Value, out: Output) -> anyhow::Result<()> {
    if out.json {
        return print_json(raw);
    }
    println!(
        "{:<8} {:<16} {:<12} {:<8} {:<8} {:<24} {:<24} LAST ERROR",
        "ID", "ORDER", "CALL", "STATE", "ATTEMPTS", "QUEUED", "NEXT ATTEMPT"
    );
    for e in &entries {
        let err = e.last_error.as_deref().unwrap_or("");
        println!(
            "{:<8} {:<16} {:<12} {:<8} {:<8} {:<24} {:<24} {err}",
            e.id, e.order_id, e.call, e.state, e.attempts, e.queued, e.next_attempt
        );
    }
    eprintln!("{} call(s) queued", entries.len());
    Ok(())
}
