//! Operations: doctor, webhook registration, local webhook sending, reconciliation, client
//! credentials, metrics and readiness.

use std::time::Duration;

use channeld::jobs::reconcile;
use serde_json::Value;

use crate::fakes::FakeWms;
use crate::helpers::{fixture_order, run_cli, write_config, Options, TestApp};
use crate::shopify_admin_fake::AdminShopify;

const PUBLIC: &str = "https://connector.example.com";

async fn spawn() -> (TestApp, AdminShopify) {
    let shop = AdminShopify::start().await;
    let t = TestApp::spawn_with(Options { shopify_url: Some(shop.url()), ..Options::default() }).await;
    (t, shop)
}

fn register_ours(shop: &AdminShopify) {
    for (topic, path) in
        [("ORDERS_CREATE", "orders"), ("ORDERS_UPDATED", "orderUpdate"), ("ORDERS_CANCELLED", "orderCancel")]
    {
        shop.add_subscription(topic, &format!("{PUBLIC}/shopify/api/push/{path}"), &[]);
    }
}

fn graphql_order(id: u64, updated_at: &str) -> Value {
    let mut o: Value = serde_json::from_str(include_str!("../fixtures/shopify-graphql/order_450789469.json")).unwrap();
    o["legacyResourceId"] = id.to_string().into();
    o["name"] = format!("#{id}").into();
    o["updatedAt"] = updated_at.into();
    o
}

