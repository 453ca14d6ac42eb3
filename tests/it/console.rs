//! The operator console over plain HTTP: off unless configured, the login (cookie flags, wrong
//! passwords refused and slowed down), 401 for scripts and the login page for browsers, 403 for a
//! POST without the session's CSRF token, and every page and action against the real server with
//! the fakes. `console_browser.rs` drives the same scenario through a real browser.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::courier_fakes::FakeCourier;
use crate::helpers::{eventually, fixture_order, order_numbered, LogCapture, Options, TestApp, INVENTORY_LOCATION_ID};
use crate::shopify_inventory_fake::InventoryShopify;

pub const USER: &str = "ops";
pub const PASSWORD: &str = "console-pass";

/// The `[console]` section of a test configuration: on, on a free port.
pub fn console_section() -> String {
    format!("[console]\nlisten = \"127.0.0.1:0\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n")
}

/// The console's base URL, once `serve` bound it.
pub async fn console_url(t: &TestApp) -> String {
    eventually("the console to listen", || t.app.console_addr.get().is_some()).await;
    format!("http://{}", t.app.console_addr.get().unwrap())
}

/// What a console answered.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The CSRF token of the page's first form.
    pub fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
        self.body[at..].split('"').next().unwrap().to_string()
    }

    pub fn location(&self) -> &str {
        self.headers.get(LOCATION).map_or("", |v| v.to_str().unwrap())
    }

    /// The `Set-Cookie` header setting `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}

/// A browser-like client of the console, without a browser: it keeps the session cookie and
/// follows no redirect by itself (tests look at them).
pub struct Client {
    pub base: String,
    http: reqwest::Client,
    pub session: Option<String>,
}

impl Client {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { base: base.to_string(), http, session: None }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).header(ACCEPT, "text/html");
        if let Some(s) = &self.session {
            req = req.header(COOKIE, format!("channeld_session={s}"));
        }
        req
    }

    async fn send(req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        Answer { status, headers, body: resp.text().await.unwrap() }
    }

    pub async fn get(&self, path: &str) -> Answer {
        Self::send(self.request(Method::GET, path)).await
    }

    /// Posts a form (with the given fields only).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        Self::send(form(self.request(Method::POST, path), fields)).await
    }

    /// Posts a form with the CSRF token of the page at `from`.
    pub async fn post_from(&self, from: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.get(from).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }

    /// Logs in through the form, as a browser does (the login cookie and its token).
    pub async fn login_as(&mut self, user: &str, password: &str, extra: &[(&str, &str)]) -> Answer {
        let page = self.get("/login").await;
        let login = page.set_cookie("channeld_login").expect("the login form sets its cookie");
        let value = login.split(';').next().unwrap().to_string();
        let mut req = self.request(Method::POST, "/login").header(COOKIE, value);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let answer =
            Self::send(form(req, &[("csrf", page.csrf().as_str()), ("username", user), ("password", password)])).await;
        if let Some(c) = answer.set_cookie("channeld_session") {
            self.session = Some(c.split(';').next().unwrap().trim_start_matches("channeld_session=").to_string());
        }
        answer
    }

    pub async fn login(&mut self) {
        let answer = self.login_as(USER, PASSWORD, &[]).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    }
}

/// `fields` as an HTML form sends them (`application/x-www-form-urlencoded`).
fn form(req: reqwest::RequestBuilder, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    req.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body.join("&"))
}

/// The SKUs of the scenario: `SKU-i` ↔ inventory item `10_000 + i`; `SKU-3` is refused by Shopify.
pub const QUARANTINED_SKU: &str = "SKU-3";
pub const QUARANTINED_ITEM: u64 = 10_003;

/// A daemon with the console on, and a bit of everything for its pages: order #1001 rejected for
/// two reasons, #3001 sent and packed (booked with the courier; Shopify's fake knows no
/// fulfillment, so its acknowledgement is a dead letter), #2001 refused by the WMS (a dead
/// letter; the WMS takes it again now), five inventory rows pushed of which SKU-3 is quarantined.
pub struct Scenario {
    pub t: TestApp,
    pub shop: InventoryShopify,
    pub courier: FakeCourier,
    pub console: String,
}

