//! `channeld inventory status|release|resync`.

use std::path::Path;

use super::admin_cmd::{call, print_json, print_message};
use super::{InventoryCmd, Output};
use crate::admin::{InventoryStatusView, Request};
use crate::config::Config;
use crate::flows::inventory::InventoryRow;

pub async fn run(path: &Path, cmd: InventoryCmd) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    match cmd {
        InventoryCmd::Status { out } => status(cfg, out).await,
        InventoryCmd::Release { sku } => print_message(call(cfg, Request::InventoryRelease { sku }).await?),
        InventoryCmd::Resync => print_message(call(cfg, Request::InventoryResync).await?),
    }
}

async fn status(cfg: Config, out: Output) -> anyhow::Result<()> {
    let v = call(cfg, Request::InventoryStatus).await?;
    if out.json {
        return print_json(&v);
    }
    let s: InventoryStatusView = serde_json::from_value(v)?;
    println!("{:<24} {:<12} {:>8} {:>8}  STATE", "SKU", "LOCATION", "DESIRED", "PUSHED");
    let show = |r: &InventoryRow, state: &str| {
        let pushed = r.pushed.map_or("-".to_string(), |p| p.to_string());
        println!("{:<24} {:<12} {:>8} {:>8}  {state}", r.sku, r.location_code, r.desired, pushed);
    };
    for r in &s.pending {
        show(r, "pending");
    }
    for r in &s.quarantined {
        show(r, &format!("quarantined: {}", r.quarantine.as_deref().unwrap_or("")));
    }
    eprintln!("{} pending, {} quarantined, {} rows in all", s.pending.len(), s.quarantined.len(), s.total_rows);
    Ok(())
}
