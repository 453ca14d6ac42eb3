//! Power cuts: the real binary runs with its store on `powerfs`, a filesystem that forgets at a
//! "power cut" everything not covered by an `fsync` (file contents, sizes, directory entries).
//! Under concurrent load the daemon is killed, the filesystem cut back to what was synced, and the
//! daemon started again on it: it must start by itself and hold every acknowledged event, each
//! reaching the WMS, Shopify or the courier once.
//!
//! `TEST_CHANNELD_BIN=path/to/older/channeld cargo test --test it power_loss` runs the same
//! scenarios against another build (the configuration then leaves out the keys it would not know).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::process::Child;

use crate::courier_fakes::FakeCourier;
use crate::crash::{all_delivered, free_addr, start};
use crate::fakes::FakeWms;
use crate::helpers::{
    order_numbered, run_cli, wms_request, write_config, Options, INVENTORY_LOCATION_ID, SECRET, SHOP,
};
use crate::powerfs::{Faults, PowerFs};
use crate::shopify_admin_fake::AdminShopify;
use crate::shopify_inventory_fake::InventoryShopify;

/// A store directory on a fresh powerfs mount, and a configuration outside it.
pub(crate) fn mounted() -> (PowerFs, tempfile::TempDir) {
    let fs = PowerFs::mount_temp().expect("powerfs needs /dev/fuse and root (or fusermount3)");
    (fs, tempfile::tempdir().unwrap())
}

/// Keys of the test configuration that builds from before the journal do not know (they refuse
/// unknown keys), left out when `TEST_CHANNELD_BIN` names such a build.
const NEWER_KEYS: [&str; 3] = ["auth_pause_seconds", "inbound_failure_delay_ms", "inbound_failure_max_delay_ms"];

/// A configuration for a daemon whose store lives on the mount. Journal segments of 1 MB, so that
/// the load starts new segment files (and their directory entries) while the power is cut.
pub(crate) fn config_on(
    fs: &PowerFs,
    dir: &Path,
    addr: std::net::SocketAddr,
    wms: &str,
    shop: &str,
    o: &Options,
) -> std::path::PathBuf {
    let config = write_config(dir, addr, wms, shop, o);
    let store = dir.join("store").display().to_string();
    let mut text =
        std::fs::read_to_string(&config).unwrap().replace(&store, &fs.path().join("store").display().to_string());
    if std::env::var_os("TEST_CHANNELD_BIN").is_some() {
        text = text.lines().filter(|l| !NEWER_KEYS.iter().any(|k| l.starts_with(k))).collect::<Vec<_>>().join("\n");
    } else {
        text = text.replacen("[storage]\n", "[storage]\njournal_segment_mb = 1\n", 1);
    }
    std::fs::write(&config, text).unwrap();
    config
}

/// Every acknowledged order is in the store after the restart (not only at the WMS: an order the
/// WMS got before the cut but the store lost would be one the WMS holds and channeld never knew).
async fn all_stored(config: &Path, orders: &HashSet<u64>) {
    let mut missing = Vec::new();
    for id in orders {
        let (ok, _, _) = run_cli(config, &["orders", "show", &id.to_string(), "--json"]).await;
        if !ok {
            missing.push(*id);
        }
    }
    missing.sort_unstable();
    assert!(missing.is_empty(), "acknowledged but missing from the store after the cut: {missing:?}");
}

/// Kills the daemon (as a power cut does) and cuts the filesystem back to what was synced.
async fn power_cut(daemon: &mut Child, fs: &mut PowerFs) {
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    fs.power_cut().unwrap();
}

/// A signed `orders/create`; every seventh order carries a body over 256 KB.
pub(crate) async fn post_order(client: &reqwest::Client, addr: std::net::SocketAddr, id: u64) -> bool {
    let mut order = order_numbered(id);
    if id % 7 == 0 {
        order["note"] = "x".repeat(300 * 1024).into();
    }
    let body = serde_json::to_vec(&order).unwrap();
    let sent = client
        .post(format!("http://{addr}/shopify/api/push/orders"))
        .header("X-Shopify-Shop-Domain", format!("{SHOP}.myshopify.com"))
        .header("X-Shopify-Event-Id", format!("evt-{id}"))
        .header("X-Shopify-Hmac-Sha256", channeld::shopify::webhook::sign(SECRET, &body))
        .body(body)
        .send()
        .await;
    matches!(sent, Ok(r) if r.status() == StatusCode::OK)
}

