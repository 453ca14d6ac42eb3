//! A whole-order seller cancellation on Shopify (`orderCancel`) is asynchronous: channeld follows
//! the job it starts until it is done, and a cancellation that fails is not taken for done.

use channeld::flows::model::EntryState;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{fixture_order, Options, TestApp};
use crate::shopify_admin_fake::{AdminShopify, CancelJob};

async fn sent_order(job: CancelJob) -> (TestApp, AdminShopify) {
    let shop = AdminShopify::start().await;
    *shop.state.cancel_job.lock().unwrap() = job;
    let t = TestApp::spawn_with(Options { shopify_url: Some(shop.url()), ..Options::default() }).await;
    t.deliver("orders/create", &fixture_order(), "c1").await;
    t.drained().await;
    assert_eq!(t.wms.created(), vec!["450789469".to_string()]);
    (t, shop)
}

/// The WMS cancels the order's only unit: a whole-order cancellation on Shopify.
async fn cancel_everything(t: &TestApp) {
    let body = json!({ "orderCode": "450789469", "locationCode": "WH-1", "orderItems": [
        { "channelSkuCode": "IPOD2008RED", "orderItemCode": "518995019", "cancelledQuantity": 1 } ] });
    let (status, answer) = t.wms_call(Method::PUT, "/wms/orders/cancel", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    t.drained().await;
}

fn job_polls(shop: &AdminShopify) -> usize {
    shop.log().iter().filter(|l| l.as_str() == "query OrderCancelJob").count()
}

#[tokio::test]
async fn the_cancellation_is_done_only_once_shopify_s_job_is() {
    let (t, shop) = sent_order(CancelJob { polls_until_done: 3, ..CancelJob::default() }).await;
    cancel_everything(&t).await;
    assert_eq!(shop.log().iter().filter(|l| l.starts_with("cancel ")).count(), 1);
    assert_eq!(job_polls(&shop), 3, "followed until done, then no more");
    assert!(t.app.store.outbox_entries().unwrap().is_empty(), "delivered");
    t.stop().await;
}

#[tokio::test]
async fn a_failed_cancellation_job_is_a_failure_with_shopify_s_reason() {
    let errors = vec![json!({ "field": ["orderId"], "code": "INVALID",
        "message": "Order has pending payment authorizations" })];
    let (t, shop) = sent_order(CancelJob { status: "FAILED", errors, ..CancelJob::default() }).await;
    cancel_everything(&t).await;
    assert_eq!(job_polls(&shop), 1);
    let entries = t.app.store.outbox_entries().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!((entries[0].state, entries[0].attempts), (EntryState::Dead, 1));
    let error = entries[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("pending payment authorizations"), "{error}");
    t.stop().await;
}
