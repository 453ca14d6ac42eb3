//! `channeld doctor`: one line per check, with what to fix; non-zero exit when any check fails.

use std::path::Path;

use super::admin_cmd::call;
use crate::admin::Request;
use crate::config::{Config, Provider};
use crate::courier::shiprocket::ShiprocketClient;
use crate::flows::{scopes, webhooks};
use crate::remote::CallError;
use crate::shopify::ShopifyClient;
use crate::store::JobStatus;
use crate::wms::WmsClient;

#[derive(Default)]
struct Report {
    failures: usize,
}

impl Report {
    fn ok(&mut self, what: impl AsRef<str>) {
        println!("ok    {}", what.as_ref());
    }
    fn fail(&mut self, what: impl AsRef<str>, fix: impl AsRef<str>) {
        self.failures += 1;
        println!("FAIL  {} — fix: {}", what.as_ref(), fix.as_ref());
    }
    fn note(&mut self, what: impl AsRef<str>) {
        println!("note  {}", what.as_ref());
    }
}

pub async fn run(path: &Path) -> anyhow::Result<()> {
    let mut r = Report::default();
    let cfg = match Config::load(path) {
        Ok(cfg) => cfg,
        Err(e) => {
            r.fail(format!("configuration: {e:#}"), format!("edit {}, then run channeld check-config", path.display()));
            anyhow::bail!("1 check failed");
        }
    };
    r.ok(format!("configuration {} is valid", path.display()));
    let shopify = ShopifyClient::new(&cfg)?;
    if check_shopify(&mut r, &cfg, &shopify).await {
        check_locations(&mut r, &cfg, &shopify).await;
        check_webhooks(&mut r, &cfg, &shopify).await;
    }
    check_wms(&mut r, &cfg).await;
    check_alerts(&mut r, cfg.clone()).await;
    check_courier(&mut r, &cfg).await;
    check_tracking(&mut r, &cfg);
    check_jobs(&mut r, cfg).await;
    match r.failures {
        0 => Ok(()),
        n => anyhow::bail!("{n} check(s) failed"),
    }
}

/// Token and scopes. Returns whether Shopify answered at all.
async fn check_shopify(r: &mut Report, cfg: &Config, shopify: &ShopifyClient) -> bool {
    let granted = match shopify.access_scopes().await {
        Ok(g) => g,
        Err(CallError::Unauthorized { message }) => {
            r.fail(
                format!("Shopify refused the token ({message})"),
                "set shopify.access_token (or password / client_id + client_secret) to the app's current credentials",
            );
            return false;
        }
        Err(e) => {
            r.fail(
                format!("Shopify at {} did not answer: {e}", cfg.shopify_base()),
                "check shopify.shop / shopify.base_url and the network",
            );
            return false;
        }
    };
    r.ok(format!("Shopify reachable, token accepted ({}, API {})", cfg.shop_domain(), cfg.shopify.api_version));
    let missing = scopes::missing(&granted, cfg.returns.enabled);
    if missing.is_empty() {
        r.ok("every access scope channeld needs is granted");
    }
    for (scope, flow) in missing {
        r.fail(
            format!("access scope {scope} is missing (needed by {flow})"),
            "add it to the app's Admin API access scopes and reinstall or re-authorise the app",
        );
    }
    true
}

