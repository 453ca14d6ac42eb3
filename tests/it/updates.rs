//! `orders/updated` and `orders/cancelled`: what reaches the WMS, and what does not.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{eventually, fixture_order, LogCapture, Options, TestApp};

#[tokio::test]
async fn hold_tag_is_forwarded_note_and_stale_updates_are_not() {
    let t = TestApp::spawn().await;
    t.deliver("orders/create", &fixture_order(), "c1").await;
    t.drained().await;
    assert_eq!(t.wms.calls_to("POST", "/orders/outward").len(), 1);

    // Only the note changes: nothing to send.
    let mut note = fixture_order();
    note["note"] = "leave at the door".into();
    note["updated_at"] = "2008-01-10T12:00:00-05:00".into();
    assert_eq!(t.deliver("orders/updated", &note, "u1").await, StatusCode::OK);

    // A hold tag: one Update Order Properties with onHold true.
    let mut hold = note.clone();
    hold["tags"] = "vip, on-hold".into();
    hold["updated_at"] = "2008-01-10T13:00:00-05:00".into();
    assert_eq!(t.deliver("orders/updated", &hold, "u2").await, StatusCode::OK);

    // An older update (without the tag) arriving late: ignored.
    let mut stale = note.clone();
    stale["updated_at"] = "2008-01-10T12:30:00-05:00".into();
    assert_eq!(t.deliver("orders/updated", &stale, "u3").await, StatusCode::OK);
    t.drained().await;

    let updates = t.wms.calls_to("PUT", "/orders/450789469");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].body["onHold"], true);
    assert_eq!(updates[0].body["dispatchByTime"], "2008-01-12T16:00:00.000Z");
    assert_eq!(updates[0].body["startProcessingTime"], "2008-01-10T16:00:00.000Z");
    t.stop().await;
}

/// CONTRACT §5.1: a change the WMS is not told about is logged, counted and shown on the order,
/// once (#24).
#[tokio::test]
async fn an_address_changed_after_creation_is_not_forwarded_but_logged_counted_and_flagged_once() {
    let (log, _logs) = LogCapture::start("info");
    let t = TestApp::spawn().await;
    t.deliver("orders/create", &fixture_order(), "c1").await;
    t.drained().await;
    const NOT_FORWARDED: &str = "channeld_order_changes_not_forwarded_total{change=\"address\"}";
    let counted_before = t.metric(NOT_FORWARDED).await;

    let mut moved = fixture_order();
    moved["shipping_address"]["address1"] = "1 Other Street".into();
    moved["updated_at"] = "2008-01-10T12:00:00-05:00".into();
    assert_eq!(t.deliver("orders/updated", &moved, "u1").await, StatusCode::OK);
    // Delivered again under another event id (Shopify does): already flagged, not reported again.
    assert_eq!(t.deliver("orders/updated", &moved, "u2").await, StatusCode::OK);
    t.drained().await;
    assert!(t.wms.calls_to("PUT", "/orders/450789469").is_empty(), "nothing is sent for an address");

    let warned = log.lines_with("this change is not forwarded to the WMS");
    assert_eq!(warned.len(), 1, "{}", log.text());
    let line: serde_json::Value = serde_json::from_str(&warned[0]).unwrap();
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(
        (line["fields"]["order"].as_u64(), line["fields"]["change"].as_str()),
        (Some(450789469), Some("address"))
    );
    assert_eq!(t.metric(NOT_FORWARDED).await, counted_before + 1.0, "counted once, as an address change");
    let (ok, out, err) = t.cli(&["orders", "show", "450789469"]).await;
    assert!(ok && out.contains("flag       address changed on Shopify after creation (not forwarded"), "{out}{err}");
    t.stop().await;
}

#[tokio::test]
async fn cancellation_after_creation_cancels_every_item() {
    let t = TestApp::spawn().await;
    t.deliver("orders/create", &fixture_order(), "c1").await;
    t.drained().await;
    let mut cancelled = fixture_order();
    cancelled["cancelled_at"] = "2008-01-10T14:00:00-05:00".into();
    cancelled["cancel_reason"] = "customer".into();
    assert_eq!(t.deliver("orders/cancelled", &cancelled, "x1").await, StatusCode::OK);
    assert_eq!(t.deliver("orders/cancelled", &cancelled, "x2").await, StatusCode::OK);
    t.drained().await;
    let cancels = t.wms.calls_to("PUT", "/orders/450789469/cancel");
    assert_eq!(cancels.len(), 1);
    assert_eq!(
        cancels[0].body,
        json!({ "locationCode": "WH-1", "orderItems": [
            { "channelSkuCode": "IPOD2008RED", "orderItemCode": "518995019", "cancelledQuantity": 1 }
        ] })
    );
    t.stop().await;
}

#[tokio::test]
async fn cancellation_while_wms_down_sends_no_creation_but_a_cancellation() {
    let t = TestApp::spawn_with(Options { max_attempts: 100, ..Options::default() }).await;
    t.wms.set(|b| b.fail_next = 1_000);
    t.deliver("orders/create", &fixture_order(), "c1").await;
    // The creation has been tried and is waiting to retry.
    eventually("a failed creation attempt", || !t.wms.calls_to("POST", "/orders/outward").is_empty()).await;
    let mut cancelled = fixture_order();
    cancelled["cancelled_at"] = "2008-01-10T14:00:00-05:00".into();
    t.deliver("orders/cancelled", &cancelled, "x1").await;
    // A 500 does not say whether the WMS created the order first: once it is back, the queued
    // creation is dropped and the cancellation is sent; "not found" means there is nothing to ship.
    t.wms.set(|b| b.fail_next = 0);
    t.drained().await;
    assert!(!t.wms.calls_to("PUT", "/orders/450789469/cancel").is_empty());
    assert!(t.app.store.outbox_entries().unwrap().is_empty());
    let rec = t.app.store.order(450789469).unwrap().unwrap();
    assert_eq!(rec.status, channeld::flows::model::OrderStatus::Cancelled);
    t.stop().await;
}

#[tokio::test]
async fn update_for_unknown_order_creates_it() {
    let t = TestApp::spawn().await;
    assert_eq!(t.deliver("orders/updated", &fixture_order(), "u1").await, StatusCode::OK);
    t.drained().await;
    assert_eq!(t.wms.created(), vec!["450789469".to_string()]);
    t.stop().await;
}
