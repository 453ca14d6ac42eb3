//! Starting the real server in-process against fakes, and talking to it like Shopify does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use channeld::app::App;
use channeld::config::Config;
use channeld::shopify::webhook::sign;
use channeld::store::Store;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fakes::{FakeShopify, FakeWms};

pub const SECRET: &str = "test-webhook-secret";
pub const PREVIOUS_SECRET: &str = "previous-webhook-secret";
pub const SHOP: &str = "test-shop";
/// The location of the fulfillment-orders fixture, mapped to WH-1 in the test configuration.
pub const LOCATION_ID: u64 = 24826418;
/// A second mapped location, used by the inventory tests.
pub const INVENTORY_LOCATION_ID: u64 = 655441491;

pub struct Options {
    pub routing: &'static str,
    pub max_attempts: u32,
    pub max_body_bytes: usize,
    /// Far away by default: tests run the job step themselves.
    pub push_schedule: &'static str,
    pub reconcile_schedule: &'static str,
    pub archive: bool,
    pub archive_schedule: &'static str,
    pub provider: &'static str,
    pub answer_within_seconds: u64,
    /// Clickpost's and Shiprocket's base URL (default: the fake WMS, which answers anything).
    pub courier_url: Option<String>,
    /// The `[shopify]` credential lines.
    pub shopify_auth: &'static str,
    /// Another Shopify than the wiremock one (e.g. the stateful inventory fake).
    pub shopify_url: Option<String>,
    /// More `[server]` lines (the HTTP limits: timeouts, concurrency, body budget).
    pub server_extra: String,
    /// `wms.inbound_failure_delay_ms` / `inbound_failure_max_delay_ms`: small by default, so tests
    /// that fail authentication on purpose stay fast.
    pub auth_failure_delay_ms: u64,
    pub auth_failure_max_delay_ms: u64,
    /// `clickpost.api_key`: a distinctive one lets a test look for it in answers and logs.
    pub clickpost_api_key: &'static str,
    /// `[log]`: what the real binary writes to stderr (in-process servers log through the test's
    /// subscriber instead, see [`LogCapture`]).
    pub log_level: &'static str,
    pub log_format: &'static str,
    /// More sections at the end of the file (e.g. `[returns]`).
    pub extra_sections: String,
    /// `clickpost.webhook_key` and `shiprocket.webhook_token` (tracking).
    pub clickpost_webhook_key: &'static str,
    pub shiprocket_webhook_token: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            routing: "shopify",
            max_attempts: 5,
            max_body_bytes: 2 * 1024 * 1024,
            push_schedule: "0 0 0 1 1 *",
            reconcile_schedule: "0 0 0 1 1 *",
            archive: true,
            archive_schedule: "0 0 0 1 1 *",
            provider: "clickpost",
            answer_within_seconds: 30,
            courier_url: None,
            shopify_auth: "access_token = \"shpat_test\"",
            shopify_url: None,
            server_extra: String::new(),
            auth_failure_delay_ms: 1,
            auth_failure_max_delay_ms: 5,
            clickpost_api_key: "cp-key",
            log_level: "warn",
            log_format: "plain",
            extra_sections: String::new(),
            clickpost_webhook_key: "",
            shiprocket_webhook_token: "",
        }
    }
}