async fn check_locations(r: &mut Report, cfg: &Config, shopify: &ShopifyClient) {
    let known = match shopify.locations().await {
        Ok(l) => l,
        Err(e) => return r.fail(format!("could not list Shopify locations: {e}"), "grant read_locations"),
    };
    if cfg.locations.is_empty() {
        r.fail("no [[locations]] are configured", "add one [[locations]] table per Shopify location the WMS serves");
    }
    for l in &cfg.locations {
        match known.iter().find(|(id, _, _)| *id == l.shopify_location_id) {
            Some((_, name, true)) => {
                r.ok(format!("location {} ({name}) is active → {}", l.shopify_location_id, l.wms_location_code))
            }
            Some((_, name, false)) => r.fail(
                format!("location {} ({name}) is not active on Shopify", l.shopify_location_id),
                "activate it in Shopify, or remove its [[locations]] entry",
            ),
            None => r.fail(
                format!("location {} does not exist on Shopify", l.shopify_location_id),
                "fix shopify_location_id (Shopify admin → Settings → Locations: the number in the URL)",
            ),
        }
    }
    let restock_at = cfg.returns.restock_location_id;
    if cfg.returns.enabled && cfg.returns.restock && restock_at > 0 {
        let fix = "set returns.restock_location_id to an active Shopify location (or 0: the one mapped from the WMS location)";
        match known.iter().find(|(id, _, _)| *id == restock_at) {
            Some((_, name, true)) => r.ok(format!("returns restock at location {restock_at} ({name}), active")),
            Some((_, name, false)) => {
                r.fail(format!("returns.restock_location_id {restock_at} ({name}) is not active"), fix)
            }
            None => r.fail(format!("returns.restock_location_id {restock_at} does not exist on Shopify"), fix),
        }
    }
}

async fn check_webhooks(r: &mut Report, cfg: &Config, shopify: &ShopifyClient) {
    if cfg.server.public_url.is_empty() {
        return r.fail("server.public_url is not set", "set it to the HTTPS address Shopify reaches this daemon at");
    }
    match shopify.webhook_subscriptions().await {
        Ok(subs) => {
            let plan = webhooks::plan(&cfg.server.public_url, cfg.returns.enabled, &subs);
            if plan.is_empty() {
                r.ok(format!("webhook subscriptions point at {} with no field filter", cfg.server.public_url));
            } else {
                r.fail(
                    format!("webhook subscriptions: {} missing, {} stale", plan.create.len(), plan.delete.len()),
                    "run channeld webhooks register",
                );
            }
        }
        Err(e) => r.fail(format!("could not list webhook subscriptions: {e}"), "check the token's scopes"),
    }
}

async fn check_wms(r: &mut Report, cfg: &Config) {
    let client = match WmsClient::new(&cfg.wms) {
        Ok(c) => c,
        Err(e) => return r.fail(format!("WMS client: {e}"), "check [wms]"),
    };
    match client.reachable().await {
        Ok(status) => r.ok(format!(
            "WMS reachable at {} (HTTP {}; credentials not verified: the WMS has no side-effect-free check)",
            cfg.wms.base_url,
            status.as_u16()
        )),
        Err(e) => {
            r.fail(format!("WMS at {} is not reachable: {e}", cfg.wms.base_url), "check wms.base_url and the network")
        }
    }
}

