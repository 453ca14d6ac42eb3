//! Webhook ingest: signed `orders/create` deliveries against the real server with durable
//! acknowledgement (group commit), at concurrency 1, 16 and 64, for a 5-line and a 50-line order.
//! The baseline, measured in the same run, is a bare handler on the same stack that only verifies
//! the HMAC and parses the order. Also: end-to-end latency, webhook sent → fake WMS received.
//!
//!     cargo bench --bench webhook_ingest              # 3 rounds per cell
//!     cargo bench --bench webhook_ingest -- 5         # more rounds
//!
//! The load generator runs in the same process as the server, on the same 2 cores.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use channeld::config::Config;
use channeld::shopify::order::parse_webhook_body;
use channeld::shopify::webhook::{sign, verify};
use channeld::store::Store;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

// The daemon's allocator (src/main.rs), so the in-process server runs as `channeld serve` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "bench-secret";
const SHOP: &str = "bench.myshopify.com";

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A WMS that accepts every order and notes when each arrived.
async fn fake_wms(arrivals: Arrivals) -> SocketAddr {
    let app = axum::Router::new()
        .fallback(|State(a): State<Arrivals>, body: Bytes| async move {
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                if let Some(code) = v["orderCode"].as_str() {
                    a.lock().unwrap().entry(code.to_string()).or_insert_with(Instant::now);
                }
            }
            "{\"hasError\":false}"
        })
        .with_state(arrivals);
    serve(app).await
}

/// The baseline: verify the signature and parse the order, nothing stored.
async fn bare_handler() -> SocketAddr {
    let app = axum::Router::new().route(
        "/shopify/api/push/orders",
        axum::routing::post(|headers: HeaderMap, body: Bytes| async move {
            let sig = headers.get("X-Shopify-Hmac-Sha256").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !verify(SECRET, "", &body, sig) {
                return StatusCode::UNAUTHORIZED;
            }
            match parse_webhook_body(&body) {
                Some(_) => StatusCode::OK,
                None => StatusCode::BAD_REQUEST,
            }
        }),
    );
    serve(app).await
}

async fn channeld_server(dir: &std::path::Path, wms: SocketAddr) -> (SocketAddr, CancellationToken) {
    let path = dir.join("bench.toml");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "{addr}"
[storage]
path = "{}"
[log]
level = "error"
[shopify]
shop = "bench"
access_token = "shpat_bench"
webhook_secret = "{SECRET}"
base_url = "http://127.0.0.1:9"
[wms]
base_url = "http://{wms}"
[orders]
since = "2000-01-01T00:00:00Z"
routing = "wms"
[inventory]
push_schedule = "0 0 0 1 1 *"
[jobs]
reconcile_schedule = "0 0 0 1 1 *"
"#,
            dir.join("store").display()
        ),
    )
    .unwrap();
    let cfg = Config::load(&path).unwrap();
    let store = Store::open(&cfg.storage.path, cfg.storage.cache_capacity_mb).unwrap();
    let app = channeld::services::open(cfg, store).unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(channeld::server::run(app, listener, shutdown.clone()));
    let client = reqwest::Client::new();
    while client.get(format!("http://{addr}/readyz")).send().await.map(|r| !r.status().is_success()).unwrap_or(true) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (addr, shutdown)
}

/// The fixture order with `lines` shippable lines, under `id`.
fn order(template: &Value, lines: usize, id: u64) -> Vec<u8> {
    let mut o = template.clone();
    o["id"] = id.into();
    o["name"] = format!("#{id}").into();
    let line = template["line_items"][1].clone();
    o["line_items"] = (0..lines)
        .map(|i| {
            let mut l = line.clone();
            l["id"] = (id * 100 + i as u64).into();
            l["sku"] = format!("SKU-{i}").into();
            l
        })
        .collect::<Vec<_>>()
        .into();
    serde_json::to_vec(&o).unwrap()
}

