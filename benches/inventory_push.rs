//! Inventory push at scale: N SKUs pushed against a fake Shopify that enforces a cost budget.
//!
//! Reports the number of `inventorySetQuantities` calls (must be ⌈N/250⌉) and the wall time as a
//! ratio to the budget-bound minimum (what the bucket allows at best), plus the same push against
//! an unlimited budget, measured in the same run as the baseline of channeld's own overhead.
//!
//!     cargo bench --bench inventory_push                # N = 100000, 100 points/s
//!     cargo bench --bench inventory_push -- 20000       # another N

#[path = "../tests/it/shopify_inventory_fake.rs"]
#[allow(dead_code)]
mod shopify_inventory_fake;

use std::time::Instant;

use channeld::app::App;
use channeld::config::Config;
use channeld::flows::listings::Listing;
use channeld::jobs::inventory_push::push_pending;
use channeld::store::Store;
use shopify_inventory_fake::{Budget, InventoryShopify};

const LOCATION: u64 = 655441491;
const MUTATION_COST: f64 = 10.0;
const RESTORE_RATE: f64 = 100.0;
const BUCKET: f64 = 1000.0;

async fn app(shop_url: &str, dir: &std::path::Path) -> std::sync::Arc<App> {
    let path = dir.join("bench.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
[storage]
path = "{}"
[shopify]
shop = "bench"
access_token = "shpat_bench"
webhook_secret = "s"
base_url = "{shop_url}"
[wms]
base_url = "http://127.0.0.1:9"
[[locations]]
shopify_location_id = {LOCATION}
wms_location_code = "WH"
"#,
            dir.join("store").display()
        ),
    )
    .unwrap();
    let cfg = Config::load(&path).unwrap();
    let store = Store::open(&cfg.storage.path, 64).unwrap();
    channeld::services::open(cfg, store).unwrap()
}

/// Pushes `n` SKUs once; returns (calls, seconds).
async fn run(n: u64, budget: Option<Budget>) -> (usize, f64) {
    let dir = tempfile::tempdir().unwrap();
    let shop = InventoryShopify::start().await;
    *shop.state.budget.lock().unwrap() = budget;
    let app = app(&shop.url(), dir.path()).await;
    let listings: Vec<Listing> = (0..n).map(|i| Listing { sku: format!("SKU-{i}"), item_id: 1_000_000 + i }).collect();
    app.store.replace_listings(&listings).unwrap();
    let rows: Vec<(String, u64, i64)> =
        listings.iter().map(|l| (l.sku.clone(), l.item_id, (l.item_id % 50) as i64)).collect();
    for chunk in rows.chunks(200) {
        app.store.set_desired(LOCATION, "WH", chunk, 0).unwrap();
    }
    let started = Instant::now();
    let report = push_pending(&app).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(report.pushed as u64, n, "every row pushed");
    assert_eq!(shop.applied_calls().len(), report.calls);
    (report.calls, secs)
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let expected_calls = n.div_ceil(250) as usize;
    let (free_calls, free_secs) = run(n, None).await;
    let (calls, secs) = run(n, Some(Budget::new(BUCKET, RESTORE_RATE, MUTATION_COST))).await;
    let min = ((calls as f64 * MUTATION_COST - BUCKET) / RESTORE_RATE).max(0.0);
    println!("inventory push, N = {n} SKUs, batch 250");
    println!(
        "  calls: {calls} (expected ceil(N/250) = {expected_calls}) {}",
        if calls == expected_calls { "OK" } else { "MISMATCH" }
    );
    println!("  budget {RESTORE_RATE} points/s, bucket {BUCKET}, {MUTATION_COST} points per call");
    println!(
        "  wall time {secs:.2} s; budget-bound minimum {min:.2} s; ratio {:.3}",
        if min > 0.0 { secs / min } else { f64::NAN }
    );
    println!(
        "  baseline, unlimited budget: {free_calls} calls in {free_secs:.2} s ({:.0} rows/s)",
        n as f64 / free_secs
    );
}
