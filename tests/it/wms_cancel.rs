//! Customer cancellations to the WMS are replay-safe: a WMS answering that the order is already
//! cancelled (a cancellation whose 200 was lost, then sent again) has what we wanted.

use channeld::flows::model::EntryState;
use reqwest::StatusCode;

use crate::helpers::{fixture_order, Options, TestApp};

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
