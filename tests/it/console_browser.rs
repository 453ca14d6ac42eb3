//! The operator console in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! started here on a free port) against the real server with the fakes of `console.rs`'s
//! scenario. An operator logs in, opens a rejected order and reads both reasons, retries a dead
//! letter and sees it reach the WMS, releases a quarantined inventory row and sees it pushed; a
//! screenshot of each page is saved under `target/console-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them (`build.rs` looks) the test shows
//! as ignored with that reason. CI installs both.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::console::{dead_creation, quarantined_level, scenario, PASSWORD, QUARANTINED_SKU, USER};
use crate::helpers::eventually;

/// The Chromium flags for a machine with no display, no GPU, no sandboxing user namespaces and
/// no business talking to Google.
const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1800",
];

/// Where the screenshots go: `target/console-screenshots/` (beside the tests' own scratch dir).
fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A program `build.rs` found (where it found none, the test is ignored and never gets here).
fn found(path: Option<&'static str>, what: &str) -> &'static str {
    path.unwrap_or_else(|| panic!("build.rs found no {what}"))
}

/// chromedriver on a free port of 127.0.0.1, killed when dropped.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start() -> Self {
        let path = found(option_env!("BROWSER_TEST_CHROMEDRIVER"), "chromedriver");
        let port = crate::crash::free_addr().port();
        let child = tokio::process::Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {path}: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let mut ready = false;
        for _ in 0..200 {
            let answer = reqwest::get(&status).await.ok();
            if let Some(a) = answer.filter(|a| a.status().is_success()) {
                let body: serde_json::Value = a.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not answer on {status} within 20 s");
        Self { child, url }
    }

    /// A fresh headless Chromium session, with a profile of its own.
    async fn browser(&self, profile: &std::path::Path) -> Client {
        let chromium = found(option_env!("BROWSER_TEST_CHROMIUM"), "chromium");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({ "binary": chromium, "args": args }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector).capabilities(caps).connect(&self.url).await.expect("a WebDriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn shot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Clicks `button` and waits (bounded) until the page it leads to shows `then`: a click that
/// submits a form returns before the next page has loaded.
async fn click_then(browser: &Client, button: Locator<'_>, then: &str) {
    browser.find(button).await.unwrap().click().await.unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(then))
        .await
        .unwrap_or_else(|e| panic!("after the click, no {then}: {e}"));
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
}

#[tokio::test]
#[cfg_attr(
    not(has_browser),
    ignore = "needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver): browser tests skipped"
)]
async fn an_operator_reads_a_rejection_replays_a_dead_letter_and_releases_a_row_in_a_real_browser() {
    let s = scenario().await;
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let b = driver.browser(profile.path()).await;
    // Tall enough for a whole page in each screenshot (WebDriver's are of the window).
    b.set_window_size(1280, 1800).await.unwrap();
    let console = &s.console;

    // Not logged in: the login page, then back where we were going.
    b.goto(&format!("{console}/orders?status=rejected")).await.unwrap();
    assert_eq!(b.current_url().await.unwrap().path(), "/login");
    b.find(Locator::Id("username")).await.unwrap().send_keys(USER).await.unwrap();
    b.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    shot(&b, "login").await;
    click_then(&b, Locator::Css("form.login button"), "nav.filters").await;
    let url = b.current_url().await.unwrap();
    assert_eq!((url.path(), url.query()), ("/orders", Some("status=rejected")));
    shot(&b, "orders-rejected").await;

    // The rejected order, with both reasons.
    click_then(&b, Locator::LinkText("#1001"), "ul.reasons").await;
    assert_eq!(b.current_url().await.unwrap().path(), "/orders/450789469");
    let reasons = text_of(&b, "ul.reasons").await;
    assert!(reasons.contains("shipping address is missing"), "{reasons}");
    assert!(reasons.contains("no SKU"), "{reasons}");
    assert!(text_of(&b, "ol.timeline").await.contains("webhook orders/create: rejected"));
    shot(&b, "order-rejected").await;

    // The overview.
    b.goto(&format!("{console}/")).await.unwrap();
    assert!(text_of(&b, "section.cards").await.contains("2 dead"));
    b.find(Locator::Css("figure.chart svg polyline")).await.expect("the orders chart is drawn");
    shot(&b, "overview").await;

    // A dead letter, retried from the outbox: the fake WMS now has the order.
    b.goto(&format!("{console}/outbox")).await.unwrap();
    shot(&b, "outbox").await;
    let seq = dead_creation(&s.t);
    let row = format!("#entry-{seq}");
    assert!(text_of(&b, &row).await.contains("not enabled for channel SHOPIFY"));
    click_then(&b, Locator::Css(&format!("{row} button")), "p.flash").await;
    assert!(text_of(&b, "p.flash").await.contains("1 call(s) queued again"));
    eventually("the retried order at the WMS", || s.t.wms.created().contains(&"2001".to_string())).await;
    b.goto(&format!("{console}/outbox/retry-all")).await.unwrap();
    shot(&b, "outbox-retry-all").await;
    click_then(&b, Locator::LinkText("Cancel"), "nav.filters").await;
    b.goto(&format!("{console}/orders/2001")).await.unwrap();
    assert!(text_of(&b, "dl.facts").await.contains("sent"), "delivered after the retry");
    shot(&b, "order-timeline").await;

    // A quarantined row, released (Shopify takes its item again): pushed at the next run.
    b.goto(&format!("{console}/inventory")).await.unwrap();
    let quarantined = text_of(&b, "table.quarantined").await;
    assert!(quarantined.contains(QUARANTINED_SKU) && quarantined.contains("could not be found"), "{quarantined}");
    shot(&b, "inventory").await;
    s.shop.state.refuse.lock().unwrap().clear();
    click_then(&b, Locator::Css("table.quarantined button"), "p.flash").await;
    assert!(text_of(&b, "p.flash").await.contains("released"));
    let report = channeld::jobs::inventory_push::push_pending(&s.t.app).await.unwrap();
    assert_eq!(report.pushed, 1);
    assert_eq!(quarantined_level(&s), Some(10), "the released row is on Shopify");

    // Shipments.
    b.goto(&format!("{console}/shipments")).await.unwrap();
    assert!(text_of(&b, "table.shipments").await.contains("WB-3001-s77"));
    shot(&b, "shipments").await;

    b.close().await.unwrap();
    drop(driver);
    s.t.stop().await;
}