/// One webhook delivery as Shopify makes it; it must be answered 200.
async fn post_signed(client: &reqwest::Client, url: String, body: Vec<u8>, sig: String, event_id: String) {
    let resp = client
        .post(url)
        .header("X-Shopify-Hmac-Sha256", sig)
        .header("X-Shopify-Shop-Domain", SHOP)
        .header("X-Shopify-Event-Id", event_id)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

struct Round {
    per_second: f64,
    latencies: Vec<Duration>,
    sent_at: HashMap<String, Instant>,
}

/// Sends `count` distinct orders starting at `first_id` with `concurrency` requests in flight.
async fn load(
    addr: SocketAddr,
    template: &Value,
    lines: usize,
    first_id: u64,
    count: usize,
    concurrency: usize,
) -> Round {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let bodies: Vec<(u64, Vec<u8>, String)> = (0..count as u64)
        .map(|i| {
            let body = order(template, lines, first_id + i);
            let sig = sign(SECRET, &body);
            (first_id + i, body, sig)
        })
        .collect();
    let permits = Arc::new(Semaphore::new(concurrency));
    let results = Arc::new(Mutex::new((Vec::with_capacity(count), HashMap::new())));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for (id, body, sig) in bodies {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (client, results) = (client.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            post_signed(&client, format!("http://{addr}/shopify/api/push/orders"), body, sig, format!("e-{id}")).await;
            let took = t0.elapsed();
            let mut r = results.lock().unwrap();
            r.0.push(took);
            r.1.insert(id.to_string(), t0);
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let wall = started.elapsed().as_secs_f64();
    let (latencies, sent_at) = std::mem::take(&mut *results.lock().unwrap());
    Round { per_second: count as f64 / wall, latencies, sent_at }
}

/// Sends `count` orders at `rate` per second to `path` (one at a time, on a fixed schedule) and
/// returns, sorted, how long each took to arrive at the fake WMS.
async fn paced(
    addr: SocketAddr,
    path: &str,
    template: &Value,
    first_id: u64,
    count: usize,
    rate: u64,
    arrivals: &Arrivals,
) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = Vec::with_capacity(count);
    let mut tasks = Vec::with_capacity(count);
    for id in first_id..first_id + count as u64 {
        let mut body = order(template, 5, id);
        if path == "/orders/outward" {
            // Straight to the WMS: the body it would receive (only orderCode matters to the fake).
            body = serde_json::to_vec(&serde_json::json!({ "orderCode": id.to_string() })).unwrap();
        }
        let sig = sign(SECRET, &body);
        ticker.tick().await;
        sent.push((id.to_string(), Instant::now()));
        let (client, url) = (client.clone(), format!("http://{addr}{path}"));
        tasks.push(tokio::spawn(async move {
            post_signed(&client, url, body, sig, format!("p-{id}")).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if sent.iter().all(|(k, _)| arrivals.lock().unwrap().contains_key(k)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let have = arrivals.lock().unwrap();
    let mut out: Vec<Duration> =
        sent.iter().filter_map(|(k, t0)| have.get(k).map(|t1| t1.duration_since(*t0))).collect();
    assert_eq!(out.len(), count, "every paced order must arrive at the WMS");
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3);
    let fixture: Value =
        serde_json::from_str(include_str!("../tests/fixtures/shopify/order_450789469_get_2025-10.json")).unwrap();
    let template = fixture["order"].clone();
    let arrivals: Arrivals = Arc::default();
    let wms = fake_wms(arrivals.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (server, shutdown) = channeld_server(dir.path(), wms).await;
    let bare = bare_handler().await;
    let mut next_id = 1_000_000u64;
    let mut sent_to_server = 0usize;

    println!("webhook ingest, {rounds} round(s) per cell; medians over rounds (spread min..max of throughput)");
    println!(
        "{:<8} {:>5} {:>12} {:>16} {:>9} {:>9} {:>10} {:>14}",
        "order", "conc", "durable/s", "(spread)", "p50 ms", "p99 ms", "p99.9 ms", "vs baseline"
    );
    let mut e2e: Vec<Duration> = Vec::new();
    for lines in [5usize, 50] {
        for conc in [1usize, 16, 64] {
            let count = if conc == 1 { 1000 } else { 5000 };
            let (mut real, mut base) = (Vec::new(), Vec::new());
            let mut lat = Vec::new();
            for _ in 0..rounds {
                let b = load(bare, &template, lines, next_id, count, conc).await;
                next_id += count as u64;
                base.push(b.per_second);
                let r = load(server, &template, lines, next_id, count, conc).await;
                next_id += count as u64;
                sent_to_server += count;
                real.push(r.per_second);
                lat.extend(r.latencies);
                if lines == 5 && conc == 16 {
                    // End to end: wait for the WMS to have every order of this round.
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while Instant::now() < deadline {
                        let all_there = {
                            let have = arrivals.lock().unwrap();
                            r.sent_at.keys().all(|k| have.contains_key(k))
                        };
                        if all_there {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let have = arrivals.lock().unwrap();
                    e2e.extend(r.sent_at.iter().filter_map(|(k, t0)| have.get(k).map(|t1| t1.duration_since(*t0))));
                }
            }
            lat.sort();
            let spread = format!(
                "{:.0}..{:.0}",
                real.iter().cloned().fold(f64::MAX, f64::min),
                real.iter().cloned().fold(0.0, f64::max)
            );
            let (m, mb) = (median(real), median(base));
            println!(
                "{:<8} {:>5} {:>12.0} {:>16} {:>9.2} {:>9.2} {:>10.2} {:>13.2}x",
                format!("{lines}-line"),
                conc,
                m,
                spread,
                pct(&lat, 0.50),
                pct(&lat, 0.99),
                pct(&lat, 0.999),
                m / mb
            );
        }
    }
    e2e.sort();
    if !e2e.is_empty() {
        println!(
            "end to end at saturation (5-line, concurrency 16, as fast as acknowledged): p50 {:.2} ms, p99 {:.2} ms over {} orders",
            pct(&e2e, 0.5),
            pct(&e2e, 0.99),
            e2e.len()
        );
    }
    // End to end at a steady rate the outbox keeps up with: the pipeline's own latency, not a
    // backlog's. Baseline: the same order posted straight to the fake WMS (one HTTP hop).
    // The saturated cells leave a backlog in the outbox: let it drain first, so the paced orders
    // measure the pipeline and not the tail of that queue.
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.lock().unwrap().len() < sent_to_server && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("end to end at a steady rate (5-line; webhook sent -> WMS received), medians over rounds:");
    for rate in [50u64, 200] {
        let (mut p50, mut p99, mut b50, mut b99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let n = rate as usize * 5;
            let direct = paced(wms, "/orders/outward", &template, next_id, n, rate, &arrivals).await;
            next_id += n as u64;
            let through = paced(server, "/shopify/api/push/orders", &template, next_id, n, rate, &arrivals).await;
            next_id += n as u64;
            p50.push(pct(&through, 0.5));
            p99.push(pct(&through, 0.99));
            b50.push(pct(&direct, 0.5));
            b99.push(pct(&direct, 0.99));
        }
        let (p50, p99, b50, b99) = (median(p50), median(p99), median(b50), median(b99));
        println!(
            "  {rate:>4} orders/s: p50 {p50:.2} ms, p99 {p99:.2} ms; straight to the WMS p50 {b50:.2} ms, p99 {b99:.2} ms (ratio p99 {:.1}x)",
            p99 / b99
        );
    }
    shutdown.cancel();
}