/// A WMS call that may meet a dead daemon: its status and body, `None` when it got no answer.
pub(crate) async fn wms_try(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    method: Method,
    path: &str,
    body: &Value,
) -> Option<(StatusCode, Value)> {
    let resp = client
        .request(method, format!("http://{addr}{path}"))
        .header("authUsername", "in-user")
        .header("authPassword", "in-pass")
        .json(body)
        .send()
        .await
        .ok()?;
    let status = resp.status();
    Some((status, resp.json().await.ok()?))
}

/// What was acknowledged (answered 200) while the load ran.
#[derive(Default)]
struct Acked {
    orders: Mutex<HashSet<u64>>,
    packs: Mutex<HashMap<u64, String>>,
    handovers: Mutex<HashSet<u64>>,
    inventory: Mutex<HashMap<u64, i64>>,
}

/// Orders posted by 8 concurrent senders until `stop`, numbered from `first`.
fn order_senders(
    addr: std::net::SocketAddr,
    first: u64,
    acked: &Arc<Acked>,
    stop: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let next = Arc::new(AtomicU64::new(first));
    (0..8)
        .map(|_| {
            let (acked, stop, next) = (acked.clone(), stop.clone(), next.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while stop.load(Ordering::SeqCst) == 0 {
                    let id = next.fetch_add(1, Ordering::SeqCst);
                    if post_order(&client, addr, id).await {
                        acked.orders.lock().unwrap().insert(id);
                    }
                }
            })
        })
        .collect()
}

