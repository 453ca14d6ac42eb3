//! Fulfilment calls from the WMS. So far: handover and the archive job.

use channeld::jobs::archive;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Options, TestApp};
use crate::shopify_admin_fake::AdminShopify;

async fn spawn(archive: bool) -> (TestApp, AdminShopify) {
    let shop = AdminShopify::start().await;
    let t = TestApp::spawn_with(Options { shopify_url: Some(shop.url()), archive, ..Options::default() }).await;
    (t, shop)
}

fn handover() -> serde_json::Value {
    json!({ "locationCode": "WH-1", "handoverItems": [
        { "orderCode": "450789469", "shipmentCode": "120001", "gatePassCode": "g1", "packBoxDetailsList": [] },
        { "orderCode": "5001", "shipmentCode": 120002 } ] })
}

fn closes(shop: &AdminShopify) -> Vec<String> {
    let mut c: Vec<String> = shop.log().into_iter().filter(|l| l.starts_with("closed ")).collect();
    c.sort();
    c
}

#[tokio::test]
async fn handed_over_orders_are_archived_once() {
    let (t, shop) = spawn(true).await;
    for _ in 0..2 {
        let (status, body) = t.wms_call(Method::POST, "/wms/handover", &handover()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["hasError"], false);
    }
    archive::run(&t.app).await.unwrap();
    assert_eq!(closes(&shop), vec!["closed gid://shopify/Order/450789469", "closed gid://shopify/Order/5001"]);
    archive::run(&t.app).await.unwrap();
    assert_eq!(closes(&shop).len(), 2, "each order is closed once");
    t.stop().await;
}

#[tokio::test]
async fn archive_false_only_records() {
    let (t, shop) = spawn(false).await;
    let (status, _) = t.wms_call(Method::POST, "/wms/handover", &handover()).await;
    assert_eq!(status, StatusCode::OK);
    archive::run(&t.app).await.unwrap();
    assert!(closes(&shop).is_empty());
    assert_eq!(t.app.store.handovers().unwrap().len(), 2);
    t.stop().await;
}

#[tokio::test]
async fn handover_with_a_bad_order_code_is_refused_whole() {
    let (t, _shop) = spawn(true).await;
    let (status, body) = t
        .wms_call(
            Method::POST,
            "/wms/handover",
            &json!({ "locationCode": "WH-1", "handoverItems": [{ "orderCode": "abc" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["hasError"], true);
    assert!(t.app.store.handovers().unwrap().is_empty());
    t.stop().await;
}
