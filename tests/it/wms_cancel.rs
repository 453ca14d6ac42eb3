//! Customer cancellations to the WMS are replay-safe: a WMS answering that the order is already
//! cancelled (a cancellation whose 200 was lost, then sent again) has what we wanted.

use channeld::flows::model::EntryState;
use reqwest::StatusCode;

use crate::helpers::{eventually, fixture_order, Options, TestApp};

async fn created_then_cancelled(refusal: &str) -> TestApp {
    let t = TestApp::spawn_with(Options { routing: "wms", ..Options::default() }).await;
    assert_eq!(t.deliver("orders/create", &fixture_order(), "c1").await, StatusCode::OK);
    t.drained().await;
    assert_eq!(t.wms.created(), vec!["450789469".to_string()]);
    t.wms.set(|b| b.refuse = Some((400, refusal.to_string())));
    let mut cancelled = fixture_order();
    cancelled["cancelled_at"] = "2026-11-27T10:00:00Z".into();
    assert_eq!(t.deliver("orders/cancelled", &cancelled, "x1").await, StatusCode::OK);
    t.drained().await;
    assert_eq!(t.wms.calls_to("PUT", "/orders/450789469/cancel").len(), 1);
    t
}

#[tokio::test]
async fn a_wms_answer_that_the_order_is_already_cancelled_counts_as_delivered() {
    let t = created_then_cancelled("Order 450789469 is Already Cancelled").await;
    assert!(t.app.store.outbox_entries().unwrap().is_empty(), "delivered, not dead-lettered");
    t.stop().await;
}

#[tokio::test]
async fn any_other_refusal_of_a_cancellation_is_still_dead_lettered() {
    let t = created_then_cancelled("Input validation failed").await;
    let entries = t.app.store.outbox_entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].state, EntryState::Dead);
    t.stop().await;
}

// ---------------------------------------------------------------------------------------------
// A cancellation after a creation whose outcome channeld does not know (#2).

fn cancelled_order() -> serde_json::Value {
    let mut o = fixture_order();
    o["cancelled_at"] = "2026-11-27T10:00:00Z".into();
    o
}

async fn spawn(max_attempts: u32) -> TestApp {
    TestApp::spawn_with(Options { routing: "wms", max_attempts, ..Options::default() }).await
}

#[tokio::test]
async fn a_cancellation_after_a_creation_whose_answer_was_lost_reaches_the_wms() {
    let t = spawn(1_000).await;
    // The WMS creates the order but every answer is lost: channeld keeps retrying the creation.
    t.wms.set(|b| b.lose_answers = u32::MAX);
    t.deliver("orders/create", &fixture_order(), "c1").await;
    eventually("the WMS to hold the order", || t.wms.created() == vec!["450789469".to_string()]).await;
    assert_eq!(t.deliver("orders/cancelled", &cancelled_order(), "x1").await, StatusCode::OK);
    t.wms.set(|b| b.lose_answers = 0);
    t.drained().await;
    let cancels = t.wms.calls_to("PUT", "/orders/450789469/cancel");
    assert!(!cancels.is_empty(), "the WMS holds an order the customer cancelled");
    assert_eq!(cancels[0].body["orderItems"][0]["cancelledQuantity"], 1);
    assert!(t.app.store.outbox_entries().unwrap().is_empty());
    let rec = t.app.store.order(450789469).unwrap().unwrap();
    assert_eq!(rec.status, channeld::flows::model::OrderStatus::Cancelled);
    t.stop().await;
}

#[tokio::test]
async fn a_cancellation_after_an_unconfirmed_creation_was_dead_lettered_is_not_held_back() {
    let t = spawn(1).await;
    t.wms.set(|b| b.lose_answers = 1);
    t.deliver("orders/create", &fixture_order(), "c1").await;
    eventually("a dead letter", || t.app.store.outbox_entries().unwrap().iter().any(|e| e.state == EntryState::Dead))
        .await;
    assert_eq!(t.deliver("orders/cancelled", &cancelled_order(), "x1").await, StatusCode::OK);
    t.drained().await;
    assert_eq!(t.wms.calls_to("PUT", "/orders/450789469/cancel").len(), 1);
    assert!(t.app.store.outbox_entries().unwrap().is_empty(), "the dead creation cannot be sent any more");
    assert_eq!(t.wms.calls_to("POST", "/orders/outward").len(), 1, "the creation is not sent after the cancellation");
    t.stop().await;
}

#[tokio::test]
async fn a_wms_answer_that_it_does_not_know_the_order_counts_as_delivered() {
    let t = spawn(1_000).await;
    // The creation never arrives (500 before the WMS does anything), but channeld cannot know.
    t.wms.set(|b| b.fail_next = u32::MAX);
    t.deliver("orders/create", &fixture_order(), "c1").await;
    eventually("a creation attempt", || !t.wms.calls_to("POST", "/orders/outward").is_empty()).await;
    assert_eq!(t.deliver("orders/cancelled", &cancelled_order(), "x1").await, StatusCode::OK);
    t.wms.set(|b| b.fail_next = 0);
    t.drained().await;
    assert!(t.wms.created().is_empty());
    assert!(!t.wms.calls_to("PUT", "/orders/450789469/cancel").is_empty());
    assert!(t.app.store.outbox_entries().unwrap().is_empty(), "\"Order not found\" counts as done");
    t.stop().await;
}

#[tokio::test]
async fn a_creation_is_marked_as_possibly_at_the_wms_before_it_is_sent() {
    let t = spawn(5).await;
    t.wms.set(|b| b.delay = std::time::Duration::from_millis(1500));
    t.deliver("orders/create", &fixture_order(), "c1").await;
    eventually("the creation at the WMS", || !t.wms.calls_to("POST", "/orders/outward").is_empty()).await;
    let rec = t.app.store.order(450789469).unwrap().unwrap();
    assert!(rec.creation_unconfirmed(), "marked while the WMS has not answered: {:?}", rec.flags);
    t.drained().await;
    let rec = t.app.store.order(450789469).unwrap().unwrap();
    assert!(rec.wms_created && !rec.creation_unconfirmed(), "{:?}", rec.flags);
    t.stop().await;
}
