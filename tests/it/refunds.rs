//! Refunds of units the WMS cancelled (seller cancellation): `refundCreate` carries an
//! `@idempotent` key derived from the outbox entry, so a replay refunds once, and names the
//! presentment currency when the customer paid in another currency than the shop's.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{fixture_order, Options, TestApp};
use crate::shopify_admin_fake::AdminShopify;

/// A daemon with the admin fake; the fixture order with 3 red iPods already at the WMS.
async fn sent_order() -> (TestApp, AdminShopify) {
    let shop = AdminShopify::start().await;
    let t = TestApp::spawn_with(Options { shopify_url: Some(shop.url()), ..Options::default() }).await;
    let mut o = fixture_order();
    o["line_items"][1]["quantity"] = 3.into();
    o["line_items"][1]["current_quantity"] = 3.into();
    t.deliver("orders/create", &o, "c1").await;
    t.drained().await;
    assert_eq!(t.wms.created(), vec!["450789469".to_string()]);
    shop.state.line_quantities.lock().unwrap().insert(450789469, vec![(518995019, 3)]);
    (t, shop)
}

/// The WMS cancels one of the three units.
async fn cancel_one_unit(t: &TestApp) {
    let body = json!({ "orderCode": "450789469", "locationCode": "WH-1", "orderItems": [
        { "channelSkuCode": "IPOD2008RED", "orderItemCode": "518995019", "cancelledQuantity": 1 } ] });
    let (status, answer) = t.wms_call(Method::PUT, "/wms/orders/cancel", &body).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{answer}");
    t.drained().await;
}

#[tokio::test]
async fn a_refund_whose_answer_is_lost_is_sent_again_with_the_same_key_and_refunds_once() {
    let (t, shop) = sent_order().await;
    *shop.state.lose_next_refund_answer.lock().unwrap() = true;
    cancel_one_unit(&t).await;
    let requests = shop.state.refund_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "the lost answer is retried: {requests:?}");
    let (key, input) = &requests[0];
    assert!(key.starts_with("channeld-refund-450789469-"), "{key}");
    assert_eq!(&requests[1].0, key, "the retry is the same request to Shopify");
    assert_eq!(shop.state.refunds.lock().unwrap().len(), 1, "one refund made");
    assert_eq!(input["transactions"][0]["amount"], "199.65");
    assert!(input.get("currency").is_none(), "same currency as the shop: none sent: {input}");
    assert!(t.app.store.outbox_entries().unwrap().is_empty(), "nothing dead-lettered");
    t.stop().await;
}

#[tokio::test]
async fn a_refund_in_the_customers_currency_names_it() {
    let (t, shop) = sent_order().await;
    *shop.state.suggested_refund.lock().unwrap() = (("199.65".into(), "INR".into()), ("2.21".into(), "EUR".into()));
    cancel_one_unit(&t).await;
    let requests = shop.state.refund_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let input = &requests[0].1;
    assert_eq!(input["currency"], "EUR", "{input}");
    assert_eq!(input["transactions"][0]["amount"], "2.21", "{input}");
    assert!(input["transactions"][0].get("currency").is_none(), "{input}");
    assert_eq!(shop.state.refunds.lock().unwrap().len(), 1);
    t.stop().await;
}