async fn check_courier(r: &mut Report, cfg: &Config) {
    match cfg.shipping.provider {
        Provider::None => r.note("shipping.provider = none: no courier checked"),
        Provider::Shiprocket => {
            let login = match ShiprocketClient::new(&cfg.shiprocket) {
                Ok(c) => c.login().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match login {
                Ok(_) => r.ok(format!("Shiprocket login works ({})", cfg.shiprocket.email)),
                Err(e) => r.fail(
                    format!("Shiprocket login failed: {e}"),
                    "check shiprocket.email / shiprocket.password (an API user)",
                ),
            }
        }
        Provider::Clickpost => match reqwest::Client::new().get(&cfg.clickpost.base_url).send().await {
            Ok(resp) => r.ok(format!(
                "Clickpost reachable at {} (HTTP {}; the key is checked on the first booking)",
                cfg.clickpost.base_url,
                resp.status().as_u16()
            )),
            Err(e) => r.fail(
                format!(
                    "Clickpost at {} is not reachable: {}",
                    cfg.clickpost.base_url,
                    crate::remote::redact_urls(&e.to_string())
                ),
                "check clickpost.base_url and the network",
            ),
        },
    }
}

/// Tracking (CONTRACT.md §10): the couriers' webhook keys, and an address Shiprocket accepts.
fn check_tracking(r: &mut Report, cfg: &Config) {
    if !cfg.tracking.enabled {
        return r.note("tracking.enabled = false: courier status webhooks are answered 404");
    }
    let base = cfg.server.public_url.trim_end_matches('/');
    // An empty key for the configured courier is refused by the configuration's validation (with
    // how to get one), before doctor runs.
    let couriers = [
        ("clickpost.webhook_key", cfg.clickpost.webhook_key.expose(), "/tracking/clickpost"),
        ("shiprocket.webhook_token", cfg.shiprocket.webhook_token.expose(), "/tracking/rocket"),
    ];
    for (key, value, path) in couriers {
        if value.is_empty() {
            continue;
        }
        if value.len() < 16 {
            r.note(format!("{key} is shorter than 16 characters: a long random key is harder to guess"));
        } else {
            r.ok(format!("{key} is set: the courier's webhook goes to {base}{path}"));
        }
    }
    if cfg.tracking.rto_to_wms && !cfg.returns.enabled {
        r.note("tracking.rto_to_wms is on but returns.enabled is off: no RTO return order is sent to the WMS");
    }
    let uses_shiprocket = cfg.shipping.provider == Provider::Shiprocket || !cfg.shiprocket.webhook_token.is_empty();
    let refused = crate::flows::tracking::shiprocket_refuses(&format!("{base}/tracking/rocket"));
    if uses_shiprocket && !refused.is_empty() {
        r.fail(
            format!(
                "server.public_url {base} contains {}: Shiprocket refuses a webhook URL containing \
                 shiprocket, kartrocket, sr or kr",
                refused.iter().map(|w| format!("{w:?}")).collect::<Vec<_>>().join(", ")
            ),
            "serve channeld's tracking webhook under a host and path without those letters (a reverse-proxy \
             name of your own)",
        );
    } else if uses_shiprocket {
        r.ok("server.public_url has none of the words Shiprocket refuses in a webhook URL");
    }
}

/// What the daemon saw that a check cannot: the WMS refusing channeld's credentials.
async fn check_alerts(r: &mut Report, cfg: Config) {
    let Ok(v) = call(cfg, Request::Alerts).await else { return };
    let alerts: Vec<(String, JobStatus)> = serde_json::from_value(v).unwrap_or_default();
    for (name, a) in alerts {
        let when =
            chrono::DateTime::from_timestamp_millis(a.last_run_ms).map(crate::flows::fmt_time).unwrap_or_default();
        match name.as_str() {
            "wms_credentials" => r.fail(
                format!("the WMS refused channeld's credentials at {when} ({}); WMS work is paused", a.summary),
                "set wms.auth_username, wms.auth_password and wms.auth_domain to what the WMS issued",
            ),
            other => r.fail(format!("alert {other} since {when}: {}", a.summary), "see the logs"),
        }
    }
}

async fn check_jobs(r: &mut Report, cfg: Config) {
    let statuses: Vec<(String, JobStatus)> = match call(cfg, Request::JobStatuses).await {
        Ok(v) => serde_json::from_value(v).unwrap_or_default(),
        Err(e) => return r.note(format!("job history not available: {e:#}")),
    };
    if statuses.is_empty() {
        r.note("no scheduled job has run yet");
    }
    for (job, s) in statuses {
        let when =
            chrono::DateTime::from_timestamp_millis(s.last_run_ms).map(crate::flows::fmt_time).unwrap_or_default();
        if s.ok {
            r.ok(format!("job {job} last ran {when}: {}", s.summary));
        } else {
            r.fail(
                format!("job {job} failed at {when}: {}", s.summary),
                "see the logs (journalctl -u channeld); it retries at its next tick",
            );
        }
    }
}
