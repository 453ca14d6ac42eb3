//! Orders as Shopify's webhooks really carry them: read leniently where the rest of the order is,
//! and rejected with a reason (stored, never sent) when they cannot be mapped.

use channeld::flows::model::{OrderRecord, OrderStatus};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{fixture_order, Options, TestApp};

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options { routing: "wms", ..Options::default() }).await
}

/// Delivers `order` as orders/create and returns what is stored for it once the outbox is idle.
async fn ingest(t: &TestApp, order: &Value) -> OrderRecord {
    assert_eq!(t.deliver("orders/create", order, "e1").await, StatusCode::OK);
    t.drained().await;
    t.app.store.order(order["id"].as_u64().unwrap()).unwrap().expect("stored")
}

fn rejected_for(rec: &OrderRecord, words: &str) {
    assert_eq!(rec.status, OrderStatus::Rejected, "{rec:?}");
    assert!(rec.reasons.iter().any(|r| r.contains(words)), "no reason with {words:?}: {:?}", rec.reasons);
}

#[tokio::test]
async fn line_ids_and_quantities_written_as_strings_are_read() {
    let t = spawn().await;
    let mut o = fixture_order();
    o["line_items"][1]["id"] = "518995019".into();
    o["line_items"][1]["current_quantity"] = "1".into();
    let rec = ingest(&t, &o).await;
    assert_eq!(rec.status, OrderStatus::Sent, "{rec:?}");
    let sent = t.wms.calls_to("POST", "/orders/outward");
    assert_eq!(sent[0].body["orderItems"][0]["orderItemCode"], "518995019");
    assert_eq!(sent[0].body["orderItems"][0]["quantity"], 1);
    t.stop().await;
}

#[tokio::test]
async fn a_line_without_an_id_rejects_the_order_naming_the_line() {
    let t = spawn().await;
    let mut o = fixture_order();
    o["line_items"][1]["id"] = Value::Null;
    let rec = ingest(&t, &o).await;
    rejected_for(&rec, "IPOD2008RED");
    rejected_for(&rec, "has no id");
    assert!(t.wms.created().is_empty());
    t.stop().await;
}

#[tokio::test]
async fn quantities_that_overflow_when_merged_reject_the_order() {
    let t = spawn().await;
    let mut o = fixture_order();
    // Two lines of one SKU whose quantities add up past u32::MAX.
    for i in [1, 2] {
        o["line_items"][i]["sku"] = "IPOD2008RED".into();
        o["line_items"][i]["quantity"] = u32::MAX.into();
        o["line_items"][i]["current_quantity"] = u32::MAX.into();
    }
    let rec = ingest(&t, &o).await;
    rejected_for(&rec, "IPOD2008RED");
    rejected_for(&rec, "more units than");
    assert!(t.wms.created().is_empty());
    t.stop().await;
}

#[tokio::test]
async fn an_order_with_id_0_is_stored_as_rejected_and_never_sent() {
    let t = spawn().await;
    let mut o = fixture_order();
    o["id"] = 0.into();
    let rec = ingest(&t, &o).await;
    rejected_for(&rec, "id 0");
    // A cancellation under id 0 does not make it a cancelled order either.
    o["cancelled_at"] = "2026-11-27T10:00:00Z".into();
    assert_eq!(t.deliver("orders/cancelled", &o, "e2").await, StatusCode::OK);
    t.drained().await;
    rejected_for(&t.app.store.order(0).unwrap().unwrap(), "id 0");
    assert!(t.wms.calls().is_empty(), "{:?}", t.wms.calls());
    t.stop().await;
}

#[tokio::test]
async fn a_negative_price_rejects_the_order() {
    let t = spawn().await;
    let mut o = fixture_order();
    o["line_items"][1]["price"] = "-199.00".into();
    let rec = ingest(&t, &o).await;
    rejected_for(&rec, "518995019");
    rejected_for(&rec, "negative");
    assert!(t.wms.created().is_empty());
    t.stop().await;
}

#[tokio::test]
async fn discounts_above_the_price_reject_the_order() {
    let t = spawn().await;
    let mut o = fixture_order();
    o["line_items"][1]["discount_allocations"] = serde_json::json!([{ "amount": "500.00" }]);
    let rec = ingest(&t, &o).await;
    rejected_for(&rec, "negative");
    assert!(t.wms.created().is_empty());
    t.stop().await;
}
