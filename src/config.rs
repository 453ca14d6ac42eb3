//! Configuration: one TOML file plus `CHANNELD_<SECTION>__<KEY>` environment overrides, loaded
//! with figment into typed structs and validated once at start-up.
//!
//! Every key of CONTRACT.md §3 has a field here; unknown keys are refused by serde with the key's
//! name. Secrets are wrapped in [`Secret`], whose `Debug`, `Display` and `Serialize` never show
//! the value, so printing the effective configuration (`check-config`) cannot leak one.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize, Serializer};

/// Where the configuration comes from when `--config` is not given (CONTRACT.md §2).
pub fn default_config_path() -> PathBuf {
    if let Ok(p) = std::env::var("CHANNELD_CONFIG") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let etc = PathBuf::from("/etc/channeld/channeld.toml");
    if etc.exists() {
        etc
    } else {
        PathBuf::from("channeld.toml")
    }
}

/// A secret string: never printed, logged or serialized in clear.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The value itself: only for building an outbound request or a signature.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"********\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "********" })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub storage: Storage,
    #[serde(default)]
    pub log: Log,
    pub shopify: Shopify,
    pub wms: Wms,
    #[serde(default)]
    pub orders: Orders,
    #[serde(default)]
    pub locations: Vec<Location>,
    #[serde(default)]
    pub inventory: Inventory,
    #[serde(default)]
    pub outbox: Outbox,
    #[serde(default)]
    pub cancellation: Cancellation,
    #[serde(default)]
    pub shipping: Shipping,
    #[serde(default)]
    pub clickpost: Clickpost,
    #[serde(default)]
    pub shiprocket: Shiprocket,
    #[serde(default)]
    pub handover: Handover,
    #[serde(default)]
    pub jobs: Jobs,
    #[serde(default)]
    pub returns: Returns,
    #[serde(default)]
    pub tracking: Tracking,
    #[serde(default)]
    pub console: Console,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    #[serde(default = "d_listen")]
    pub listen: String,
    #[serde(default)]
    pub public_url: String,
    #[serde(default = "d_max_body")]
    pub max_body_bytes: usize,
    /// Seconds a connection may take to send a request's head (request line and headers) once its
    /// first byte arrived; slower ones are closed (added key; default 10).
    #[serde(default = "d_header_read_timeout")]
    pub header_read_timeout_seconds: u64,
    /// Seconds a connection may stay open with no request under way and nothing sent either way;
    /// then it is closed (added key; default 60).
    #[serde(default = "d_idle_timeout")]
    pub idle_timeout_seconds: u64,
    /// Seconds from a request's head to its answer, body upload included; later, 408 (added key;
    /// default 40; more than `shipping.answer_within_seconds`, so a pack call answers first).
    #[serde(default = "d_request_timeout")]
    pub request_timeout_seconds: u64,
    /// Connections open at once; one arriving at the limit closes the connection idle the longest,
    /// and waits in the kernel's backlog only while every connection is busy (added key; default
    /// 512: keep it well under the open-file limit).
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
    /// Requests handled at once; more are answered 503 with `Retry-After` (added key; default 256).
    #[serde(default = "d_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Bytes of request bodies held at once, counted before a body is read (its `Content-Length`,
    /// else `max_body_bytes`); a request that would go over is answered 503 unread (added key;
    /// default 32 MiB).
    #[serde(default = "d_max_buffered_body_bytes")]
    pub max_buffered_body_bytes: usize,
    /// Seconds requests in flight get to finish after SIGTERM; then their connections are closed
    /// (added key; default 5: the whole stop must take under 10 s).
    #[serde(default = "d_shutdown_timeout")]
    pub shutdown_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub path: PathBuf,
    #[serde(default = "d_cache_mb")]
    pub cache_capacity_mb: u64,
    #[serde(default = "d_retention")]
    pub retention_days: u32,
    /// Free disk space (MB) below which new events are refused with 503 rather than written: the
    /// state database must always find room for its own log. 0 = no check.
    #[serde(default = "d_min_free_mb")]
    pub min_free_mb: u64,
    /// Size (MB) at which the journal starts a new segment file (it also starts one each day).
    /// Retention removes whole segments, so smaller segments trim closer to `retention_days`.
    #[serde(default = "d_journal_segment_mb")]
    pub journal_segment_mb: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "d_level")]
    pub level: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Shopify {
    pub shop: String,
    #[serde(default)]
    pub access_token: Secret,
    #[serde(default)]
    pub password: Secret,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Secret,
    pub webhook_secret: Secret,
    #[serde(default)]
    pub previous_webhook_secret: Secret,
    #[serde(default = "d_api_version")]
    pub api_version: String,
    #[serde(default)]
    pub base_url: String,
    /// Seconds before giving up on one GraphQL call (added key; default 30).
    #[serde(default = "d_timeout")]
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Wms {
    pub base_url: String,
    #[serde(default)]
    pub auth_username: String,
    #[serde(default)]
    pub auth_password: Secret,
    #[serde(default)]
    pub auth_domain: String,
    #[serde(default)]
    pub inbound_username: String,
    #[serde(default)]
    pub inbound_password: Secret,
    #[serde(default = "d_channel")]
    pub channel_name: String,
    #[serde(default = "d_already_exists")]
    pub already_exists_pattern: String,
    /// A 4xx to a Customer Cancellation whose message contains this (case-insensitive) means the
    /// WMS already cancelled the order: the cancellation counts as delivered (added key; default
    /// "already cancelled").
    #[serde(default = "d_already_cancelled")]
    pub already_cancelled_pattern: String,
    /// A 4xx to a Customer Cancellation whose message contains this (case-insensitive) means the
    /// WMS does not know the order: the cancellation counts as delivered. A cancellation is sent
    /// whenever a creation may have reached the WMS, also when its answer was lost (added key;
    /// default "not found").
    #[serde(default = "d_unknown_order")]
    pub unknown_order_pattern: String,
    /// Seconds before giving up on one WMS call (added key; default 30).
    #[serde(default = "d_timeout")]
    pub timeout_seconds: u64,
    /// Seconds WMS work pauses after the WMS refused channeld's credentials (HTTP 401) before it
    /// is tried again (added key; default 60).
    #[serde(default = "d_auth_pause")]
    pub auth_pause_seconds: u64,
    /// Milliseconds the refusal of a second failed `/wms/*` authentication from one address within
    /// a few minutes is held back, doubled for each further one (added key; default 250; 0 = off).
    #[serde(default = "d_inbound_failure_delay")]
    pub inbound_failure_delay_ms: u64,
    /// The most a refusal is held back (added key; default 5000).
    #[serde(default = "d_inbound_failure_max_delay")]
    pub inbound_failure_max_delay_ms: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    #[default]
    Shopify,
    Wms,
    Fixed,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Orders {
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub routing: Routing,
    #[serde(default)]
    pub default_location: String,
    #[serde(default = "d_hold_tags")]
    pub hold_tags: Vec<String>,
    #[serde(default = "d_sla_attr")]
    pub sla_attribute: String,
    #[serde(default = "d_sla_hours")]
    pub default_sla_hours: u32,
    #[serde(default = "d_cod")]
    pub cod_gateways: Vec<String>,
    #[serde(default)]
    pub billing_fallback_to_shipping: bool,
    #[serde(default = "d_true")]
    pub skip_test_orders: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub shopify_location_id: u64,
    pub wms_location_code: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub pincode: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub shiprocket_pickup_location: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    #[serde(default = "d_push_schedule")]
    pub push_schedule: String,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Outbox {
    #[serde(default = "d_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "d_max_backoff")]
    pub max_backoff_seconds: u64,
    /// First retry delay in milliseconds; doubles per attempt up to `max_backoff_seconds`
    /// (added key; default 1000).
    #[serde(default = "d_initial_backoff")]
    pub initial_backoff_ms: u64,
    /// How many orders' calls run at once (added key; default 16). Calls of one order never overlap.
    #[serde(default = "d_concurrency")]
    pub concurrency: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cancellation {
    #[serde(default = "d_true")]
    pub restock: bool,
    #[serde(default = "d_true")]
    pub refund: bool,
    #[serde(default)]
    pub notify_customer: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    Clickpost,
    Shiprocket,
    None,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Shipping {
    #[serde(default)]
    pub provider: Provider,
    #[serde(default = "d_weight")]
    pub default_weight_grams: u32,
    #[serde(default = "d_dims")]
    pub default_dimensions_cm: [u32; 3],
    /// How long a pack call waits for the courier before answering "in progress" (added key;
    /// default 30: Increff gives up at 45 s).
    #[serde(default = "d_answer_within")]
    pub answer_within_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Clickpost {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub api_key: Secret,
    #[serde(default = "d_clickpost_url")]
    pub base_url: String,
    #[serde(default)]
    pub courier_partner: u32,
    #[serde(default)]
    pub account_code: String,
    /// The `webhook_key` Clickpost gives when the status webhook is registered; it comes back in
    /// every webhook's `webhook_key` header (CONTRACT.md §10.1).
    #[serde(default)]
    pub webhook_key: Secret,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Shiprocket {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: Secret,
    #[serde(default = "d_shiprocket_url")]
    pub base_url: String,
    #[serde(default)]
    pub courier_id: u32,
    /// The token Shiprocket sends in its tracking webhook's `x-api-key` header (CONTRACT.md §10.1).
    #[serde(default)]
    pub webhook_token: Secret,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Handover {
    #[serde(default = "d_true")]
    pub archive: bool,
}

/// `[returns]` (CONTRACT.md §9.3): approved Shopify returns to the WMS, QC results back.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Returns {
    #[serde(default)]
    pub enabled: bool,
    /// Increff `orderType`: `CUSTOMER_RETURN` or `SELF_SHIP`.
    #[serde(default = "d_return_order_type")]
    pub order_type: String,
    /// The WMS location receiving every return; empty = where each unit shipped from.
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub wait_for_tracking: bool,
    #[serde(default = "d_true")]
    pub restock: bool,
    /// Shopify location for restocks; 0 = mapped from the acknowledgement's locationCode.
    #[serde(default)]
    pub restock_location_id: u64,
    #[serde(default = "d_true")]
    pub refund: bool,
    #[serde(default)]
    pub refund_cod: bool,
    #[serde(default)]
    pub notify_customer: bool,
    #[serde(default = "d_stale_after_days")]
    pub stale_after_days: u32,
}

/// `[tracking]` (CONTRACT.md §10.1): courier scans to Shopify fulfillment events, NDR and RTO.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tracking {
    /// The tracking endpoints answer (else 404), and events reach Shopify.
    #[serde(default)]
    pub enabled: bool,
    /// `fulfillmentEventCreate` for the fulfillments channeld created.
    #[serde(default = "d_true")]
    pub shopify_events: bool,
    /// With `returns.enabled`: an RTO sends a `RETURN_TO_ORIGIN` return order to the WMS.
    #[serde(default)]
    pub rto_to_wms: bool,
}

/// `[console]` (CONTRACT.md §4.4): the operator console, on its own listener, always behind a
/// login. It is off unless both `listen` and `password` are set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Console {
    /// Where the console listens; empty = off. Never the webhook listener (`server.listen`).
    #[serde(default = "d_console_listen")]
    pub listen: String,
    #[serde(default = "d_console_username")]
    pub username: String,
    /// Empty = no console: it shows personal data, so there is no console without a login.
    #[serde(default)]
    pub password: Secret,
}

impl Console {
    /// Why the console is off (the key to set), or `None` when it is on.
    pub fn off_because(&self) -> Option<&'static str> {
        if self.listen.trim().is_empty() {
            Some("console.listen is empty")
        } else if self.password.is_empty() {
            Some("console.password is empty")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Jobs {
    #[serde(default = "d_label_schedule")]
    pub label_retrieval_schedule: String,
    #[serde(default = "d_archive_schedule")]
    pub archive_schedule: String,
    #[serde(default = "d_reconcile_schedule")]
    pub reconcile_schedule: String,
    #[serde(default = "d_overlap")]
    pub reconcile_overlap_minutes: u32,
}

fn d_listen() -> String {
    "127.0.0.1:8080".into()
}
fn d_max_body() -> usize {
    2 * 1024 * 1024
}
fn d_header_read_timeout() -> u64 {
    10
}
fn d_idle_timeout() -> u64 {
    60
}
fn d_request_timeout() -> u64 {
    40
}
fn d_max_connections() -> usize {
    512
}
fn d_max_concurrent_requests() -> usize {
    256
}
fn d_max_buffered_body_bytes() -> usize {
    32 * 1024 * 1024
}
fn d_shutdown_timeout() -> u64 {
    5
}
fn d_inbound_failure_delay() -> u64 {
    250
}
fn d_inbound_failure_max_delay() -> u64 {
    5000
}
fn d_cache_mb() -> u64 {
    64
}
fn d_retention() -> u32 {
    90
}
fn d_min_free_mb() -> u64 {
    64
}
fn d_journal_segment_mb() -> u64 {
    16
}
fn d_level() -> String {
    "info".into()
}
fn d_api_version() -> String {
    "2026-10".into()
}
fn d_auth_pause() -> u64 {
    60
}
fn d_timeout() -> u64 {
    30
}
fn d_channel() -> String {
    "SHOPIFY".into()
}
fn d_already_exists() -> String {
    "already exists".into()
}
fn d_already_cancelled() -> String {
    "already cancelled".into()
}
fn d_unknown_order() -> String {
    "not found".into()
}
fn d_hold_tags() -> Vec<String> {
    vec!["on-hold".into()]
}
fn d_sla_attr() -> String {
    "dispatch_by".into()
}
fn d_sla_hours() -> u32 {
    48
}
fn d_cod() -> Vec<String> {
    vec!["cash on delivery".into(), "cod".into()]
}
fn d_true() -> bool {
    true
}
fn d_push_schedule() -> String {
    "*/30 * * * * *".into()
}
fn d_batch() -> usize {
    250
}
fn d_max_attempts() -> u32 {
    12
}
fn d_max_backoff() -> u64 {
    600
}
fn d_initial_backoff() -> u64 {
    1000
}
fn d_concurrency() -> usize {
    16
}
fn d_answer_within() -> u64 {
    30
}
fn d_weight() -> u32 {
    500
}
fn d_dims() -> [u32; 3] {
    [18, 12, 10]
}
fn d_clickpost_url() -> String {
    "https://www.clickpost.in".into()
}
fn d_shiprocket_url() -> String {
    "https://apiv2.shiprocket.in".into()
}
fn d_label_schedule() -> String {
    "0 */5 * * * *".into()
}
fn d_archive_schedule() -> String {
    "0 */10 * * * *".into()
}
fn d_reconcile_schedule() -> String {
    "0 */15 * * * *".into()
}
fn d_overlap() -> u32 {
    60
}
fn d_console_listen() -> String {
    "127.0.0.1:8081".into()
}
fn d_console_username() -> String {
    "admin".into()
}
fn d_return_order_type() -> String {
    "CUSTOMER_RETURN".into()
}
fn d_stale_after_days() -> u32 {
    30
}

macro_rules! section_default {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                // Every field has a serde default, so an empty table is the default section.
                toml::from_str("").expect("every field of this section has a default")
            }
        }
    )*};
}
section_default!(
    Log,
    Orders,
    Inventory,
    Outbox,
    Cancellation,
    Shipping,
    Clickpost,
    Shiprocket,
    Handover,
    Jobs,
    Returns,
    Tracking,
    Console
);

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: d_listen(),
            public_url: String::new(),
            max_body_bytes: d_max_body(),
            header_read_timeout_seconds: d_header_read_timeout(),
            idle_timeout_seconds: d_idle_timeout(),
            request_timeout_seconds: d_request_timeout(),
            max_connections: d_max_connections(),
            max_concurrent_requests: d_max_concurrent_requests(),
            max_buffered_body_bytes: d_max_buffered_body_bytes(),
            shutdown_timeout_seconds: d_shutdown_timeout(),
        }
    }
}

