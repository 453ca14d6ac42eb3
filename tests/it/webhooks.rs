//! Webhook intake: verification, de-duplication, durable acknowledgement, the WMS creation.

use channeld::flows::model::OrderStatus;
use channeld::shopify::webhook::sign;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{fixture_order, Options, TestApp, PREVIOUS_SECRET, SECRET};

#[tokio::test]
async fn fixture_order_creates_exactly_one_wms_order() {
    let t = TestApp::spawn().await;
    assert_eq!(t.deliver("orders/create", &fixture_order(), "evt-1").await, StatusCode::OK);
    t.drained().await;
    let calls = t.wms.calls_to("POST", "/orders/outward");
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c.headers["authUsername"], "wms-user");
    assert_eq!(c.headers["authPassword"], "wms-pass");
    assert_eq!(c.headers["authDomainName"], "wms-domain");
    let b = &c.body;
    assert_eq!(b["orderCode"], "450789469");
    assert_eq!(b["parentOrderCode"], "#1001");
    assert_eq!(b["paymentMethod"], "NCOD");
    // Routed by Shopify: the fulfillment order's location is mapped to WH-1.
    assert_eq!(b["locationCode"], "WH-1");
    assert_eq!(b["isSplitRequired"], false);
    // The only line still open (the other two were refunded to zero).
    assert_eq!(
        b["orderItems"],
        json!([{ "channelSkuCode": "IPOD2008RED", "orderItemCode": "518995019", "quantity": 1,
                 "channelDiscountPerUnit": 3.33, "sellingPricePerUnit": 199.65, "shippingChargePerUnit": 0.0 }])
    );
    for which in ["shippingAddress", "billingAddress"] {
        let a = &b[which];
        assert_eq!(a["name"], "Bob Norman", "{which}");
        assert_eq!(a["line1"], "Chestnut Street 92");
        assert_eq!(a["city"], "Louisville");
        assert_eq!(a["state"], "Kentucky");
        assert_eq!(a["zip"], "40202");
        assert_eq!(a["country"], "United States");
        assert_eq!(a["email"], "bob.norman@mail.example.com");
    }
    // Shopify was asked for the fulfillment orders of this order.
    let asked = t.shopify.graphql_requests().await;
    assert!(asked.iter().any(|r| r["variables"]["id"] == "gid://shopify/Order/450789469"));
    let rec = t.app.store.order(450789469).unwrap().unwrap();
    assert_eq!(rec.status, OrderStatus::Sent);
    t.stop().await;
}

#[tokio::test]
async fn duplicates_never_create_a_second_wms_order() {
    let t = TestApp::spawn().await;
    for _ in 0..5 {
        assert_eq!(t.deliver("orders/create", &fixture_order(), "same-event").await, StatusCode::OK);
    }
    for id in ["other-1", "other-2", "other-3"] {
        assert_eq!(t.deliver("orders/create", &fixture_order(), id).await, StatusCode::OK);
    }
    t.drained().await;
    assert_eq!(t.wms.calls_to("POST", "/orders/outward").len(), 1);
    t.stop().await;
}

#[tokio::test]
async fn bad_signature_wrong_shop_oversize_and_non_json_are_refused() {
    let t = TestApp::spawn_with(Options { max_body_bytes: 64 * 1024, ..Options::default() }).await;
    let body = serde_json::to_vec(&fixture_order()).unwrap();
    // Missing signature.
    assert_eq!(t.deliver_raw("orders/create", &body, &[]).await, StatusCode::UNAUTHORIZED);
    // Wrong signature.
    let wrong = sign("not-the-secret", &body);
    assert_eq!(
        t.deliver_raw("orders/create", &body, &[("X-Shopify-Hmac-Sha256", wrong)]).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(t.app.store.order(450789469).unwrap().is_none(), "nothing stored for a refused delivery");
    // Another shop's domain, correctly signed.
    let status = t
        .http
        .post(t.url("/shopify/api/push/orders"))
        .header("X-Shopify-Shop-Domain", "someone-else.myshopify.com")
        .header("X-Shopify-Hmac-Sha256", sign(SECRET, &body))
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(t.app.store.order(450789469).unwrap().is_none());
    // Over the body limit.
    let mut big = fixture_order();
    big["note"] = "x".repeat(70 * 1024).into();
    let big = serde_json::to_vec(&big).unwrap();
    assert_eq!(
        t.deliver_raw("orders/create", &big, &[("X-Shopify-Hmac-Sha256", sign(SECRET, &big))]).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Signed, but not JSON / no numeric id.
    for junk in [&b"not json"[..], br#"{"id":"abc"}"#] {
        assert_eq!(
            t.deliver_raw("orders/create", junk, &[("X-Shopify-Hmac-Sha256", sign(SECRET, junk))]).await,
            StatusCode::BAD_REQUEST
        );
    }
    // The previous secret (rotation) is accepted.
    assert_eq!(
        t.deliver_raw("orders/create", &body, &[("X-Shopify-Hmac-Sha256", sign(PREVIOUS_SECRET, &body))]).await,
        StatusCode::OK
    );
    assert!(t.app.store.order(450789469).unwrap().is_some());
    t.stop().await;
}

#[tokio::test]
async fn signed_order_full_of_nulls_is_stored_and_rejected_not_lost() {
    let t = TestApp::spawn().await;
    let body = json!({ "id": 777, "name": null, "created_at": "2026-11-01T10:00:00Z", "line_items": [
        { "id": 1, "sku": null, "quantity": 1, "price": null, "requires_shipping": true }
    ], "shipping_address": null, "billing_address": null, "customer": null });
    assert_eq!(t.deliver("orders/create", &body, "nulls").await, StatusCode::OK);
    let rec = t.app.store.order(777).unwrap().unwrap();
    assert_eq!(rec.status, OrderStatus::Rejected);
    assert!(rec.reasons.len() >= 3, "{:?}", rec.reasons);
    t.stop().await;
}
