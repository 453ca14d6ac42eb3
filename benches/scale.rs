//! Scale: start-up time and resident memory of `channeld serve` over a store holding N orders of
//! real size, all within the retention, against the same binary over an empty store in the same
//! run.
//!
//!     cargo bench --bench scale                 # N = 1,000,000
//!     cargo bench --bench scale -- 200000       # another N
//!     cargo bench --bench scale -- --retention  # a year of N orders pruned to the 90-day retention:
//!                                               # what is kept, disk and memory before and after
//!     cargo bench --bench scale -- --console    # the operator console over the same N orders: median
//!                                               # and 95th-percentile answer times of its pages

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use channeld::flows::intake::{self, Change};
use channeld::flows::model::OrderStatus;
use channeld::flows::shopify_order::ShopifyOrder;
use channeld::flows::OrderRules;
use channeld::store::Store;

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    config_kept(dir, port, 90)
}

fn config_kept(dir: &Path, port: u16, retention_days: u32) -> std::path::PathBuf {
    let path = dir.join("scale.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{}"
cache_capacity_mb = 64
retention_days = {retention_days}
[log]
level = "error"
[shopify]
shop = "scale"
access_token = "shpat_scale"
webhook_secret = "s"
base_url = "http://127.0.0.1:9"
[wms]
base_url = "http://127.0.0.1:9"
[orders]
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
    path
}

/// Fills the store with `n` orders sent to the WMS, received evenly over the last 89 days (all of
/// them within the default 90-day retention, so all are kept whole): each the fixture order (5
/// lines) as intake maps it, so every record is as large as a real one; then prunes as the running
/// daemon would have (webhook ids older than 7 days). Raw bodies are in journal segments, which a
/// start reads only the newest of: none are written here.
fn populate(dir: &Path, n: u64) {
    populate_with(dir, n, None)
}

/// [`populate`], with every `rejected_every`-th order rejected for two reasons instead (the
/// console's status filter then has something to find among the rest).
fn populate_with(dir: &Path, n: u64, rejected_every: Option<u64>) {
    const DAY: i64 = 86_400_000;
    let store = Store::open(&dir.join("store"), 64).unwrap();
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp_millis();
    let step = 89 * DAY / n as i64;
    let template = fixture_record(now);
    for id in 1..=n {
        let at = now - (n - id) as i64 * step;
        store
            .record_event("orders/create", Some(&format!("e{id}")), id, at, |_| {
                let mut record = template.clone();
                (record.id, record.name, record.first_seen_ms, record.changed_ms) = (id, format!("#{id}"), at, at);
                record.status = OrderStatus::Sent;
                record.wms_created = true;
                if rejected_every.is_some_and(|every| id % every == 0) {
                    record.status = OrderStatus::Rejected;
                    record.wms_created = false;
                    record.reasons = vec!["shipping address is missing".into(), "line item 1 has no SKU".into()];
                }
                Change { record, tasks: Vec::new(), outcome: "queued", not_forwarded: Vec::new() }
            })
            .unwrap();
        if id % 200_000 == 0 {
            eprintln!("  {id} orders stored ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    let pruned = store.prune(now - 7 * DAY, now - 90 * DAY, true).unwrap();
    store.close().unwrap();
    eprintln!("  pruned {pruned} expired entries; store on disk: {:.0} MB", store.size_on_disk() as f64 / 1e6);
}

/// A year of `n` orders, each delivered, handed over a day later and archived: the state a
/// store that never pruned finished records would be in after a year.
fn populate_year(dir: &Path, n: u64, now: i64) {
    const DAY: i64 = 86_400_000;
    let store = Store::open(&dir.join("store"), 64).unwrap();
    let started = Instant::now();
    let step = 365 * DAY / n as i64;
    let template = fixture_record(now);
    for id in 1..=n {
        let at = now - (n - id) as i64 * step;
        store
            .record_event("orders/create", Some(&format!("e{id}")), id, at, |_| {
                let mut record = template.clone();
                (record.id, record.name, record.first_seen_ms, record.changed_ms) = (id, format!("#{id}"), at, at);
                record.status = OrderStatus::Sent;
                record.wms_created = true;
                Change { record, tasks: Vec::new(), outcome: "queued", not_forwarded: Vec::new() }
            })
            .unwrap();
        store.record_handover(id, "WH-1", &format!("s{id}"), at + DAY).unwrap();
        store.set_archive_outcome(id, Ok(at + DAY)).unwrap();
        if id % 200_000 == 0 {
            eprintln!("  {id} orders stored ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    store.close().unwrap();
}

/// The fixture order (5 lines) as intake maps it.
fn fixture_record(now: i64) -> channeld::flows::model::OrderRecord {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/shopify/order_450789469_get_2025-10.json")).unwrap();
    let order: ShopifyOrder = serde_json::from_value(fixture["order"].clone()).unwrap();
    let rules: channeld::config::Orders =
        toml::from_str("since = \"2000-01-01T00:00:00Z\"\nrouting = \"wms\"").unwrap();
    let rules = OrderRules::new(&rules, 0);
    let record = intake::apply(None, intake::Topic::Create, order.id, Ok(&order), &rules, now).record;
    assert!(record.wms.is_some(), "the fixture order is accepted");
    record
}

/// Bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => disk_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// `--retention`: a year of orders, then the daemon's pruning with the default 90 days.
async fn retention(n: u64) {
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    eprintln!("storing a year of {n} orders...");
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || populate_year(&path, n, now)).await.unwrap();
    let store_dir = dir.path().join("store");
    let port = free_port();
    // Before: a retention longer than the data, so the daemon's own pruning removes nothing.
    let before_disk = disk_bytes(&store_dir);
    let (_, rss_before, _) = start_and_measure(&config_kept(dir.path(), port, 3650), port).await;
    let path = store_dir.clone();
    let (pruned, took, kept) = tokio::task::spawn_blocking(move || {
        let store = Store::open(&path, 64).unwrap();
        let t0 = Instant::now();
        let pruned = store.prune(now - 7 * DAY, now - 90 * DAY, true).unwrap();
        let took = t0.elapsed().as_secs_f64();
        let kept: usize = store.order_counts().unwrap().iter().map(|(_, k)| k).sum();
        store.close().unwrap();
        (pruned, took, kept)
    })
    .await
    .unwrap();
    let after_disk = disk_bytes(&store_dir);
    let (_, rss_after, _) = start_and_measure(&config_kept(dir.path(), port, 90), port).await;
    let expected = n * 90 / 365;
    println!(
        "retention: {n} orders over 365 days (each delivered, handed over and archived), storage.retention_days = 90"
    );
    println!("  pruning removed {pruned} entries in {took:.1} s; orders kept: {kept} (those of the last 90 days: about {expected})");
    println!("  store on disk: {:.0} MB before, {:.0} MB after", before_disk as f64 / 1e6, after_disk as f64 / 1e6);
    println!("  resident memory 2 s after start: {rss_before:.0} MB before, {rss_after:.0} MB after");
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts the daemon and returns (seconds until /readyz answers, RSS in MB two seconds later,
/// RSS in MB after a /metrics scrape).
async fn start_and_measure(config: &Path, port: u16) -> (f64, f64, f64) {
    let started = Instant::now();
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_channeld"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not ready after 2 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = started.elapsed().as_secs_f64();
    // Let the workers' first passes run (the hourly pruning starts with a pass over every order).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_kb(child.id()) as f64 / 1024.0;
    // A scrape counts orders by status: another pass over every order.
    let _ = client.get(format!("http://127.0.0.1:{port}/metrics")).send().await;
    let rss_scraped = rss_kb(child.id()) as f64 / 1024.0;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    (ready, rss, rss_scraped)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What a page of the console bench asks for next.
type NextPath = Box<dyn FnMut() -> String>;

/// The console's password in `--console`.
const CONSOLE_PASSWORD: &str = "bench-console";

/// `--console`: the operator console over `n` stored orders (every 50th rejected), on the real
/// binary: each page fetched `ROUNDS` times after a warm-up, logged in as a browser would be.
async fn console(n: u64) {
    const ROUNDS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    eprintln!("storing {n} orders (every 50th rejected)...");
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || populate_with(&path, n, Some(50))).await.unwrap();
    let (port, console_port) = (free_port(), free_port());
    let config = config(dir.path(), port);
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!("[console]\nlisten = \"127.0.0.1:{console_port}\"\npassword = \"{CONSOLE_PASSWORD}\"\n");
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_channeld"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{console_port}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let session = console_login(&http, &base).await;
    let get = |path: String| {
        let req = http.get(format!("{base}{path}")).header("cookie", format!("channeld_session={session}"));
        async move {
            let t0 = Instant::now();
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap();
            assert!(status.is_success() || status.is_redirection(), "{path}: {status}");
            (t0.elapsed().as_secs_f64() * 1000.0, body)
        }
    };
    // Random orders and pages at random depths: mostly outside sled's cache, as an operator's
    // clicks through a large store would be.
    let random = |seed: u64| {
        let mut rng = seed;
        move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            1 + rng % n
        }
    };
    let (mut order_id, mut page_at, mut name) =
        (random(0x9e37_79b9_7f4a_7c15), random(0x2545_f491_4f6c_dd1d), random(0xd1b5_4a32_d192_ed03));
    let pages: Vec<(&str, NextPath)> = vec![
        ("orders page (newest 50)", Box::new(|| "/orders".to_string())),
        ("orders page, status = rejected", Box::new(|| "/orders?status=rejected".to_string())),
        (
            "orders page at a random depth",
            Box::new(move || {
                let at = page_at();
                format!("/orders?before={}-{at}", deep_cursor_ms(n, at))
            }),
        ),
        ("an order's page (random id)", Box::new(move || format!("/orders/{}", order_id()))),
        ("search by #name (answers a redirect)", Box::new(move || format!("/orders?q=%23{}", name()))),
        ("overview", Box::new(|| "/".to_string())),
    ];
    println!("console: {n} stored orders (every 50th rejected), sled cache 64 MB; {ROUNDS} requests per page after 10 warm-up");
    println!("  {:<40} {:>10} {:>10} {:>10}", "page", "median ms", "p95 ms", "max ms");
    for (name, mut path) in pages {
        for _ in 0..10 {
            get(path()).await;
        }
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            times.push(get(path()).await.0);
        }
        times.sort_by(f64::total_cmp);
        let (median, p95, max) = (times[ROUNDS / 2], times[ROUNDS * 95 / 100], times[ROUNDS - 1]);
        println!("  {name:<40} {median:>10.2} {p95:>10.2} {max:>10.2}");
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// When order `id` of `n` was first seen in [`populate`] (the store's cursor is that time and
/// the id).
fn deep_cursor_ms(n: u64, id: u64) -> i64 {
    // `populate` spaced the orders `step` apart, ending now; the cursor needs only to fall
    // between two orders' times, so an estimate from the same formula is enough.
    const DAY: i64 = 86_400_000;
    let step = 89 * DAY / n as i64;
    chrono::Utc::now().timestamp_millis() - (n - id) as i64 * step
}

/// Logs in to the console at `base` as a browser does; returns the session token.
async fn console_login(http: &reqwest::Client, base: &str) -> String {
    let started = Instant::now();
    let form = loop {
        if let Ok(r) = http.get(format!("{base}/login")).send().await {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the console did not answer within 5 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cookie = form.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let html = form.text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[at..].split('"').next().unwrap().to_string();
    let body = format!("csrf={csrf}&username=admin&password={CONSOLE_PASSWORD}");
    let answer = http
        .post(format!("{base}/login"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let session = answer.headers().get_all("set-cookie").iter().find_map(|c| {
        let c = c.to_str().ok()?;
        c.strip_prefix("channeld_session=").map(|rest| rest.split(';').next().unwrap_or("").to_string())
    });
    session.expect("logged in")
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    if std::env::args().any(|a| a == "--retention") {
        return retention(n).await;
    }
    if std::env::args().any(|a| a == "--console") {
        return console(n).await;
    }
    let empty = tempfile::tempdir().unwrap();
    let full = tempfile::tempdir().unwrap();
    let (pe, pf) = (free_port(), free_port());
    let (ce, cf) = (config(empty.path(), pe), config(full.path(), pf));
    eprintln!("storing {n} orders...");
    let dir = full.path().to_path_buf();
    tokio::task::spawn_blocking(move || populate(&dir, n)).await.unwrap();
    let (mut ready_e, mut rss_e, mut ready_f, mut rss_f) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut scraped_e, mut scraped_f) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (r, m, s) = start_and_measure(&ce, pe).await;
        ready_e.push(r);
        rss_e.push(m);
        scraped_e.push(s);
        let (r, m, s) = start_and_measure(&cf, pf).await;
        ready_f.push(r);
        rss_f.push(m);
        scraped_f.push(s);
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (re, rf, me, mf) = (med(ready_e), med(ready_f), med(rss_e), med(rss_f));
    println!("scale: {n} stored orders, sled cache 64 MB; medians of 3 starts each");
    println!("  start-up to /readyz: {rf:.3} s (empty store: {re:.3} s; ratio {:.2})", rf / re);
    println!("  resident memory 2 s after start: {mf:.0} MB (empty store: {me:.0} MB; ratio {:.2})", mf / me);
    let (se, sf) = (med(scraped_e), med(scraped_f));
    println!("  resident memory after one /metrics scrape: {sf:.0} MB (empty store: {se:.0} MB; ratio {:.2})", sf / se);
}