#[tokio::test]
async fn doctor_passes_against_healthy_fakes() {
    let (t, shop) = spawn().await;
    register_ours(&shop);
    let (ok, out, err) = t.cli(&["doctor"]).await;
    assert!(ok, "{out}\n{err}");
    assert!(!out.contains("FAIL"), "{out}");
    for line in [
        "Shopify reachable, token accepted",
        "every access scope",
        "location 24826418",
        "webhook subscriptions point at",
        "WMS reachable",
        "Clickpost reachable",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    t.stop().await;
}

#[tokio::test]
async fn doctor_names_missing_scopes_with_their_flow() {
    let (t, shop) = spawn().await;
    register_ours(&shop);
    shop.state.scopes.lock().unwrap().retain(|s| s != "write_inventory" && s != "read_inventory");
    let (ok, out, _) = t.cli(&["doctor"]).await;
    assert!(!ok);
    assert!(out.contains("FAIL  access scope write_inventory is missing (needed by inventory (push))"), "{out}");
    assert!(out.contains("FAIL  access scope read_inventory is missing (needed by inventory (listings))"), "{out}");
    t.stop().await;
}

#[tokio::test]
async fn doctor_reports_a_bad_token_and_an_unreachable_wms() {
    let shop = AdminShopify::start().await;
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let o = Options { shopify_auth: "access_token = \"shpat_wrong\"", ..Options::default() };
    let config = write_config(dir.path(), addr, "http://127.0.0.1:9", &shop.url(), &o);
    let (ok, out, _) = run_cli(&config, &["doctor"]).await;
    assert!(!ok);
    assert!(out.contains("FAIL  Shopify refused the token") && out.contains("fix: set shopify.access_token"), "{out}");
    assert!(out.contains("FAIL  WMS at http://127.0.0.1:9 is not reachable"), "{out}");
}

#[tokio::test]
async fn webhooks_register_fixes_ours_leaves_others_and_is_idempotent() {
    let (t, shop) = spawn().await;
    shop.add_subscription("ORDERS_CREATE", &format!("{PUBLIC}/old/orders"), &[]);
    shop.add_subscription("ORDERS_CREATE", "https://other-app.example.com/hook", &[]);
    let (ok, out, err) = t.cli(&["webhooks", "register"]).await;
    assert!(ok, "{out}{err}");
    let mut subs = shop.subscriptions();
    subs.sort();
    let mut want = vec![
        ("ORDERS_CANCELLED".to_string(), format!("{PUBLIC}/shopify/api/push/orderCancel")),
        ("ORDERS_CREATE".to_string(), format!("{PUBLIC}/shopify/api/push/orders")),
        ("ORDERS_CREATE".to_string(), "https://other-app.example.com/hook".to_string()),
        ("ORDERS_UPDATED".to_string(), format!("{PUBLIC}/shopify/api/push/orderUpdate")),
    ];
    want.sort();
    assert_eq!(subs, want);
    let mutations = |log: Vec<String>| log.iter().filter(|l| l.starts_with("mutation")).count();
    let before = mutations(shop.log());
    let (ok, out, _) = t.cli(&["webhooks", "register"]).await;
    assert!(ok && out.contains("3 kept, 0 created, 0 deleted"), "{out}");
    assert_eq!(mutations(shop.log()), before, "a second run changes nothing");
    let (ok, out, _) = t.cli(&["webhooks", "list"]).await;
    assert!(ok && out.contains("[not ours]") && out.matches("[ours]").count() == 3, "{out}");
    t.stop().await;
}

#[tokio::test]
async fn webhook_send_reaches_the_wms_through_a_running_daemon() {
    let t = TestApp::spawn().await;
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/shopify/order_450789469_get_2025-10.json");
    let (ok, out, err) = t.cli(&["webhook", "send", "--topic", "orders/create", "--file", file]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("200 OK"), "{out}");
    t.drained().await;
    assert_eq!(t.wms.created(), vec!["450789469".to_string()]);
    t.stop().await;
}

#[tokio::test]
async fn reconciliation_creates_missed_orders_once_and_forwards_missed_cancellations() {
    let (t, shop) = spawn().await;
    // Delivered by webhook already.
    t.deliver("orders/create", &fixture_order(), "c1").await;
    t.drained().await;
    shop.put_order(graphql_order(450789469, "2008-01-10T16:00:00Z"));
    // Two orders whose webhooks never came.
    shop.put_order(graphql_order(5001, "2026-11-27T09:00:00Z"));
    shop.put_order(graphql_order(5002, "2026-11-27T09:05:00Z"));
    let summary = reconcile::run(&t.app).await.unwrap();
    assert!(summary.contains("2 fetched"), "{summary}");
    t.drained().await;
    let mut created = t.wms.created();
    created.sort();
    assert_eq!(created, vec!["450789469", "5001", "5002"]);
    assert_eq!(t.wms.calls_to("POST", "/orders/outward").len(), 3, "the delivered order is not resent");

    // A cancellation that only polling sees.
    let mut cancelled = graphql_order(5001, "2026-11-27T09:30:00Z");
    cancelled["cancelledAt"] = "2026-11-27T09:30:00Z".into();
    shop.put_order(cancelled);
    reconcile::run(&t.app).await.unwrap();
    t.drained().await;
    assert_eq!(t.wms.calls_to("PUT", "/orders/5001/cancel").len(), 1);
    // Nothing new: nothing sent.
    let calls = t.wms.calls().len();
    reconcile::run(&t.app).await.unwrap();
    t.drained().await;
    assert_eq!(t.wms.calls().len(), calls);
    t.stop().await;
}

/// A GraphQL order with `n` lines, each of its own SKU.
fn long_order(id: u64, updated_at: &str, n: u64) -> Value {
    let mut o = graphql_order(id, updated_at);
    let line = o["lineItems"]["nodes"][1].clone();
    let lines: Vec<Value> = (0..n)
        .map(|i| {
            let mut l = line.clone();
            l["id"] = format!("gid://shopify/LineItem/{}", 900_000 + i).into();
            l["sku"] = format!("SKU-{i}").into();
            l
        })
        .collect();
    o["lineItems"] = serde_json::json!({ "nodes": lines });
    o
}

#[tokio::test]
async fn reconciliation_pages_long_orders_and_skips_one_it_cannot_map() {
    let (t, shop) = spawn().await;
    shop.put_order(long_order(5003, "2026-11-27T09:00:00Z", 130));
    shop.put_order(graphql_order(5004, "2026-11-27T09:10:00Z"));
    shop.state.refused_orders.lock().unwrap().insert(5004);
    shop.put_order(graphql_order(5005, "2026-11-27T09:05:00Z"));
    let summary = reconcile::run(&t.app).await.expect("one unmappable order does not fail the run");
    assert!(summary.contains("2 fetched") && summary.contains("1 skipped"), "{summary}");
    t.drained().await;
    let mut created = t.wms.created();
    created.sort();
    assert_eq!(created, vec!["5003", "5005"]);
    let long = t.wms.calls_to("POST", "/orders/outward").into_iter().find(|c| c.body["orderCode"] == "5003").unwrap();
    assert_eq!(long.body["orderItems"].as_array().unwrap().len(), 130, "every line, across pages");
    let pages = shop.log().iter().filter(|l| l.as_str() == "query OrderLines").count();
    assert_eq!(pages, 1, "130 lines: the order's first page of 80, then one more");

    // The skipped order is recorded with why, counted, and the watermark moved past it.
    let skipped = t.app.store.order(5004).unwrap().unwrap();
    assert_eq!(skipped.status, channeld::flows::model::OrderStatus::Rejected);
    assert!(skipped.reasons.iter().any(|r| r.contains("MAX_COST_EXCEEDED")), "{:?}", skipped.reasons);
    let (ok, out, err) = t.cli(&["orders", "show", "5004"]).await;
    assert!(ok && out.contains("could not map it from Shopify"), "{out}{err}");
    let watermark = t.app.store.reconcile_watermark().unwrap().unwrap();
    assert_eq!(Some(watermark), channeld::flows::parse_time("2026-11-27T09:10:00Z").map(|t| t.timestamp_millis()));
    let metrics = t.http.get(t.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("channeld_reconcile_orders_skipped_total"), "{metrics}");

    // Its webhook, when it comes, still creates it.
    let mut webhook = crate::helpers::order_numbered(5004);
    webhook["updated_at"] = "2026-11-27T09:10:00Z".into();
    t.deliver("orders/create", &webhook, "late").await;
    t.drained().await;
    assert!(t.wms.created().contains(&"5004".to_string()));
    t.stop().await;
}

#[tokio::test]
async fn client_credentials_tokens_are_renewed_before_they_expire() {
    let shop = AdminShopify::start().await;
    *shop.state.token_lifetime.lock().unwrap() = Duration::from_secs(2);
    let wms = FakeWms::start().await;
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let o = Options { shopify_auth: "client_id = \"cc-id\"\nclient_secret = \"cc-secret\"", ..Options::default() };
    let config = write_config(dir.path(), addr, &wms.url(), &shop.url(), &o);
    let cfg = channeld::config::Config::load(&config).unwrap();
    let client = channeld::shopify::ShopifyClient::new(&cfg).unwrap();
    for _ in 0..20 {
        client.locations().await.expect("every call succeeds");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let grants = shop.log().iter().filter(|l| *l == "grant").count();
    assert!(grants >= 3, "5 s of calls with 2 s tokens need renewals, got {grants}");
    assert_eq!(*shop.state.refused_tokens.lock().unwrap(), 0, "no call used an expired token");
}

#[tokio::test]
async fn metrics_show_the_series_and_readiness_waits_for_the_server() {
    // Not ready before the server (store open, workers and jobs started) runs.
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cfg = channeld::config::Config::load(&write_config(
        dir.path(),
        addr,
        &wms.url(),
        "http://127.0.0.1:9",
        &Options::default(),
    ))
    .unwrap();
    let store = channeld::store::Store::open(&cfg.storage.path, 8).unwrap();
    let app = channeld::services::open(cfg, store).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, channeld::http::router(app)).await });
    let status = reqwest::get(format!("http://{bare}/readyz")).await.unwrap().status();
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);

    let t = TestApp::spawn().await;
    assert!(t.http.get(t.url("/readyz")).send().await.unwrap().status().is_success());
    t.deliver("orders/create", &fixture_order(), "m1").await;
    t.drained().await;
    channeld::jobs::run_recorded(&t.app, "inventory_push", |app| {
        Box::pin(async move { channeld::jobs::inventory_push::run(&app).await })
    })
    .await;
    // A courier call, through the path every Clickpost and Shiprocket call takes.
    let _ = channeld::courier::send("clickpost", "Clickpost", t.http.get(t.wms.url())).await;
    let text = t.http.get(t.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for series in [
        "channeld_courier_calls_total{courier=\"clickpost\",result=\"ok\"}",
        "channeld_courier_call_seconds",
        "channeld_webhooks_total{topic=\"orders/create\",result=\"queued\"}",
        "channeld_outbox_pending",
        "channeld_outbox_dead",
        "channeld_wms_calls_total{call=\"create_order\",result=\"ok\"}",
        "channeld_wms_call_seconds",
        "channeld_shopify_calls_total",
        "channeld_shopify_call_seconds",
        "channeld_orders{status=\"sent\"}",
        "channeld_inventory_rows{state=\"pending\"}",
        "channeld_job_last_run_timestamp_seconds{job=\"inventory_push\"}",
        "channeld_job_last_success{job=\"inventory_push\"}",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    assert!(!text.contains("Bob") && !text.contains("Chestnut"), "no personal data in metrics");
    t.stop().await;
}