pub async fn scenario() -> Scenario {
    let shop = InventoryShopify::start().await;
    let courier = FakeCourier::start().await;
    let t = TestApp::spawn_with(Options {
        routing: "wms",
        max_attempts: 2,
        shopify_url: Some(shop.url()),
        courier_url: Some(courier.url()),
        extra_sections: console_section(),
        ..Options::default()
    })
    .await;
    let console = console_url(&t).await;

    let mut rejected = fixture_order();
    rejected["shipping_address"] = Value::Null;
    rejected["line_items"][1]["sku"] = "".into();
    assert_eq!(t.deliver("orders/create", &rejected, "c1001").await, StatusCode::OK);

    assert_eq!(t.deliver("orders/create", &order_numbered(3001), "c3001").await, StatusCode::OK);
    eventually("order 3001 at the WMS", || t.wms.created().contains(&"3001".to_string())).await;
    let pack = json!({ "orderCode": "3001", "locationCode": "WH-1", "shipmentId": 77,
        "invoice": { "invoiceCode": "INV-77", "invoiceUrl": "https://wms.example/invoices/77.pdf" } });
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    t.wms.set(|b| b.refuse = Some((400, "location WH-1 is not enabled for channel SHOPIFY".into())));
    assert_eq!(t.deliver("orders/create", &order_numbered(2001), "c2001").await, StatusCode::OK);
    t.drained().await;
    t.wms.set(|b| b.refuse = None);

    shop.add_items((0..5).map(|i| 10_000 + i));
    let listings: Vec<_> =
        (0..5).map(|i| channeld::flows::listings::Listing { sku: format!("SKU-{i}"), item_id: 10_000 + i }).collect();
    t.app.store.replace_listings(&listings).unwrap();
    shop.state.refuse.lock().unwrap().insert(QUARANTINED_ITEM);
    let rows: Vec<Value> = (0..5).map(|i| json!({ "channelSkuCode": format!("SKU-{i}"), "quantity": 7 + i })).collect();
    let inventory = json!({ "locationCode": "WH-INV", "inventories": rows });
    assert_eq!(t.wms_call(Method::PUT, "/wms/inventory", &inventory).await.0, StatusCode::OK);
    let report = channeld::jobs::inventory_push::push_pending(&t.app).await.unwrap();
    assert_eq!((report.pushed, report.quarantined), (4, 1));
    Scenario { t, shop, courier, console }
}

/// The dead letter of order #2001's creation.
pub fn dead_creation(t: &TestApp) -> u64 {
    let entries = t.app.store.order_entries(2001).unwrap();
    entries.iter().find(|e| e.task == channeld::flows::model::Task::WmsCreate).expect("2001's creation is dead").seq
}

/// Shopify's level of the quarantined row, once pushed.
pub fn quarantined_level(s: &Scenario) -> Option<i64> {
    s.shop.level(QUARANTINED_ITEM, INVENTORY_LOCATION_ID)
}

