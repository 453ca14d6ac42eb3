//! The real binary, killed and stopped: what was acknowledged is delivered, once.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use channeld::shopify::webhook::sign;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::courier_fakes::FakeCourier;
use crate::fakes::FakeWms;
use crate::helpers::{
    order_numbered, run_cli, wms_request, write_config, Options, INVENTORY_LOCATION_ID, SECRET, SHOP,
};
use crate::shopify_admin_fake::AdminShopify;
use crate::shopify_inventory_fake::InventoryShopify;
use reqwest::Method;

pub(crate) fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub(crate) async fn start(config: &Path, addr: std::net::SocketAddr) -> Child {
    let logs = if std::env::var_os("TEST_SHOW_DAEMON_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() };
    start_with_logs(config, addr, logs).await
}

/// Starts `channeld serve` with its stderr (its log) going to `logs`; returns once it is ready.
pub(crate) async fn start_with_logs(config: &Path, addr: std::net::SocketAddr, logs: Stdio) -> Child {
    let child = Command::new(crate::helpers::channeld_bin())
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(logs)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if let Ok(r) = client.get(format!("http://{addr}/readyz")).send().await {
            if r.status().is_success() {
                return child;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("channeld did not become ready");
}

pub(crate) async fn post_order(client: &reqwest::Client, addr: std::net::SocketAddr, id: u64) -> bool {
    let body = serde_json::to_vec(&order_numbered(id)).unwrap();
    let sent = client
        .post(format!("http://{addr}/shopify/api/push/orders"))
        .header("X-Shopify-Shop-Domain", format!("{SHOP}.myshopify.com"))
        .header("X-Shopify-Event-Id", format!("evt-{id}"))
        .header("X-Shopify-Hmac-Sha256", sign(SECRET, &body))
        .body(body)
        .send()
        .await;
    matches!(sent, Ok(r) if r.status().is_success())
}

pub(crate) async fn outbox(config: &Path) -> Vec<Value> {
    let (ok, out, err) = run_cli(config, &["outbox", "list", "--json"]).await;
    assert!(ok, "{err}");
    serde_json::from_str::<Vec<Value>>(&out).unwrap()
}

/// Orders posted by 32 concurrent senders, and which of them were acknowledged.
struct Load {
    acked: Arc<Mutex<HashSet<u64>>>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts posting orders `first + 1 ..= first + count`; returns once half are acknowledged,
    /// with the senders still going.
    async fn until_half(addr: std::net::SocketAddr, first: u64, count: u64) -> Self {
        let acked = Arc::new(Mutex::new(HashSet::new()));
        let client = reqwest::Client::new();
        let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let mut senders = Vec::new();
        for _ in 0..32 {
            let (client, acked, next) = (client.clone(), acked.clone(), next.clone());
            senders.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if n > count {
                        return;
                    }
                    if post_order(&client, addr, first + n).await {
                        acked.lock().unwrap().insert(first + n);
                    }
                }
            }));
        }
        while acked.lock().unwrap().len() < (count / 2) as usize {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Self { acked, senders }
    }

    /// Waits for the senders (their last posts fail once the daemon is gone) and returns every
    /// acknowledged order.
    async fn finish(self) -> HashSet<u64> {
        for s in self.senders {
            s.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// After a restart: every acknowledged order reaches the WMS and nothing stays queued or dead.
/// Returns the orders the WMS has.
pub(crate) async fn all_delivered(config: &Path, wms: &FakeWms, acked: &HashSet<u64>) -> HashSet<u64> {
    let created = || -> HashSet<u64> { wms.created().iter().map(|c| c.parse().unwrap()).collect() };
    for _ in 0..3000 {
        if acked.is_subset(&created()) && outbox(config).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let created = created();
    let missing: Vec<_> = acked.difference(&created).collect();
    assert!(missing.is_empty(), "acknowledged but never created at the WMS: {missing:?}");
    let left = outbox(config).await;
    assert!(left.is_empty(), "nothing may stay queued or dead-lettered: {left:?}");
    created
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_order() {
    const ORDERS: u64 = 600;
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    // A slowish WMS keeps plenty of work in flight when the kill comes.
    wms.set(|b| b.delay = Duration::from_millis(5));
    let addr = free_addr();
    let config = write_config(
        dir.path(),
        addr,
        &wms.url(),
        "http://127.0.0.1:9",
        &Options { routing: "wms", max_attempts: 50, ..Options::default() },
    );
    let mut daemon = start(&config, addr).await;

    // Killed in the middle of the load.
    let load = Load::until_half(addr, 10_000, ORDERS).await;
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    let acked = load.finish().await;
    assert!(acked.len() >= (ORDERS / 2) as usize);
    eprintln!("killed: {} acknowledged, {} created at the WMS before the restart", acked.len(), wms.created().len());

    let mut daemon = start(&config, addr).await;
    let created = all_delivered(&config, &wms, &acked).await;
    // Each creation accepted once by the WMS: repeats after the crash were answered
    // "already exists" and counted as delivered.
    let posts = wms.calls_to("POST", "/orders/outward").len();
    assert!(posts >= created.len());
    eprintln!("after restart: {} created, {posts} creation calls", created.len());
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

#[tokio::test]
async fn inventory_accepted_before_a_kill_is_pushed_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let shop = InventoryShopify::start().await;
    shop.add_items([10_000, 10_001]);
    let addr = free_addr();
    let far = Options { shopify_url: Some(shop.url()), ..Options::default() };
    let config = write_config(dir.path(), addr, &wms.url(), &shop.url(), &far);
    let mut daemon = start(&config, addr).await;
    let csv = dir.path().join("listings.csv");
    std::fs::write(&csv, "channelSkuCode,channelSerialNo\nSKU-0,10000\nSKU-1,10001\n").unwrap();
    let (ok, _, err) = run_cli(&config, &["listings", "import", csv.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let body = serde_json::json!({ "locationCode": "WH-INV", "inventories": [
        { "channelSkuCode": "SKU-0", "quantity": 11 }, { "channelSkuCode": "SKU-1", "quantity": 12 } ] });
    let (status, _) = wms_request(&reqwest::Client::new(), addr, Method::PUT, "/wms/inventory", &body).await;
    assert!(status.is_success());
    // Killed before any push could run (its schedule is once a year).
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    assert!(shop.calls().is_empty());

    let every_second = Options { push_schedule: "*/1 * * * * *", ..far };
    write_config(dir.path(), addr, &wms.url(), &shop.url(), &every_second);
    let mut daemon = start(&config, addr).await;
    for _ in 0..500 {
        if shop.level(10_001, INVENTORY_LOCATION_ID) == Some(12) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shop.level(10_000, INVENTORY_LOCATION_ID), Some(11));
    assert_eq!(shop.level(10_001, INVENTORY_LOCATION_ID), Some(12));
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

#[tokio::test]
async fn kill_during_a_booking_resumes_it_without_booking_twice() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let shop = AdminShopify::start().await;
    let courier = FakeCourier::start().await;
    let addr = free_addr();
    let o = Options {
        routing: "wms",
        shopify_url: Some(shop.url()),
        courier_url: Some(courier.url()),
        answer_within_seconds: 1,
        ..Options::default()
    };
    let config = write_config(dir.path(), addr, &wms.url(), &shop.url(), &o);
    let mut daemon = start(&config, addr).await;
    let client = reqwest::Client::new();
    assert!(post_order(&client, addr, 4242).await);
    for _ in 0..500 {
        if !wms.created().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The courier takes its time: the pack call is answered "in progress" and the process dies
    // while the booking is under way.
    *courier.state.delay.lock().unwrap() = Duration::from_secs(3);
    let pack = serde_json::json!({ "orderCode": "4242", "locationCode": "WH-1", "shipmentId": 555 });
    let (status, _) = wms_request(&client, addr, Method::POST, "/wms/shipments", &pack).await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();

    *courier.state.delay.lock().unwrap() = Duration::ZERO;
    let mut daemon = start(&config, addr).await;
    let mut answer = serde_json::Value::Null;
    for _ in 0..250 {
        let (status, body) = wms_request(&client, addr, Method::POST, "/wms/shipments", &pack).await;
        if status.is_success() {
            answer = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer["awbNumber"], "WB-4242-s555", "{answer}");
    assert_eq!(courier.state.placed.lock().unwrap().len(), 1, "one booking at the courier");
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

#[tokio::test]
async fn kill_during_an_inventory_push_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let shop = InventoryShopify::start().await;
    shop.add_items(10_000..11_000);
    // One call per second at most: the push of 1,000 rows takes about four seconds.
    let mut budget = slow_budget();
    budget.available = 0.0;
    *shop.state.budget.lock().unwrap() = Some(budget);
    let addr = free_addr();
    let o = Options { shopify_url: Some(shop.url()), push_schedule: "*/1 * * * * *", ..Options::default() };
    let config = write_config(dir.path(), addr, &wms.url(), &shop.url(), &o);
    let mut daemon = start(&config, addr).await;
    let csv = dir.path().join("listings.csv");
    let lines: String = (0..1000).map(|i| format!("SKU-{i},{}\n", 10_000 + i)).collect();
    std::fs::write(&csv, format!("channelSkuCode,channelSerialNo\n{lines}")).unwrap();
    let (ok, _, err) = run_cli(&config, &["listings", "import", csv.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let client = reqwest::Client::new();
    for call in 0..5 {
        let rows: Vec<serde_json::Value> = (call * 200..(call + 1) * 200)
            .map(|i| serde_json::json!({ "channelSkuCode": format!("SKU-{i}"), "quantity": 7 }))
            .collect();
        let body = serde_json::json!({ "locationCode": "WH-INV", "inventories": rows });
        let (status, _) = wms_request(&client, addr, Method::PUT, "/wms/inventory", &body).await;
        assert!(status.is_success());
    }
    // Killed once the push is under way but not finished.
    for _ in 0..1000 {
        if !shop.applied_calls().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    assert!(shop.applied_calls().len() < 4, "the kill came before the push finished");

    let mut daemon = start(&config, addr).await;
    for _ in 0..1500 {
        if (10_000..11_000).all(|i| shop.level(i, INVENTORY_LOCATION_ID) == Some(7)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        (10_000..11_000).all(|i| shop.level(i, INVENTORY_LOCATION_ID) == Some(7)),
        "every row pushed after the restart"
    );
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

/// A bucket of 20 points refilling at 10 per second, 10 points a call.
fn slow_budget() -> crate::shopify_inventory_fake::Budget {
    crate::shopify_inventory_fake::Budget::new(20.0, 10.0, 10.0)
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_pending_work_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    wms.set(|b| b.fail_next = 1_000);
    let addr = free_addr();
    let config = write_config(
        dir.path(),
        addr,
        &wms.url(),
        "http://127.0.0.1:9",
        &Options { routing: "wms", max_attempts: 100, ..Options::default() },
    );
    let daemon = start(&config, addr).await;
    let client = reqwest::Client::new();
    for id in 1..=20 {
        assert!(post_order(&client, addr, id).await);
    }
    let pid = daemon.id().unwrap();
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let out = daemon.wait_with_output().await.unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(wms.created().is_empty());

    wms.set(|b| b.fail_next = 0);
    let mut daemon = start(&config, addr).await;
    for _ in 0..500 {
        if wms.created().len() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(wms.created().len(), 20, "work queued before the stop resumes by itself");
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_cleanly_and_loses_nothing() {
    const ORDERS: u64 = 600;
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    wms.set(|b| b.delay = Duration::from_millis(5));
    let addr = free_addr();
    let o = Options { routing: "wms", max_attempts: 50, ..Options::default() };
    let config = write_config(dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &o);
    let daemon = start(&config, addr).await;

    let load = Load::until_half(addr, 20_000, ORDERS).await;
    // Stopped the way systemd stops it, with webhooks still arriving and deliveries in flight.
    let pid = daemon.id().unwrap();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let out = tokio::time::timeout(Duration::from_secs(20), daemon.wait_with_output())
        .await
        .expect("channeld stops within 20 s of SIGTERM")
        .unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let acked = load.finish().await;
    eprintln!("stopped: {} acknowledged, {} created at the WMS", acked.len(), wms.created().len());

    let mut daemon = start(&config, addr).await;
    let created = all_delivered(&config, &wms, &acked).await;
    // A clean stop lets calls in flight finish and records them: no creation is sent twice.
    let posts = wms.calls_to("POST", "/orders/outward").len();
    assert_eq!(posts, created.len(), "each order is sent to the WMS once");
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}
