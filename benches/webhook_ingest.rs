//! Webhook ingest with durable acknowledgements, measured from outside: the real `channeld serve`
//! binary runs in its own process, and this process is the load generator (and the fake WMS the
//! outbox delivers to). The baseline, in the same run, is a bare server in a third process on the
//! same HTTP stack and allocator that only verifies the HMAC and parses the order.
//!
//!     cargo bench --bench webhook_ingest                   # 3 rounds per cell, 60 s sustained runs
//!     cargo bench --bench webhook_ingest -- 5 --sustain 90 # more rounds, longer sustained runs
//!
//! What it prints (each figure beside the baseline it is read against):
//! - the cost of one `fdatasync` on the store's disk (median, p99), so the rest can be read;
//! - durable acknowledgements per second and latency at concurrency 1, 16 and 64, for a 5-line and
//!   a 50-line order, and the ratio to the baseline;
//! - sustained intake *with* delivery to the WMS: the highest rate at which the outbox keeps up
//!   over at least 60 s (its backlog at the end at most two seconds' worth);
//! - end to end (webhook sent → WMS received) at 50 and 200 orders per second;
//! - the daemon's peak resident memory.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use channeld::flows::shopify_order::parse_webhook_body;
use channeld::shopify::webhook::{sign, verify};
use serde_json::Value;
use tokio::sync::Semaphore;

// The daemon's allocator (src/main.rs), for the baseline server this binary also runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "bench-secret";
const SHOP: &str = "bench.myshopify.com";
/// Set on the child process that runs the baseline server.
const ROLE: &str = "CHANNELD_BENCH_BASELINE_PORT";

type Arrivals = Arc<Mutex<HashMap<u64, Instant>>>;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn serve(app: axum::Router, port: u16) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The baseline: verify the signature and parse the order, nothing stored.
async fn run_baseline(port: u16) {
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
    serve(app, port).await;
    std::future::pending::<()>().await;
}

/// A WMS that accepts every order and notes when each first arrived.
async fn fake_wms(arrivals: Arrivals) -> SocketAddr {
    let app = axum::Router::new()
        .fallback(|State(a): State<Arrivals>, body: Bytes| async move {
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                if let Some(code) = v["orderCode"].as_str().and_then(|c| c.parse().ok()) {
                    a.lock().unwrap().entry(code).or_insert_with(Instant::now);
                }
            }
            "{\"hasError\":false}"
        })
        .with_state(arrivals);
    serve(app, 0).await
}

/// A child process that is killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Child {
    /// Peak resident memory (VmHWM), in MB.
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0.0);
        kb / 1024.0
    }
}