pub(crate) async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn no_blob_files(store: &Path) {
    let blobs: Vec<_> = std::fs::read_dir(store.join("db/blobs")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(blobs.is_empty(), "a stored value went to a sled blob file: {blobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
async fn a_power_cut_under_webhook_pack_and_handover_load_loses_nothing_acknowledged() {
    let (mut fs, dir) = mounted();
    let wms = FakeWms::start().await;
    wms.set(|b| b.delay = Duration::from_millis(2));
    let shop = AdminShopify::start().await;
    let courier = FakeCourier::start().await;
    let addr = free_addr();
    let o = Options {
        routing: "wms",
        max_attempts: 50,
        shopify_url: Some(shop.url()),
        courier_url: Some(courier.url()),
        archive_schedule: "*/1 * * * * *",
        ..Options::default()
    };
    let config = config_on(&fs, dir.path(), addr, &wms.url(), &shop.url(), &o);
    let mut daemon = start(&config, addr).await;
    let client = reqwest::Client::new();
    // Orders already at the WMS, for the pack and handover calls during the load.
    let packed: Vec<u64> = (1..=12).collect();
    for id in &packed {
        assert!(post_order(&client, addr, *id).await);
    }
    all_delivered(&config, &wms, &packed.iter().copied().collect()).await;

    let acked = Arc::new(Acked::default());
    let stop = Arc::new(AtomicU64::new(0));
    let mut load = order_senders(addr, 1_000, &acked, &stop);
    load.push(tokio::spawn({
        let (acked, stop, client) = (acked.clone(), stop.clone(), client.clone());
        let packed = packed.clone();
        async move {
            for id in packed.iter().cycle() {
                if stop.load(Ordering::SeqCst) != 0 {
                    return;
                }
                let body = json!({ "orderCode": id.to_string(), "locationCode": "WH-1", "shipmentId": 9_000 + id });
                if let Some((StatusCode::OK, answer)) = wms_try(&client, addr, Method::POST, "/wms/shipments", &body).await {
                    acked.packs.lock().unwrap().insert(*id, answer["awbNumber"].as_str().unwrap_or_default().into());
                }
                let body = json!({ "locationCode": "WH-1", "handoverItems": [{ "orderCode": id.to_string(), "shipmentCode": (9_000 + id).to_string() }] });
                if let Some((StatusCode::OK, _)) = wms_try(&client, addr, Method::POST, "/wms/handover", &body).await {
                    acked.handovers.lock().unwrap().insert(*id);
                }
            }
        }
    }));
    until("a good part of the load to be acknowledged", || {
        acked.orders.lock().unwrap().len() >= 150 && !acked.packs.lock().unwrap().is_empty()
    })
    .await;
    power_cut(&mut daemon, &mut fs).await;
    stop.store(1, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    let orders = acked.orders.lock().unwrap().clone();
    let packs = acked.packs.lock().unwrap().clone();
    let handovers = acked.handovers.lock().unwrap().clone();
    eprintln!("cut: {} orders, {} pack calls, {} handovers acknowledged", orders.len(), packs.len(), handovers.len());

    // The store opens again by itself and holds everything acknowledged.
    let mut daemon = start(&config, addr).await;
    all_stored(&config, &orders).await;
    for (id, awb) in &packs {
        // Each acknowledged booking is still known, before anything could book it again.
        let path = format!("/wms/shipping-label?orderCode={id}&shipmentId={}", 9_000 + id);
        let (status, label) = wms_request(&client, addr, Method::GET, &path, &Value::Null).await;
        assert_eq!(
            (status, label["awbNumber"].as_str().unwrap_or_default()),
            (StatusCode::OK, awb.as_str()),
            "the label of an acknowledged pack call for order {id}: {label}"
        );
    }
    all_delivered(&config, &wms, &orders).await;
    for (id, awb) in &packs {
        // The booking an acknowledged pack call answered is the one kept: the same answer again.
        let body = json!({ "orderCode": id.to_string(), "locationCode": "WH-1", "shipmentId": 9_000 + id });
        let (status, answer) = wms_request(&client, addr, Method::POST, "/wms/shipments", &body).await;
        assert_eq!(
            (status, answer["awbNumber"].as_str().unwrap_or_default()),
            (StatusCode::OK, awb.as_str()),
            "{answer}"
        );
    }
    {
        // Clickpost places each reference once (a repeat is answered 323 with the same waybill).
        let placed = courier.state.placed.lock().unwrap();
        for (id, awb) in &packs {
            assert_eq!(placed.get(&format!("{id}-s{}", 9_000 + id)), Some(awb), "shipment of order {id}");
        }
    }
    until("every acknowledged shipment's fulfillment on Shopify", || {
        let tracking = shop.state.tracking.lock().unwrap();
        packs.values().all(|awb| tracking.iter().filter(|t| *t == awb).count() == 1)
    })
    .await;
    until("every acknowledged handover archived on Shopify", || {
        let log = shop.log();
        handovers.iter().all(|id| log.iter().any(|l| l == &format!("closed gid://shopify/Order/{id}")))
    })
    .await;
    // (An archive whose outcome the cut took is asked again: closing a closed order changes nothing.)
    no_blob_files(&fs.path().join("store"));
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
async fn a_power_cut_under_inventory_load_loses_no_acknowledged_quantity() {
    let (mut fs, dir) = mounted();
    let wms = FakeWms::start().await;
    let shop = InventoryShopify::start().await;
    shop.add_items(10_000..14_000);
    let addr = free_addr();
    let o = Options { routing: "wms", shopify_url: Some(shop.url()), ..Options::default() };
    let config = config_on(&fs, dir.path(), addr, &wms.url(), &shop.url(), &o);
    let mut daemon = start(&config, addr).await;
    let csv = dir.path().join("listings.csv");
    let lines: String = (0..4000).map(|i| format!("SKU-{i},{}\n", 10_000 + i)).collect();
    std::fs::write(&csv, format!("channelSkuCode,channelSerialNo\n{lines}")).unwrap();
    let (ok, _, err) = run_cli(&config, &["listings", "import", csv.to_str().unwrap()]).await;
    assert!(ok, "{err}");

    // Each call sets its own 200 SKUs, so an acknowledged call's quantities are never overwritten;
    // webhooks arrive at the same time.
    let acked = Arc::new(Acked::default());
    let stop = Arc::new(AtomicU64::new(0));
    let mut load = order_senders(addr, 1, &acked, &stop);
    for sender in 0..2u64 {
        let (acked, stop) = (acked.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for call in (sender..20).step_by(2) {
                if stop.load(Ordering::SeqCst) != 0 {
                    return;
                }
                let skus: Vec<u64> = (call * 200..(call + 1) * 200).collect();
                let rows: Vec<Value> = skus
                    .iter()
                    .map(|i| json!({ "channelSkuCode": format!("SKU-{i}"), "quantity": call as i64 + 1 }))
                    .collect();
                let body = json!({ "locationCode": "WH-INV", "inventories": rows });
                if let Some((StatusCode::OK, answer)) =
                    wms_try(&client, addr, Method::PUT, "/wms/inventory", &body).await
                {
                    assert_eq!(answer["failureList"], json!([]), "{answer}");
                    acked.inventory.lock().unwrap().extend(skus.iter().map(|i| (10_000 + i, call as i64 + 1)));
                }
            }
        }));
    }
    until("inventory calls and orders to be acknowledged", || {
        acked.inventory.lock().unwrap().len() >= 1_000 && acked.orders.lock().unwrap().len() >= 50
    })
    .await;
    power_cut(&mut daemon, &mut fs).await;
    stop.store(1, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    let levels = acked.inventory.lock().unwrap().clone();
    let orders = acked.orders.lock().unwrap().clone();
    eprintln!("cut: {} inventory rows, {} orders acknowledged", levels.len(), orders.len());

    let pushing = Options { push_schedule: "*/1 * * * * *", ..o };
    let config = config_on(&fs, dir.path(), addr, &wms.url(), &shop.url(), &pushing);
    let mut daemon = start(&config, addr).await;
    until("every acknowledged quantity on Shopify", || {
        levels.iter().all(|(item, q)| shop.level(*item, INVENTORY_LOCATION_ID) == Some(*q))
    })
    .await;
    all_delivered(&config, &wms, &orders).await;
    no_blob_files(&fs.path().join("store"));
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
async fn concurrent_acknowledgements_share_their_syncs() {
    const ORDERS: u64 = 240;
    let (fs, dir) = mounted();
    let wms = FakeWms::start().await;
    let addr = free_addr();
    let o = Options { routing: "wms", ..Options::default() };
    let config = config_on(&fs, dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &o);
    let mut daemon = start(&config, addr).await;
    // A disk whose every sync takes 50 ms (far longer than handling a small order): requests
    // arriving meanwhile must ride the next sync, not wait for one each.
    fs.set_faults(Faults { slow_syncs: Some(Duration::from_millis(50)), ..Faults::default() });
    let before = fs.stats().fsyncs;
    let next = Arc::new(AtomicU64::new(1));
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                loop {
                    let id = next.fetch_add(1, Ordering::SeqCst);
                    if id > ORDERS {
                        return;
                    }
                    assert!(crate::crash::post_order(&client, addr, id).await, "order {id} acknowledged");
                }
            })
        })
        .collect();
    for t in senders {
        t.await.unwrap();
    }
    let syncs = fs.stats().fsyncs - before;
    fs.set_faults(Faults::default());
    // Each order is two journal records (its webhook, then the mark that its creation is being
    // sent), besides sled's own syncs: a sync for each record would be 2 × ORDERS. Shared, they
    // are a fraction of that (about a tenth on an idle machine; the bound leaves room for a busy one).
    eprintln!("{ORDERS} acknowledgements, {syncs} file syncs");
    assert!(syncs * 3 <= ORDERS * 2, "{ORDERS} acknowledgements took {syncs} syncs: no group commit");
    all_delivered(&config, &wms, &(1..=ORDERS).collect()).await;
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}
