//! How Shopify's top-level GraphQL errors end a call: server-side trouble is retried by the
//! outbox, a refusal of the request itself is dead-lettered at once.

use channeld::flows::model::EntryState;
use reqwest::StatusCode;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::fakes::GRAPHQL_PATH;
use crate::helpers::{fixture_order, TestApp};

/// Answers the next `times` fulfillment-orders queries (routing) with this top-level error.
async fn routing_fails(t: &TestApp, code: &str, times: u64) {
    let body = json!({ "errors": [{ "message": format!("something went wrong ({code})"),
        "extensions": { "code": code, "requestId": "1b355a21-7117-44c5-8d8b-8948082f40a8" } }] });
    Mock::given(method("POST"))
        .and(path(GRAPHQL_PATH))
        .and(body_string_contains("query FulfillmentOrders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .up_to_n_times(times)
        .with_priority(1)
        .mount(&t.shopify.server)
        .await;
}

async fn routing_queries(t: &TestApp) -> usize {
    t.shopify
        .graphql_requests()
        .await
        .iter()
        .filter(|r| r["query"].as_str().unwrap_or_default().contains("query FulfillmentOrders"))
        .count()
}

#[tokio::test]
async fn a_shopify_internal_error_is_retried_and_the_order_delivered() {
    let t = TestApp::spawn().await;
    for code in ["INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"] {
        routing_fails(&t, code, 1).await;
    }
    assert_eq!(t.deliver("orders/create", &fixture_order(), "e1").await, StatusCode::OK);
    t.drained().await;
    assert_eq!(t.wms.created(), vec!["450789469".to_string()]);
    assert!(t.app.store.outbox_entries().unwrap().is_empty(), "nothing is dead-lettered");
    assert_eq!(routing_queries(&t).await, 3);
    t.stop().await;
}

#[tokio::test]
async fn access_denied_is_dead_lettered_at_once() {
    let t = TestApp::spawn().await;
    routing_fails(&t, "ACCESS_DENIED", 100).await;
    assert_eq!(t.deliver("orders/create", &fixture_order(), "e1").await, StatusCode::OK);
    t.drained().await;
    let entries = t.app.store.outbox_entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].state, entries[0].attempts), (EntryState::Dead, 1));
    assert!(entries[0].last_error.as_deref().unwrap_or_default().contains("ACCESS_DENIED"), "{entries:?}");
    assert_eq!(routing_queries(&t).await, 1);
    assert!(t.wms.created().is_empty());
    t.stop().await;
}