#[tokio::test]
async fn the_console_is_off_without_a_password_or_an_address_and_says_which_key_to_set() {
    let (logs, _guard) = LogCapture::start("info");
    let t = TestApp::spawn().await;
    eventually("the daemon to be ready", || t.app.ready.load(std::sync::atomic::Ordering::Acquire)).await;
    assert!(t.app.console_addr.get().is_none(), "no password, no console");
    let said = logs.lines_with("operator console is off");
    assert_eq!(said.len(), 1, "said once: {said:?}");
    assert!(said[0].contains("console.password is empty") && said[0].contains("set console.password"), "{said:?}");
    t.stop().await;

    let no_address = "[console]\nlisten = \"\"\npassword = \"pw\"\n".to_string();
    let t = TestApp::spawn_with(Options { extra_sections: no_address, ..Options::default() }).await;
    eventually("the daemon to be ready", || t.app.ready.load(std::sync::atomic::Ordering::Acquire)).await;
    assert!(t.app.console_addr.get().is_none());
    assert_eq!(logs.lines_with("console.listen is empty").len(), 1);
    // Never on the webhook listener either.
    let answer = t.http.get(t.url("/login")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    t.stop().await;
}

#[tokio::test]
async fn without_a_session_browsers_get_the_login_page_and_scripts_401() {
    let t = TestApp::spawn_with(Options { extra_sections: console_section(), ..Options::default() }).await;
    let c = Client::new(&console_url(&t).await);
    let page = c.get("/orders?status=rejected").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=/orders%3Fstatus%3Drejected");
    let login = c.get(page.location()).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("type=\"password\"") && login.body.contains("value=\"/orders?status=rejected\""));
    for path in ["/", "/orders/450789469", "/outbox", "/inventory", "/shipments"] {
        let script = reqwest::get(format!("{}{path}", c.base)).await.unwrap();
        assert_eq!(script.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // The style sheet is the one thing served to anyone (the login page needs it).
    let css = reqwest::get(format!("{}/static/console.css", c.base)).await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn a_login_sets_a_strict_http_only_cookie_and_wrong_passwords_are_refused_later_each_time() {
    let t = TestApp::spawn_with(Options { extra_sections: console_section(), ..Options::default() }).await;
    let mut c = Client::new(&console_url(&t).await);
    let started = Instant::now();
    let first = c.login_as(USER, "wrong", &[]).await;
    let first_took = started.elapsed();
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    assert!(first.body.contains("Wrong user name or password"), "{}", first.body);
    assert!(first.set_cookie("channeld_session").is_none());
    let started = Instant::now();
    assert_eq!(c.login_as("admin", PASSWORD, &[]).await.status, StatusCode::UNAUTHORIZED, "the user name counts");
    let second_took = started.elapsed();
    assert!(second_took >= Duration::from_millis(500), "a repeat is held back: {second_took:?}");
    assert!(first_took < second_took, "{first_took:?} then {second_took:?}");

    let ok = c.login_as(USER, PASSWORD, &[]).await;
    assert_eq!((ok.status, ok.location()), (StatusCode::SEE_OTHER, "/"));
    let cookie = ok.set_cookie("channeld_session").unwrap();
    assert!(cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Strict") && cookie.contains("; Path=/"));
    assert!(!cookie.contains("Secure"), "plain http on loopback: {cookie}");
    let overview = c.get("/").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("<h1>Overview</h1>"), "{}", overview.body);
    let csp = overview.headers.get(CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("style-src 'self'"), "{csp}");
    assert_eq!(overview.headers.get("cache-control").unwrap(), "no-store");

    // Behind a TLS proxy the cookie is Secure.
    let mut proxied = Client::new(&c.base);
    let ok = proxied.login_as(USER, PASSWORD, &[("X-Forwarded-Proto", "https")]).await;
    assert!(ok.set_cookie("channeld_session").unwrap().ends_with("; Secure"));

    // Logging out ends the session.
    let out = c.post_from("/", "/logout", &[]).await;
    assert_eq!((out.status, out.location()), (StatusCode::SEE_OTHER, "/login"));
    assert_eq!(c.get("/").await.status, StatusCode::SEE_OTHER);
    t.stop().await;
}

#[tokio::test]
async fn every_post_without_the_session_s_csrf_token_is_refused_403() {
    let s = scenario().await;
    let mut c = Client::new(&s.console);
    // A login form posted without its token (another site's form) is refused too.
    assert_eq!(c.post("/login", &[("username", USER), ("password", PASSWORD)]).await.status, StatusCode::FORBIDDEN);
    c.login().await;
    let seq = dead_creation(&s.t).to_string();
    let retry = format!("/outbox/{seq}/retry");
    let posts: [(&str, Vec<(&str, &str)>); 5] = [
        (&retry, vec![]),
        ("/outbox/retry-all", vec![]),
        ("/inventory/release", vec![("sku", QUARANTINED_SKU)]),
        ("/inventory/resync", vec![]),
        ("/orders/450789469/retry", vec![]),
    ];
    for (path, fields) in &posts {
        assert_eq!(c.post(path, fields).await.status, StatusCode::FORBIDDEN, "{path} without a token");
        let mut forged = vec![("csrf", "forged-token-of-the-right-length-0000000000")];
        forged.extend_from_slice(fields);
        assert_eq!(c.post(path, &forged).await.status, StatusCode::FORBIDDEN, "{path} with a wrong token");
    }
    // Another session's token is no better.
    let mut other = Client::new(&s.console);
    other.login().await;
    let theirs = other.get("/").await.csrf();
    assert_eq!(c.post(&retry, &[("csrf", &theirs)]).await.status, StatusCode::FORBIDDEN);
    s.t.drained().await;
    assert!(s
        .t
        .app
        .store
        .order_entries(2001)
        .unwrap()
        .iter()
        .all(|e| e.state == channeld::flows::model::EntryState::Dead));
    assert!(quarantined_level(&s).is_none(), "nothing was done");
    // With the session's own token it goes through.
    assert_eq!(c.post_from("/outbox", &retry, &[]).await.status, StatusCode::SEE_OTHER);
    eventually("the retried creation", || s.t.wms.created().contains(&"2001".to_string())).await;
    s.t.stop().await;
}

#[tokio::test]
async fn the_pages_show_what_the_commands_show_and_the_buttons_run_them() {
    let s = scenario().await;
    let mut c = Client::new(&s.console);
    c.login().await;

    let overview = c.get("/").await.body;
    assert!(overview.contains("Ready: serving"), "{overview}");
    assert!(overview.contains("2 dead") && overview.contains("1 quarantined"), "{overview}");
    assert!(overview.contains("<svg") && overview.contains("Orders per hour"), "{overview}");
    assert!(overview.contains("Acknowledgement latency"));

    // Orders: filtered by status, found by name, shown with every reason and a timeline.
    let rejected = c.get("/orders?status=rejected").await.body;
    assert!(rejected.contains("#1001") && rejected.contains("#2001") && !rejected.contains("#3001"), "{rejected}");
    let found = c.get("/orders?q=%231001").await;
    assert_eq!((found.status, found.location()), (StatusCode::SEE_OTHER, "/orders/450789469"));
    let order = c.get("/orders/450789469").await.body;
    assert!(order.contains("shipping address is missing") && order.contains("no SKU"), "{order}");
    assert!(order.contains("webhook orders/create: rejected"), "the timeline: {order}");
    let unknown = c.get("/orders/999").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(c.get("/orders?q=nothing-like-it").await.body.contains("no order nothing-like-it is stored"));
    let shipped = c.get("/orders/3001").await.body;
    assert!(shipped.contains("wms_create delivered") && shipped.contains("booked: AWB WB-3001-s77"), "{shipped}");

    // Outbox: the dead letters, retried one at a time from the order's page.
    let outbox = c.get("/outbox").await.body;
    let seq = dead_creation(&s.t);
    assert!(outbox.contains(&format!("id=\"entry-{seq}\"")) && outbox.contains("not enabled for channel"), "{outbox}");
    let confirm = c.get("/outbox/retry-all").await.body;
    assert!(confirm.contains("Retry all 2"), "{confirm}");
    let back = "/orders/2001".to_string();
    let done = c.post_from(&back, &format!("/outbox/{seq}/retry"), &[("back", &back)]).await;
    assert_eq!((done.status, done.location()), (StatusCode::SEE_OTHER, back.as_str()));
    eventually("the retried creation", || s.t.wms.created().contains(&"2001".to_string())).await;
    let after = c.get(&back).await.body;
    assert!(after.contains("1 call(s) queued again"), "the flash: {after}");
    assert!(after.contains("wms_create queued again by the operator"), "{after}");

    // Inventory: the quarantined row with Shopify's reason, released, then pushed.
    let inventory = c.get("/inventory").await.body;
    assert!(inventory.contains(QUARANTINED_SKU) && inventory.contains("could not be found"), "{inventory}");
    s.shop.state.refuse.lock().unwrap().clear();
    let released = c.post_from("/inventory", "/inventory/release", &[("sku", QUARANTINED_SKU)]).await;
    assert_eq!(released.status, StatusCode::SEE_OTHER);
    assert!(c.get("/inventory").await.body.contains("1 row(s) of SKU-3 released"));
    channeld::jobs::inventory_push::push_pending(&s.t.app).await.unwrap();
    assert_eq!(quarantined_level(&s), Some(10));

    // Shipments: the booking with its AWB, label and invoice.
    assert_eq!(s.courier.calls_to("/api/v3/create-order/").len(), 1, "booked once, with the courier's fake");
    let shipments = c.get("/shipments").await.body;
    assert!(shipments.contains("WB-3001-s77") && shipments.contains("href=\"https://labels.example/"), "{shipments}");
    assert!(shipments.contains("href=\"https://wms.example/invoices/77.pdf\""), "{shipments}");
    // Filtered by tracking status (booked until a courier scans it), as `shipments list --status`.
    assert!(c.get("/shipments?status=booked").await.body.contains("WB-3001-s77"));
    let delivered = c.get("/shipments?status=delivered").await.body;
    assert!(!delivered.contains("WB-3001-s77") && delivered.contains("No shipment here."), "{delivered}");
    // The order's page lists it with its tracking status.
    let order_page = c.get("/orders/3001").await.body;
    assert!(order_page.contains("<h2>Shipments</h2>") && order_page.contains("WB-3001-s77"), "{order_page}");

    // Nothing on any page loads from elsewhere: no script, no external style or image.
    for page in [&overview, &order, &outbox, &inventory, &shipments] {
        assert!(!page.contains("<script") && !page.contains("src=\"http") && !page.contains("style=\""));
        assert!(page.contains("href=\"/static/console.css\""));
    }
    s.t.stop().await;
}

#[tokio::test]
async fn acknowledgements_are_timed_for_the_chart_and_the_metrics() {
    let t = TestApp::spawn().await;
    let before = t.app.ack_latency.hours(0).iter().map(|h| h.count).sum::<u64>();
    assert_eq!(t.deliver("orders/create", &order_numbered(5001), "a1").await, StatusCode::OK);
    let after = t.app.ack_latency.hours(0).iter().map(|h| h.count).sum::<u64>();
    assert_eq!(after, before + 1);
    let metrics = t.http.get(t.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("channeld_webhook_ack_seconds_count"), "{metrics}");
    assert!(metrics.contains("channeld_webhook_last_received_timestamp_seconds"), "{metrics}");
    t.stop().await;
}