fn start_baseline() -> (Child, SocketAddr) {
    let port = free_port();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ROLE, port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (Child(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

fn start_channeld(dir: &Path, wms: SocketAddr) -> (Child, SocketAddr) {
    let port = free_port();
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
# The open-loop runs keep up to 512 requests in flight: room for all of them.
max_connections = 1024
max_concurrent_requests = 1024
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
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_channeld"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (Child(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

async fn wait_ready(addr: SocketAddr, path: &str) {
    let client = reqwest::Client::new();
    for _ in 0..3000 {
        if let Ok(r) = client.post(format!("http://{addr}{path}")).send().await {
            if r.status() != StatusCode::NOT_FOUND {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{addr} did not start");
}

/// Signed bodies of the fixture order with a given number of shippable lines, made on demand from a
/// template (the id and name substituted), so no run holds thousands of bodies in memory.
#[derive(Clone)]
struct Bodies(Arc<String>);

/// Stands for the order id in the template.
const ID_MARK: &str = "987654321987";

impl Bodies {
    fn new(template: &Value, lines: usize) -> Self {
        let mut o = template.clone();
        o["id"] = ID_MARK.parse::<u64>().unwrap().into();
        o["name"] = format!("#{ID_MARK}").into();
        let line = template["line_items"][1].clone();
        o["line_items"] = (0..lines)
            .map(|i| {
                let mut l = line.clone();
                l["id"] = (1_000 + i as u64).into();
                l["sku"] = format!("SKU-{i}").into();
                l
            })
            .collect::<Vec<_>>()
            .into();
        Self(Arc::new(serde_json::to_string(&o).unwrap()))
    }

    fn signed(&self, id: u64) -> (Vec<u8>, String) {
        let body = self.0.replace(ID_MARK, &id.to_string()).into_bytes();
        let sig = sign(SECRET, &body);
        (body, sig)
    }
}

/// One webhook delivery as Shopify makes it; it must be answered 200.
async fn post_signed(client: &reqwest::Client, addr: SocketAddr, id: u64, body: Vec<u8>, sig: String) {
    let resp = client
        .post(format!("http://{addr}/shopify/api/push/orders"))
        .header("X-Shopify-Hmac-Sha256", sig)
        .header("X-Shopify-Shop-Domain", SHOP)
        .header("X-Shopify-Event-Id", format!("e-{id}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "order {id}");
}

/// Sends orders `ids` with `concurrency` requests in flight (closed loop); returns requests per
/// second and each request's latency.
async fn closed_loop(
    addr: SocketAddr,
    bodies: &Bodies,
    ids: std::ops::Range<u64>,
    concurrency: usize,
) -> (f64, Vec<Duration>) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let permits = Arc::new(Semaphore::new(concurrency));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (client, latencies, bodies) = (client.clone(), latencies.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let (body, sig) = bodies.signed(id);
            let t0 = Instant::now();
            post_signed(&client, addr, id, body, sig).await;
            latencies.lock().unwrap().push(t0.elapsed());
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (ids.end - ids.start) as f64 / started.elapsed().as_secs_f64();
    let mut l = std::mem::take(&mut *latencies.lock().unwrap());
    l.sort();
    (rate, l)
}

/// What an open-loop run at a fixed rate saw.
struct Paced {
    /// When each order was sent.
    sent: Vec<(u64, Instant)>,
    /// Orders sent but not yet at the WMS when sending stopped.
    backlog_at_end: usize,
}

/// Sends orders `first..` at `rate` per second for `secs` seconds, on a schedule that does not
/// wait for answers (as Shopify does not), at most 512 in flight.
async fn open_loop(addr: SocketAddr, bodies: &Bodies, first: u64, rate: u64, secs: u64, arrivals: &Arrivals) -> Paced {
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build().unwrap();
    let count = rate * secs;
    let permits = Arc::new(Semaphore::new(512));
    let tick = Duration::from_millis(10);
    let per_tick = (rate as f64 / 100.0).max(1.0);
    let started = Instant::now();
    let mut sent = Vec::with_capacity(count as usize);
    let mut tasks = Vec::with_capacity(count as usize);
    let mut due = 0.0f64;
    let mut n = 0u64;
    'outer: loop {
        due += per_tick;
        while (n as f64) < due {
            if n == count {
                break 'outer;
            }
            let id = first + n;
            let (body, sig) = bodies.signed(id);
            let permit = permits.clone().acquire_owned().await.unwrap();
            sent.push((id, Instant::now()));
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                post_signed(&client, addr, id, body, sig).await;
                drop(permit);
            }));
            n += 1;
        }
        let next = started + tick.mul_f64(due / per_tick);
        tokio::time::sleep_until(next.into()).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let have = arrivals.lock().unwrap();
    let backlog_at_end = sent.iter().filter(|(id, _)| !have.contains_key(id)).count();
    Paced { sent, backlog_at_end }
}

/// Waits until the WMS has every order in `ids` (at most `limit`); how long that took.
async fn drained(arrivals: &Arrivals, ids: impl Iterator<Item = u64> + Clone, limit: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ids.clone().all(|id| arrivals.lock().unwrap().contains_key(&id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Sorted end-to-end latencies (sent → at the WMS) of a paced run.
fn end_to_end(p: &Paced, arrivals: &Arrivals) -> Vec<Duration> {
    let have = arrivals.lock().unwrap();
    let mut out: Vec<Duration> =
        p.sent.iter().filter_map(|(id, t0)| have.get(id).map(|t1| t1.duration_since(*t0))).collect();
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median and p99 (ms) of one 4 KiB write + `fdatasync`, 500 times, in `dir`.
fn fdatasync_cost(dir: &Path) -> (f64, f64) {
    let path = dir.join("fdatasync-probe");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut took: Vec<Duration> = (0..500)
        .map(|_| {
            f.write_all(&[7u8; 4096]).unwrap();
            let t0 = Instant::now();
            f.sync_data().unwrap();
            t0.elapsed()
        })
        .collect();
    std::fs::remove_file(path).unwrap();
    took.sort();
    (pct(&took, 0.5), pct(&took, 0.99))
}

#[tokio::main]
async fn main() {
    if let Ok(port) = std::env::var(ROLE) {
        run_baseline(port.parse().unwrap()).await;
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(3);
    let sustain: u64 =
        args.iter().position(|a| a == "--sustain").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(60);
    let fixture: Value =
        serde_json::from_str(include_str!("../tests/fixtures/shopify/order_450789469_get_2025-10.json")).unwrap();
    let template = fixture["order"].clone();
    let (five, fifty) = (Bodies::new(&template, 5), Bodies::new(&template, 50));
    let dir = tempfile::tempdir().unwrap();

    let (sync_p50, sync_p99) = fdatasync_cost(dir.path());
    println!("one fdatasync of 4 KiB on the store's disk: median {sync_p50:.3} ms, p99 {sync_p99:.3} ms");

    let arrivals: Arrivals = Arc::default();
    let wms = fake_wms(arrivals.clone()).await;
    let (daemon, server) = start_channeld(dir.path(), wms);
    let (_baseline, bare) = start_baseline();
    wait_ready(server, "/shopify/api/push/orders").await;
    wait_ready(bare, "/shopify/api/push/orders").await;
    let mut next_id = 1_000_000u64;
    // The orders sent to channeld (the baseline's go nowhere), to wait for their delivery.
    let mut to_channeld: Vec<std::ops::Range<u64>> = Vec::new();

    println!("\ndurable acknowledgements, {rounds} round(s) per cell: medians (spread of throughput min..max)");
    println!(
        "{:<8} {:>5} {:>11} {:>14} {:>8} {:>8} {:>10} {:>12}",
        "order", "conc", "acks/s", "(spread)", "p50 ms", "p99 ms", "bare/s", "vs bare"
    );
    for (lines, bodies) in [(5, &five), (50, &fifty)] {
        for conc in [1usize, 16, 64] {
            let count = if conc == 1 { 1_000 } else { 6_000 } as u64;
            let (mut real, mut base, mut lat) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                let (b, _) = closed_loop(bare, bodies, next_id..next_id + count, conc).await;
                next_id += count;
                base.push(b);
                let (r, l) = closed_loop(server, bodies, next_id..next_id + count, conc).await;
                to_channeld.push(next_id..next_id + count);
                next_id += count;
                real.push(r);
                lat.extend(l);
            }
            lat.sort();
            let spread = format!(
                "{:.0}..{:.0}",
                real.iter().cloned().fold(f64::MAX, f64::min),
                real.iter().cloned().fold(0.0, f64::max)
            );
            let (m, mb) = (median(real), median(base));
            println!(
                "{:<8} {:>5} {:>11.0} {:>14} {:>8.2} {:>8.2} {:>10.0} {:>11.2}x",
                format!("{lines}-line"),
                conc,
                m,
                spread,
                pct(&lat, 0.50),
                pct(&lat, 0.99),
                mb,
                m / mb
            );
        }
    }
    let backlog = drained(&arrivals, to_channeld.iter().flat_map(|r| r.clone()), Duration::from_secs(900)).await;
    println!("(the outbox delivered the backlog of those runs in a further {:.1} s)", backlog.as_secs_f64());

    // Sustained intake with delivery: intake saturated for 20 s gives the delivery rate the outbox
    // manages; then open-loop runs of `sustain` seconds at rates around it find the highest rate
    // the outbox keeps up with (at most two seconds of backlog when sending stops).
    let probe_start = next_id;
    let (intake, _) = closed_loop(server, &five, next_id..next_id + 20_000, 64).await;
    next_id += 20_000;
    let t0 = Instant::now();
    drained(&arrivals, probe_start..next_id, Duration::from_secs(900)).await;
    // From the first order sent to the last one received.
    let delivered_per_s = 20_000.0 / (20_000.0 / intake + t0.elapsed().as_secs_f64());
    println!(
        "\nsustained, 5-line: saturated intake {intake:.0}/s; the WMS received them at about {delivered_per_s:.0}/s"
    );
    let mut kept_up = None;
    for factor in [0.9, 0.75, 0.6, 0.45, 0.3] {
        let rate = (delivered_per_s * factor).round().max(50.0) as u64;
        let run = open_loop(server, &five, next_id, rate, sustain, &arrivals).await;
        next_id += rate * sustain;
        let ok = run.backlog_at_end as u64 <= rate * 2;
        drained(&arrivals, run.sent.iter().map(|s| s.0), Duration::from_secs(600)).await;
        let e2e = end_to_end(&run, &arrivals);
        println!(
            "  {rate}/s for {sustain} s: backlog when sending stopped {} order(s); end to end p50 {:.1} ms, p99 {:.1} ms -> {}",
            run.backlog_at_end,
            pct(&e2e, 0.5),
            pct(&e2e, 0.99),
            if ok { "keeps up" } else { "falls behind" }
        );
        if ok {
            kept_up = Some(rate);
            break;
        }
    }
    match kept_up {
        Some(r) => println!("highest rate tried at which the outbox keeps up over {sustain} s: {r} orders/s"),
        None => println!("the outbox kept up with none of the rates tried"),
    }

    println!("\nend to end at a steady rate (5-line, webhook sent -> WMS received), medians over rounds:");
    for rate in [50u64, 200] {
        let (mut p50, mut p99) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let run = open_loop(server, &five, next_id, rate, 5, &arrivals).await;
            next_id += rate * 5;
            drained(&arrivals, run.sent.iter().map(|s| s.0), Duration::from_secs(60)).await;
            let e2e = end_to_end(&run, &arrivals);
            assert_eq!(e2e.len(), run.sent.len(), "every paced order must arrive");
            p50.push(pct(&e2e, 0.5));
            p99.push(pct(&e2e, 0.99));
        }
        println!("  {rate:>4} orders/s: p50 {:.2} ms, p99 {:.2} ms", median(p50), median(p99));
    }
    println!("\nchanneld peak resident memory over the whole run: {:.0} MB", daemon.peak_rss_mb());
}
