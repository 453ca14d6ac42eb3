//! Shipments belong to their order: a `shipmentId` is read exactly as sent (never clamped), and
//! one another order already uses is refused with a 409 naming that order, never answered with
//! that order's AWB and label (#15).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::courier_fakes::FakeCourier;
use crate::helpers::{fixture_order, order_numbered, Options, TestApp};
use crate::shopify_admin_fake::AdminShopify;

const A: &str = "450789469";
const B: &str = "5001";

/// Orders A (the fixture) and B (the fixture as order 5001), both at the WMS, Clickpost booking.
async fn two_orders() -> (TestApp, AdminShopify, FakeCourier) {
    let shop = AdminShopify::start().await;
    let courier = FakeCourier::start().await;
    let t = TestApp::spawn_with(Options {
        shopify_url: Some(shop.url()),
        courier_url: Some(courier.url()),
        ..Options::default()
    })
    .await;
    t.deliver("orders/create", &fixture_order(), "a").await;
    t.deliver("orders/create", &order_numbered(5001), "b").await;
    t.drained().await;
    let mut created = t.wms.created();
    created.sort();
    assert_eq!(created, vec![A.to_string(), B.to_string()]);
    (t, shop, courier)
}

/// A pack call with `shipmentId` written as given (JSON can carry numbers `Value` cannot).
async fn pack(t: &TestApp, order: &str, shipment_id: &str) -> (StatusCode, Value) {
    let body =
        format!(r#"{{"orderCode": "{order}", "locationCode": "WH-1", "shipmentId": {shipment_id}, "weight": 500}}"#);
    let resp = t
        .http
        .post(t.url("/wms/shipments"))
        .header("authUsername", "in-user")
        .header("authPassword", "in-pass")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_shipment_id_another_order_uses_is_a_conflict_naming_that_order() {
    let (t, _shop, cp) = two_orders().await;
    let (status, first) = pack(&t, A, "77").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["awbNumber"], "WB-450789469-s77");

    let (status, body) = pack(&t, B, "77").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["hasError"], true);
    assert!(body["errorMessage"].as_str().unwrap().contains(A), "names the order using it: {body}");
    assert_eq!(cp.calls_to("/api/v3/create-order/").len(), 1, "nothing booked for B");

    // Lookups name the order: B has no shipment 77, A's is A's.
    for path in ["/wms/shipping-label", "/wms/invoice"] {
        let (status, _) = t.wms_call(Method::GET, &format!("{path}?orderCode={B}&shipmentCode=77"), &json!(null)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let q = format!("/wms/shipping-label?orderCode={A}&shipmentCode=&shipmentId=77");
    let (status, label) = t.wms_call(Method::GET, &q, &json!(null)).await;
    assert_eq!((status, label["awbNumber"].as_str()), (StatusCode::OK, Some("WB-450789469-s77")));
    // The repeat for A still answers A's shipment.
    assert_eq!(pack(&t, A, "77").await, (StatusCode::OK, first));
    t.stop().await;
}

#[tokio::test]
async fn shipment_ids_are_read_exactly_and_out_of_range_ones_are_refused() {
    let (t, _shop, cp) = two_orders().await;
    for bad in ["18446744073709551616", "1e30", "-1", "\"12x\""] {
        let (status, body) = pack(&t, A, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["errorMessage"].as_str().unwrap().contains("shipmentId"), "{bad}: {body}");
    }
    assert!(cp.calls_to("/api/v3/create-order/").is_empty());

    // 2^63 and 2^63 - 1 are two ids (a clamp made them, and every id above, one).
    let (status, a) = pack(&t, A, "9223372036854775808").await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!((a["shipmentCode"].as_str(), a["shipmentId"].as_u64()), (Some("9223372036854775808"), Some(1 << 63)));
    let (status, b) = pack(&t, B, "9223372036854775807").await;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(b["awbNumber"], "WB-5001-s9223372036854775807");
    assert_ne!(a["awbNumber"], b["awbNumber"]);
    let references: Vec<Value> = cp
        .calls_to("/api/v3/create-order/")
        .iter()
        .map(|c| c.body["shipment_details"]["reference_number"].clone())
        .collect();
    assert_eq!(references, vec![json!("450789469-s9223372036854775808"), json!("5001-s9223372036854775807")]);
    t.stop().await;
}