/// A configuration file for a daemon at `listen` using the given fakes, its store under `dir`.
pub fn write_config(dir: &Path, listen: SocketAddr, wms: &str, shopify: &str, o: &Options) -> PathBuf {
    let toml = format!(
        r#"
[server]
listen = "{listen}"
public_url = "https://connector.example.com"
max_body_bytes = {max_body}
{server_extra}

[storage]
path = "{store}"
cache_capacity_mb = 16

[log]
level = "{log_level}"
format = "{log_format}"

[shopify]
shop = "{SHOP}"
{shopify_auth}
webhook_secret = "{SECRET}"
previous_webhook_secret = "{PREVIOUS_SECRET}"
base_url = "{shopify}"

[wms]
base_url = "{wms}"
auth_username = "wms-user"
auth_password = "wms-pass"
auth_domain = "wms-domain"
inbound_username = "in-user"
inbound_password = "in-pass"
timeout_seconds = 5
auth_pause_seconds = 1
inbound_failure_delay_ms = {auth_delay}
inbound_failure_max_delay_ms = {auth_max_delay}

[orders]
since = "2000-01-01T00:00:00Z"
routing = "{routing}"

[[locations]]
shopify_location_id = {LOCATION_ID}
wms_location_code = "WH-1"

[[locations]]
shopify_location_id = {INVENTORY_LOCATION_ID}
wms_location_code = "WH-INV"

[inventory]
push_schedule = "{push_schedule}"

[shipping]
provider = "{provider}"
answer_within_seconds = {answer_within}

[clickpost]
username = "cp-user"
api_key = "{clickpost_api_key}"
base_url = "{courier}"
courier_partner = 3
webhook_key = "{clickpost_webhook_key}"

[shiprocket]
email = "ops@example.com"
password = "sr-pass"
base_url = "{courier}"
webhook_token = "{shiprocket_webhook_token}"

[handover]
archive = {archive}

[jobs]
reconcile_schedule = "{reconcile_schedule}"
archive_schedule = "{archive_schedule}"

[outbox]
max_attempts = {attempts}
initial_backoff_ms = 20
max_backoff_seconds = 1

{extra_sections}
"#,
        store = dir.join("store").display(),
        max_body = o.max_body_bytes,
        server_extra = o.server_extra,
        auth_delay = o.auth_failure_delay_ms,
        auth_max_delay = o.auth_failure_max_delay_ms,
        routing = o.routing,
        attempts = o.max_attempts,
        push_schedule = o.push_schedule,
        shopify_auth = o.shopify_auth,
        archive = o.archive,
        provider = o.provider,
        answer_within = o.answer_within_seconds,
        courier = o.courier_url.clone().unwrap_or_else(|| wms.to_string()),
        reconcile_schedule = o.reconcile_schedule,
        archive_schedule = o.archive_schedule,
        clickpost_api_key = o.clickpost_api_key,
        log_level = o.log_level,
        log_format = o.log_format,
        extra_sections = o.extra_sections,
        clickpost_webhook_key = o.clickpost_webhook_key,
        shiprocket_webhook_token = o.shiprocket_webhook_token,
    );
    let path = dir.join("channeld.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// The real server, in-process on 127.0.0.1, with a fake WMS and a fake Shopify.
pub struct TestApp {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub config_path: PathBuf,
    pub wms: FakeWms,
    pub shopify: FakeShopify,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    dir: Option<TempDir>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(o: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let wms = FakeWms::start().await;
        let shopify = FakeShopify::start(LOCATION_ID).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shopify_url = o.shopify_url.clone().unwrap_or_else(|| shopify.url());
        let config_path = write_config(dir.path(), addr, &wms.url(), &shopify_url, &o);
        let cfg = Config::load(&config_path).unwrap();
        let store = Store::open(&cfg.storage.path, cfg.storage.cache_capacity_mb).unwrap();
        let app = channeld::services::open(cfg, store).unwrap();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(channeld::server::run(app.clone(), listener, shutdown.clone()));
        Self {
            addr,
            app,
            config_path,
            wms,
            shopify,
            http: reqwest::Client::new(),
            shutdown,
            handle: Some(handle),
            dir: Some(dir),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Delivers a webhook signed like Shopify does.
    pub async fn deliver(&self, topic: &str, body: &Value, event_id: &str) -> StatusCode {
        let bytes = serde_json::to_vec(body).unwrap();
        self.deliver_raw(
            topic,
            &bytes,
            &[("X-Shopify-Event-Id", event_id.to_string()), ("X-Shopify-Hmac-Sha256", sign(SECRET, &bytes))],
        )
        .await
    }

    /// Delivers raw bytes with the shop domain and topic set, plus `headers`.
    pub async fn deliver_raw(&self, topic: &str, body: &[u8], headers: &[(&str, String)]) -> StatusCode {
        let path = match channeld::flows::intake::Topic::parse(topic) {
            Some(t) => t.path(),
            None => channeld::flows::returns::ReturnTopic::parse(topic).expect("a webhook topic").path(),
        };
        let mut req = self
            .http
            .post(self.url(path))
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Shop-Domain", format!("{SHOP}.myshopify.com"))
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().await.unwrap().status()
    }

    /// The directory holding this server's configuration and store.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// A call from the WMS, with its inbound credentials.
    pub async fn wms_call(&self, method: reqwest::Method, path: &str, body: &Value) -> (StatusCode, Value) {
        wms_request(&self.http, self.addr, method, path, body).await
    }

    /// The value of one series in `/metrics` (`name` or `name{label="value"}`, exactly as
    /// rendered); 0 when absent. The recorder is shared by every server in the test process, so
    /// compare a value before and after, never with a constant.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.http.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Waits until the outbox is empty: after that, nothing more will be sent.
    pub async fn drained(&self) {
        eventually("the outbox to drain", || {
            self.app.store.outbox_entries().unwrap().iter().all(|e| e.state == channeld::flows::model::EntryState::Dead)
        })
        .await;
    }

    /// Runs the real `channeld` binary against this server's configuration.
    pub async fn cli(&self, args: &[&str]) -> (bool, String, String) {
        run_cli(&self.config_path, args).await
    }

    /// Stops the server cleanly; the returned directory keeps the store and configuration.
    pub async fn cli_owned(&self, args: Vec<String>) -> (bool, String, String) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&self.config_path, &args).await
    }

    /// Waits (at most `within`) for a server that stops by itself, and returns how `run` ended.
    pub async fn stopped_by_itself(mut self, within: Duration) -> anyhow::Result<()> {
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(within, handle).await.expect("the server should have stopped by itself").unwrap()
    }

    pub async fn stop(mut self) -> TempDir {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
        self.dir.take().unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A call from the WMS to the daemon at `addr`, with its inbound credentials: status and JSON body.
pub async fn wms_request(
    client: &reqwest::Client,
    addr: SocketAddr,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let resp = client
        .request(method, format!("http://{addr}{path}"))
        .header("authUsername", "in-user")
        .header("authPassword", "in-pass")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The binary the tests run: this build's, unless `TEST_CHANNELD_BIN` names another (to show that a
/// test fails on an earlier build).
pub fn channeld_bin() -> std::path::PathBuf {
    std::env::var_os("TEST_CHANNELD_BIN").map(Into::into).unwrap_or_else(|| env!("CARGO_BIN_EXE_channeld").into())
}

pub async fn run_cli(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out =
        tokio::process::Command::new(channeld_bin()).args(args).arg("--config").arg(config).output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `cond` every 10 ms for up to 10 s.
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The fixture order `#1001` as a webhook carries it (the bare order object).
pub fn fixture_order() -> Value {
    let v: Value = serde_json::from_str(include_str!("../fixtures/shopify/order_450789469_get_2025-10.json")).unwrap();
    v["order"].clone()
}

/// The fixture order under another id and name (so many distinct orders can be sent).
pub fn order_numbered(id: u64) -> Value {
    let mut o = fixture_order();
    o["id"] = id.into();
    o["name"] = format!("#{id}").into();
    o
}

/// Log output captured in memory, as JSON lines, exactly as the daemon's subscriber writes them.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Captures this thread's events through channeld's own JSON subscriber with `directives`
    /// until the guard drops. Use it in a current-thread test (the default): the in-process
    /// server's tasks then run on this thread and log here.
    pub fn start(directives: &str) -> (Self, tracing::subscriber::DefaultGuard) {
        let out = Self::default();
        let writer = out.clone();
        let filter = channeld::telemetry::log_filter(directives).unwrap();
        let subscriber =
            channeld::telemetry::subscriber(channeld::config::LogFormat::Json, filter, move || writer.clone());
        (out, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The captured lines that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text().lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
    }
}