/// How channeld authenticates to Shopify, resolved from the three possible key sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopifyAuth {
    /// A custom-app access token, or a legacy private app's password (which is used the same way).
    Static(Secret),
    /// A Dev Dashboard app: tokens come from the client-credentials grant.
    ClientCredentials { client_id: String, client_secret: Secret },
}

impl Config {
    /// Loads the file at `path`, applies environment overrides and validates the result.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            bail!("configuration file {} does not exist", path.display());
        }
        let cfg: Config = Figment::new()
            .merge(Toml::file_exact(path))
            .merge(Env::prefixed("CHANNELD_").ignore(&["CONFIG"]).split("__"))
            .extract()
            .map_err(|e| anyhow::anyhow!(describe_figment_error(e)))
            .with_context(|| format!("invalid configuration in {}", path.display()))?;
        cfg.validate().with_context(|| format!("invalid configuration in {}", path.display()))?;
        Ok(cfg)
    }

    /// Cross-field rules serde cannot express. Every message names the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut errs = Vec::new();
        if self.server.listen.parse::<SocketAddr>().is_err() {
            errs.push(format!("server.listen: {:?} is not an address like 127.0.0.1:8080", self.server.listen));
        }
        errs.extend(self.console_errors());
        if !self.server.public_url.is_empty() && reqwest::Url::parse(&self.server.public_url).is_err() {
            errs.push("server.public_url: not a URL".into());
        }
        if self.server.max_body_bytes < 1024 {
            errs.push("server.max_body_bytes: must be at least 1024".into());
        }
        errs.extend(self.server_limit_errors());
        if self.shopify.shop.trim().is_empty() {
            errs.push("shopify.shop: must not be empty".into());
        }
        if self.shopify.webhook_secret.is_empty() {
            errs.push("shopify.webhook_secret: must not be empty (webhooks could not be verified)".into());
        }
        if let Err(e) = self.shopify_auth() {
            errs.push(e);
        }
        if !is_api_version(&self.shopify.api_version) {
            errs.push(format!("shopify.api_version: {:?} is not like 2026-10", self.shopify.api_version));
        }
        for (key, url) in [
            ("shopify.base_url", &self.shopify.base_url),
            ("wms.base_url", &self.wms.base_url),
            ("clickpost.base_url", &self.clickpost.base_url),
            ("shiprocket.base_url", &self.shiprocket.base_url),
        ] {
            if !(url.is_empty() && key == "shopify.base_url") && reqwest::Url::parse(url).is_err() {
                errs.push(format!("{key}: {url:?} is not a URL"));
            }
        }
        if self.wms.already_exists_pattern.trim().is_empty() {
            errs.push("wms.already_exists_pattern: must not be empty".into());
        }
        if self.wms.already_cancelled_pattern.trim().is_empty() {
            errs.push("wms.already_cancelled_pattern: must not be empty".into());
        }
        if self.wms.unknown_order_pattern.trim().is_empty() {
            errs.push("wms.unknown_order_pattern: must not be empty".into());
        }
        if self.orders.since_time().is_err() {
            errs.push(format!("orders.since: {:?} is not an RFC 3339 time", self.orders.since));
        }
        if self.orders.routing == Routing::Fixed && self.orders.default_location.trim().is_empty() {
            errs.push("orders.default_location: required when orders.routing = \"fixed\"".into());
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.locations {
            if !seen.insert(l.shopify_location_id) {
                errs.push(format!("locations: shopify_location_id {} appears twice", l.shopify_location_id));
            }
            if l.wms_location_code.trim().is_empty() {
                errs.push(format!("locations.wms_location_code: empty for {}", l.shopify_location_id));
            }
        }
        if !["CUSTOMER_RETURN", "SELF_SHIP"].contains(&self.returns.order_type.as_str()) {
            errs.push(format!("returns.order_type: {:?} is not CUSTOMER_RETURN or SELF_SHIP", self.returns.order_type));
        }
        if self.returns.enabled && self.returns.restock_location_id == 0 && self.locations.is_empty() {
            errs.push(
                "returns.restock_location_id: 0 maps restocks through [[locations]], but there are none: set one"
                    .into(),
            );
        }
        errs.extend(self.tracking_errors());
        if !(1..=1024).contains(&self.storage.journal_segment_mb) {
            errs.push("storage.journal_segment_mb: must be between 1 and 1024".into());
        }
        if !(1..=250).contains(&self.inventory.batch_size) {
            errs.push("inventory.batch_size: must be between 1 and 250".into());
        }
        if !(1..=40).contains(&self.shipping.answer_within_seconds) {
            errs.push("shipping.answer_within_seconds: must be between 1 and 40 (Increff gives up at 45)".into());
        }
        if self.outbox.max_attempts == 0 {
            errs.push("outbox.max_attempts: must be at least 1".into());
        }
        if self.outbox.concurrency == 0 {
            errs.push("outbox.concurrency: must be at least 1".into());
        }
        for (key, expr) in [
            ("inventory.push_schedule", &self.inventory.push_schedule),
            ("jobs.label_retrieval_schedule", &self.jobs.label_retrieval_schedule),
            ("jobs.archive_schedule", &self.jobs.archive_schedule),
            ("jobs.reconcile_schedule", &self.jobs.reconcile_schedule),
        ] {
            if let Err(e) = parse_schedule(expr) {
                errs.push(format!("{key}: {expr:?} is not a valid cron expression with seconds: {e}"));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            bail!("{}", errs.join("\n"))
        }
    }

    /// `[console]`: an address of its own, and a user name when there is a password.
    fn console_errors(&self) -> Vec<String> {
        let c = &self.console;
        let mut errs = Vec::new();
        if c.listen.trim().is_empty() {
            return errs;
        }
        match c.listen.parse::<SocketAddr>() {
            Err(_) => errs.push(format!("console.listen: {:?} is not an address like 127.0.0.1:8081", c.listen)),
            Ok(addr) if self.server.listen.parse::<SocketAddr>().is_ok_and(|s| s == addr && s.port() != 0) => errs
                .push(
                    "console.listen: must differ from server.listen (the console never shares the webhook listener)"
                        .into(),
                ),
            Ok(_) => {}
        }
        if !c.password.is_empty() && c.username.trim().is_empty() {
            errs.push("console.username: must not be empty when console.password is set".into());
        }
        errs
    }

    /// The rules tying the HTTP server's limits to each other and to the pack call's wait.
    fn server_limit_errors(&self) -> Vec<String> {
        let s = &self.server;
        let mut errs = Vec::new();
        for (key, v) in [
            ("server.header_read_timeout_seconds", s.header_read_timeout_seconds),
            ("server.idle_timeout_seconds", s.idle_timeout_seconds),
            ("server.max_connections", s.max_connections as u64),
            ("server.max_concurrent_requests", s.max_concurrent_requests as u64),
        ] {
            if v == 0 {
                errs.push(format!("{key}: must be at least 1"));
            }
        }
        if s.request_timeout_seconds <= self.shipping.answer_within_seconds {
            errs.push(format!(
                "server.request_timeout_seconds: must be more than shipping.answer_within_seconds ({}), or a pack \
                 call is cut off before it answers",
                self.shipping.answer_within_seconds
            ));
        }
        if s.max_buffered_body_bytes < s.max_body_bytes || s.max_buffered_body_bytes > u32::MAX as usize {
            errs.push(format!(
                "server.max_buffered_body_bytes: must be between server.max_body_bytes ({}) and {}",
                s.max_body_bytes,
                u32::MAX
            ));
        }
        if !(1..=8).contains(&s.shutdown_timeout_seconds) {
            errs.push("server.shutdown_timeout_seconds: must be between 1 and 8 (a stop takes under 10 s)".into());
        }
        let w = &self.wms;
        if w.inbound_failure_max_delay_ms < w.inbound_failure_delay_ms {
            errs.push("wms.inbound_failure_max_delay_ms: must be at least wms.inbound_failure_delay_ms".into());
        }
        if w.inbound_failure_max_delay_ms >= s.request_timeout_seconds.saturating_mul(1000) {
            errs.push("wms.inbound_failure_max_delay_ms: must be less than server.request_timeout_seconds".into());
        }
        errs
    }

    /// `tracking.enabled` needs the key the configured courier's webhook carries: without it no
    /// status webhook could be told from a forgery.
    fn tracking_errors(&self) -> Vec<String> {
        if !self.tracking.enabled {
            return Vec::new();
        }
        match self.shipping.provider {
            Provider::Clickpost if self.clickpost.webhook_key.is_empty() => vec![
                "clickpost.webhook_key: must not be empty when tracking.enabled (Clickpost's status webhooks could \
                 not be verified): register the webhook with Clickpost (README \"Tracking\") and set it to the \
                 webhook_key its answer gives"
                    .into(),
            ],
            Provider::Shiprocket if self.shiprocket.webhook_token.is_empty() => vec![
                "shiprocket.webhook_token: must not be empty when tracking.enabled (Shiprocket's tracking webhooks \
                 could not be verified): choose a long random token, set it here and as the webhook's token in \
                 Shiprocket's panel (Settings > API > Webhooks)"
                    .into(),
            ],
            _ => Vec::new(),
        }
    }

    pub fn shopify_auth(&self) -> Result<ShopifyAuth, String> {
        let s = &self.shopify;
        let cc = !s.client_id.is_empty() || !s.client_secret.is_empty();
        match (!s.access_token.is_empty(), !s.password.is_empty(), cc) {
            (true, false, false) => Ok(ShopifyAuth::Static(s.access_token.clone())),
            (false, true, false) => Ok(ShopifyAuth::Static(s.password.clone())),
            (false, false, true) if !s.client_id.is_empty() && !s.client_secret.is_empty() => {
                Ok(ShopifyAuth::ClientCredentials {
                    client_id: s.client_id.clone(),
                    client_secret: s.client_secret.clone(),
                })
            }
            (false, false, true) => Err("shopify.client_id and shopify.client_secret: both are needed".into()),
            (false, false, false) => {
                Err("shopify.access_token: set it (or shopify.password, or client_id + client_secret)".into())
            }
            _ => Err("shopify.access_token / password / client_id: set exactly one way to authenticate".into()),
        }
    }

    /// `https://{shop}.myshopify.com`, or `shopify.base_url` when set (tests, proxies).
    pub fn shopify_base(&self) -> String {
        if self.shopify.base_url.is_empty() {
            format!("https://{}", self.shop_domain())
        } else {
            self.shopify.base_url.trim_end_matches('/').to_string()
        }
    }

    /// The `X-Shopify-Shop-Domain` Shopify sends for this store.
    pub fn shop_domain(&self) -> String {
        let shop = self.shopify.shop.trim();
        if shop.contains('.') {
            shop.to_string()
        } else {
            format!("{shop}.myshopify.com")
        }
    }

    /// The Shopify location of a WMS location code (the first `[[locations]]` entry naming it).
    pub fn shopify_location_for(&self, wms_location_code: &str) -> Option<u64> {
        self.locations.iter().find(|l| l.wms_location_code == wms_location_code).map(|l| l.shopify_location_id)
    }

    pub fn wms_location_for(&self, shopify_location_id: u64) -> Option<&str> {
        self.locations
            .iter()
            .find(|l| l.shopify_location_id == shopify_location_id)
            .map(|l| l.wms_location_code.as_str())
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not render configuration: {e}\n"))
    }
}

impl Orders {
    /// `orders.since` parsed; `None` when empty (the first start's time is used then).
    pub fn since_time(&self) -> Result<Option<DateTime<Utc>>, chrono::ParseError> {
        if self.since.trim().is_empty() {
            return Ok(None);
        }
        DateTime::parse_from_rfc3339(self.since.trim()).map(|t| Some(t.with_timezone(&Utc)))
    }
}

/// Parses a job schedule the way tokio-cron-scheduler 0.15 does when it schedules the job (its own
/// parser, croner, with the settings of `Job::new_async`: seconds required, day of month and day
/// of week both honoured), so that a schedule accepted at load time is one the scheduler takes.
pub fn parse_schedule(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
}

fn is_api_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 7 && b[4] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit())
}

/// figment's messages already name the key path; join the chain into readable lines.
fn describe_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = if e.path.is_empty() { String::new() } else { format!("{}: ", e.path.join(".")) };
            format!("{key}{}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Warns (returns a message) when the configuration file can be read by other users: it holds secrets.
pub fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!(
            "warning: {} is readable by every user (mode {:o}) and holds secrets; run: chmod o-r {}",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("c.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    const MIN: &str = r#"
[server]
listen = "127.0.0.1:8080"
[storage]
path = "./data"
[shopify]
shop = "increff"
access_token = "shpat_abc"
webhook_secret = "s3cret"
[wms]
base_url = "http://127.0.0.1:9"
"#;

    #[test]
    fn minimal_config_loads_with_defaults() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(&write(d.path(), MIN)).unwrap();
        assert_eq!(c.inventory.batch_size, 250);
        assert_eq!(c.orders.hold_tags, vec!["on-hold"]);
        assert_eq!(c.shop_domain(), "increff.myshopify.com");
        assert_eq!(c.shopify_base(), "https://increff.myshopify.com");
    }

    #[test]
    fn unknown_key_is_named() {
        let d = tempfile::tempdir().unwrap();
        let err = Config::load(&write(d.path(), &format!("{MIN}\n[orders]\nroutnig = \"wms\"\n"))).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("routnig"), "{msg}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let d = tempfile::tempdir().unwrap();
        let body = MIN.replace("127.0.0.1:8080", "nonsense") + "\n[inventory]\nbatch_size = 900\n";
        let msg = format!("{:#}", Config::load(&write(d.path(), &body)).unwrap_err());
        assert!(msg.contains("server.listen") && msg.contains("inventory.batch_size"), "{msg}");
    }

    #[test]
    fn already_cancelled_pattern_has_a_default_and_must_not_be_empty() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(&write(d.path(), MIN)).unwrap();
        assert_eq!(c.wms.already_cancelled_pattern, "already cancelled");
        let body = format!("{MIN}already_cancelled_pattern = \"  \"\n");
        let msg = format!("{:#}", Config::load(&write(d.path(), &body)).unwrap_err());
        assert!(msg.contains("wms.already_cancelled_pattern"), "{msg}");
    }

    #[test]
    fn unknown_order_pattern_has_a_default_and_must_not_be_empty() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(&write(d.path(), MIN)).unwrap();
        assert_eq!(c.wms.unknown_order_pattern, "not found");
        let body = format!("{MIN}unknown_order_pattern = \"\"\n");
        let msg = format!("{:#}", Config::load(&write(d.path(), &body)).unwrap_err());
        assert!(msg.contains("wms.unknown_order_pattern"), "{msg}");
    }

    #[test]
    fn invalid_cron_expressions_are_refused_naming_the_key() {
        let d = tempfile::tempdir().unwrap();
        for (key, expr) in [
            ("inventory.push_schedule", "61 * * * * *"),
            ("jobs.reconcile_schedule", "0 */15 * * * FUNDAY"),
            ("jobs.archive_schedule", "0 0 25 * * *"),
            ("jobs.label_retrieval_schedule", "0 0 0 31 2 * extra"),
        ] {
            let (section, name) = key.split_once('.').unwrap();
            let body = format!("{MIN}\n[{section}]\n{name} = \"{expr}\"\n");
            let msg = format!("{:#}", Config::load(&write(d.path(), &body)).unwrap_err());
            assert!(msg.contains(key) && msg.contains(expr), "{expr}: {msg}");
        }
    }

    /// Load time and schedule time agree: what the configuration accepts, tokio-cron-scheduler
    /// schedules, and what it refuses, the configuration refuses.
    #[test]
    fn the_configuration_accepts_exactly_the_schedules_the_scheduler_does() {
        let d = tempfile::tempdir().unwrap();
        for expr in [
            "*/30 * * * * *",
            "0 */5 * * * *",
            "0 0 0 1 1 *",
            "0 0 9-17 * * MON-FRI",
            "0 0 0 L * *",
            "61 * * * * *",
            "* * * * *",
            "0 0 24 * * *",
            "0 0 0 ? * * *",
            "x * * * * *",
        ] {
            let scheduler = tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {})).is_ok();
            let body = format!("{MIN}\n[inventory]\npush_schedule = \"{expr}\"\n");
            let loaded = Config::load(&write(d.path(), &body)).is_ok();
            assert_eq!(loaded, scheduler, "{expr:?}: configuration {loaded}, scheduler {scheduler}");
        }
    }

    #[test]
    fn server_limits_have_defaults_and_are_checked_against_each_other() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(&write(d.path(), MIN)).unwrap();
        let s = &c.server;
        assert_eq!((s.header_read_timeout_seconds, s.idle_timeout_seconds, s.request_timeout_seconds), (10, 60, 40));
        assert_eq!((s.max_connections, s.max_concurrent_requests), (512, 256));
        assert_eq!((s.max_buffered_body_bytes, s.shutdown_timeout_seconds), (32 * 1024 * 1024, 5));
        assert_eq!((c.wms.inbound_failure_delay_ms, c.wms.inbound_failure_max_delay_ms), (250, 5000));
        for (lines, key) in [
            ("[server]\nrequest_timeout_seconds = 30\n", "server.request_timeout_seconds"),
            ("[server]\nmax_buffered_body_bytes = 1024\n", "server.max_buffered_body_bytes"),
            ("[server]\nshutdown_timeout_seconds = 9\n", "server.shutdown_timeout_seconds"),
            ("[server]\nidle_timeout_seconds = 0\n", "server.idle_timeout_seconds"),
            ("[server]\nmax_concurrent_requests = 0\n", "server.max_concurrent_requests"),
            ("[wms]\ninbound_failure_max_delay_ms = 100\n", "wms.inbound_failure_max_delay_ms"),
            ("[wms]\ninbound_failure_max_delay_ms = 40000\n", "wms.inbound_failure_max_delay_ms"),
        ] {
            // The section's table is already in MIN: add the key to it.
            let (section, line) = lines.split_once('\n').unwrap();
            let body = MIN.replace(&format!("{section}\n"), &format!("{section}\n{line}"));
            let msg = format!("{:#}", Config::load(&write(d.path(), &body)).unwrap_err());
            assert!(msg.contains(key), "{line}: {msg}");
        }
    }

    #[test]
    fn the_example_configuration_loads_and_documents_every_server_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let c = Config::load(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let keys = toml::Value::try_from(&c.server).unwrap();
        for key in keys.as_table().unwrap().keys() {
            assert!(text.contains(&format!("\n{key} = ")), "config.example.toml does not document server.{key}");
        }
        for key in ["inbound_failure_delay_ms", "inbound_failure_max_delay_ms"] {
            assert!(text.contains(&format!("\n{key} = ")), "config.example.toml does not document wms.{key}");
        }
        let console = text.split("\n[console]").nth(1).expect("config.example.toml has a [console] section");
        for key in toml::Value::try_from(&c.console).unwrap().as_table().unwrap().keys() {
            assert!(console.contains(&format!("\n{key} = ")), "config.example.toml does not document console.{key}");
        }
    }

    #[test]
    fn the_console_is_off_without_a_password_or_an_address_and_never_on_the_webhook_listener() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(&write(d.path(), MIN)).unwrap();
        assert_eq!((c.console.listen.as_str(), c.console.username.as_str()), ("127.0.0.1:8081", "admin"));
        assert_eq!(c.console.off_because(), Some("console.password is empty"));
        let on = format!("{MIN}\n[console]\npassword = \"pw\"\n");
        assert_eq!(Config::load(&write(d.path(), &on)).unwrap().console.off_because(), None);
        let no_address = format!("{MIN}\n[console]\nlisten = \"\"\npassword = \"pw\"\n");
        assert_eq!(
            Config::load(&write(d.path(), &no_address)).unwrap().console.off_because(),
            Some("console.listen is empty")
        );
        let listen = Config::load(&write(d.path(), MIN)).unwrap().server.listen;
        let shared = format!("{MIN}\n[console]\nlisten = \"{listen}\"\npassword = \"pw\"\n");
        let msg = format!("{:#}", Config::load(&write(d.path(), &shared)).unwrap_err());
        assert!(msg.contains("console.listen: must differ from server.listen"), "{msg}");
        let masked = Config::load(&write(d.path(), &on)).unwrap().to_masked_toml();
        assert!(masked.contains("[console]") && !masked.contains("\"pw\""), "{masked}");
    }

    #[test]
    fn secrets_are_masked() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(&write(d.path(), MIN)).unwrap();
        let shown = c.to_masked_toml();
        assert!(!shown.contains("shpat_abc") && !shown.contains("s3cret"), "{shown}");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn tracking_needs_the_key_of_the_configured_courier() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(&write(d.path(), MIN)).unwrap();
        assert!(!c.tracking.enabled && c.tracking.shopify_events && !c.tracking.rto_to_wms);
        for (provider, key) in [("clickpost", "clickpost.webhook_key"), ("shiprocket", "shiprocket.webhook_token")] {
            let body = format!("{MIN}\n[shipping]\nprovider = \"{provider}\"\n[tracking]\nenabled = true\n");
            let msg = format!("{:#}", Config::load(&write(d.path(), &body)).unwrap_err());
            assert!(msg.contains(key), "{provider}: {msg}");
            let (section, name) = key.split_once('.').unwrap();
            let keyed = format!("{body}[{section}]\n{name} = \"k\"\n");
            let c = Config::load(&write(d.path(), &keyed)).unwrap();
            assert!(!c.to_masked_toml().contains("= \"k\""), "the key is a secret");
        }
    }

    #[test]
    fn two_auth_methods_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let body = MIN.replace("webhook_secret", "password = \"x\"\nwebhook_secret");
        assert!(format!("{:#}", Config::load(&write(d.path(), &body)).unwrap_err()).contains("exactly one"));
    }
}
