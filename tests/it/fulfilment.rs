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

// ---------------------------------------------------------------------------------------------
// Seller cancellation, shipments, invoice and label.

use crate::courier_fakes::FakeCourier;
use crate::helpers::fixture_order;

/// A daemon with the admin Shopify fake and a courier fake; the fixture order (with `red` units
/// of IPOD2008RED) already at the WMS.
async fn sent_order(provider: &'static str, red: u64) -> (TestApp, AdminShopify, FakeCourier) {
    let shop = AdminShopify::start().await;
    let courier = FakeCourier::start().await;
    let t = TestApp::spawn_with(Options {
        shopify_url: Some(shop.url()),
        courier_url: Some(courier.url()),
        provider,
        ..Options::default()
    })
    .await;
    let mut o = fixture_order();
    o["line_items"][1]["quantity"] = red.into();
    o["line_items"][1]["current_quantity"] = red.into();
    t.deliver("orders/create", &o, "c1").await;
    t.drained().await;
    assert_eq!(t.wms.created(), vec!["450789469".to_string()]);
    shop.state.line_quantities.lock().unwrap().insert(450789469, vec![(518995019, red)]);
    (t, shop, courier)
}

fn shopify_ops(shop: &AdminShopify, prefix: &str) -> Vec<String> {
    shop.log().into_iter().filter(|l| l.starts_with(prefix)).collect()
}

fn cancel_body(qty: u64) -> serde_json::Value {
    json!({ "orderCode": "450789469", "locationCode": "WH-1", "orderItems": [
        { "channelSkuCode": "IPOD2008RED", "orderItemCode": "518995019", "cancelledQuantity": qty,
          "sellerCancelledQty": qty, "customerCancelledQty": 0 } ] })
}

#[tokio::test]
async fn whole_order_seller_cancellation_cancels_once_and_its_echo_is_not_sent_back() {
    let (t, shop, _c) = sent_order("clickpost", 1).await;
    for _ in 0..2 {
        let (status, body) = t.wms_call(Method::PUT, "/wms/orders/cancel", &cancel_body(1)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        t.drained().await;
    }
    assert_eq!(shopify_ops(&shop, "cancel "), vec!["cancel gid://shopify/Order/450789469 restock=true"]);
    // Shopify's orders/cancelled echo of that cancellation is not a customer cancellation.
    let mut echo = fixture_order();
    echo["cancelled_at"] = "2026-11-27T10:00:00Z".into();
    assert_eq!(t.deliver("orders/cancelled", &echo, "echo").await, StatusCode::OK);
    t.drained().await;
    assert!(t.wms.calls_to("PUT", "/orders/450789469/cancel").is_empty());
    t.stop().await;
}

#[tokio::test]
async fn partial_seller_cancellation_edits_the_order_down_and_refunds() {
    let (t, shop, _c) = sent_order("clickpost", 3).await;
    let (status, _) = t.wms_call(Method::PUT, "/wms/orders/cancel", &cancel_body(1)).await;
    assert_eq!(status, StatusCode::OK);
    t.drained().await;
    assert_eq!(shopify_ops(&shop, "set "), vec!["set gid://shopify/CalculatedLineItem/518995019 2"]);
    assert_eq!(shopify_ops(&shop, "refund "), vec!["refund 199.65"]);
    shop.state.line_quantities.lock().unwrap().insert(450789469, vec![(518995019, 2)]);
    // The same absolute quantities again: no further Shopify call.
    let before = shop.log().len();
    let (status, _) = t.wms_call(Method::PUT, "/wms/orders/cancel", &cancel_body(1)).await;
    assert_eq!(status, StatusCode::OK);
    t.drained().await;
    assert_eq!(shop.log().len(), before);
    assert!(shopify_ops(&shop, "cancel ").is_empty());
    t.stop().await;
}

#[tokio::test]
async fn seller_cancellation_errors_follow_the_wms_convention() {
    let (t, _shop, _c) = sent_order("clickpost", 1).await;
    let mut unknown_order = cancel_body(1);
    unknown_order["orderCode"] = "999".into();
    let (status, body) = t.wms_call(Method::PUT, "/wms/orders/cancel", &unknown_order).await;
    assert_eq!((status, body["hasError"].clone()), (StatusCode::NOT_FOUND, json!(true)));
    let mut unknown_item = cancel_body(1);
    unknown_item["orderItems"][0]["orderItemCode"] = "nope".into();
    let (status, _) = t.wms_call(Method::PUT, "/wms/orders/cancel", &unknown_item).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = t.wms_call(Method::PUT, "/wms/orders/cancel", &cancel_body(2)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    t.stop().await;
}

fn pack(shipment: u64) -> serde_json::Value {
    json!({ "orderCode": "450789469", "locationCode": "WH-1", "shipmentId": shipment, "weight": 750,
            "dimensions": { "length": 20, "breadth": 10, "height": 5 },
            "invoice": { "invoiceCode": "INV-77", "invoiceDate": "2026-11-27T10:00:00Z", "invoiceUrl": "https://wms.example/inv77.pdf" } })
}

/// A pack call for one unit of the red iPod (the order's only shippable line).
fn pack_one(shipment: u64) -> serde_json::Value {
    let mut p = pack(shipment);
    p["invoice"]["invoiceItems"] = json!([{ "orderItemCode": "518995019", "quantity": 1 }]);
    p
}

#[tokio::test]
async fn clickpost_pack_books_once_acknowledges_to_shopify_and_serves_invoice_and_label() {
    let (t, shop, cp) = sent_order("clickpost", 1).await;
    let q = "/wms/shipping-label?orderCode=450789469&shipmentCode=77";
    assert_eq!(t.wms_call(Method::GET, q, &json!(null)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        t.wms_call(Method::GET, "/wms/invoice?orderCode=450789469&shipmentCode=77", &json!(null)).await.0,
        StatusCode::NOT_FOUND
    );

    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack(77)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["shipmentCode"], "77");
    assert_eq!(body["awbNumber"], "WB-450789469-s77");
    assert_eq!(body["shippingLabel"]["awbNumber"], "WB-450789469-s77");
    assert_eq!(body["shippingLabelUrl"], "https://labels.example/WB-450789469-s77.pdf");
    let creates = cp.calls_to("/api/v3/create-order/");
    assert_eq!(creates.len(), 1);
    let d = &creates[0].body["shipment_details"];
    assert_eq!(
        (d["reference_number"].as_str(), d["order_type"].as_str(), d["cod_value"].as_f64()),
        (Some("450789469-s77"), Some("PREPAID"), Some(0.0))
    );
    assert_eq!((d["weight"].as_u64(), d["length"].as_u64()), (Some(750), Some(20)));
    assert!(creates[0].query.contains("username=cp-user"));

    // The acknowledgement to Shopify: one fulfillment with the tracking number.
    t.drained().await;
    let fulfils = shopify_ops(&shop, "fulfill ");
    assert_eq!(fulfils.len(), 1);
    assert!(fulfils[0].starts_with("fulfill WB-450789469-s77") && fulfils[0].contains("1072503277"), "{fulfils:?}");

    // The same pack again: the same answer, nothing booked.
    let (status, again) = t.wms_call(Method::POST, "/wms/shipments", &pack(77)).await;
    assert_eq!((status, &again), (StatusCode::OK, &body));
    assert_eq!(cp.calls_to("/api/v3/create-order/").len(), 1);

    let (status, label) = t.wms_call(Method::GET, q, &json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        label,
        json!({ "awbNumber": "WB-450789469-s77", "transporter": "Fedex", "shippingLabelUrl": "https://labels.example/WB-450789469-s77.pdf" })
    );
    let (status, inv) = t.wms_call(Method::GET, "/wms/invoice?orderCode=450789469&shipmentCode=77", &json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inv["invoiceCode"], "INV-77");
    assert_eq!(inv["invoiceUrl"], "https://wms.example/inv77.pdf");
    t.stop().await;
}

#[tokio::test]
async fn clickpost_already_placed_is_success_with_the_existing_waybill_and_a_known_courier() {
    let (t, shop, cp) = sent_order("clickpost", 2).await;
    shop.state.fulfillment_orders.lock().unwrap()[0].lines = vec![(1072503277, 518995019, 2)];
    // A first booking: Clickpost names its courier (Fedex, courier partner 1).
    let (status, first) = t.wms_call(Method::POST, "/wms/shipments", &pack_one(77)).await;
    assert_eq!((status, first["transporter"].as_str()), (StatusCode::OK, Some("Fedex")), "{first}");
    // The next was placed before (its answer lost): 323 names no courier, the lookup only its id.
    *cp.state.already_placed.lock().unwrap() = Some("EXISTING-42".into());
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack_one(78)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["awbNumber"], "EXISTING-42");
    assert_eq!(body["transporter"], "Fedex", "{body}");
    assert_eq!(body["shippingLabel"]["transporter"], "Fedex");
    let lookups: Vec<_> = cp.calls_to("/api/v3/create-order/").into_iter().filter(|c| c.body.is_null()).collect();
    assert_eq!(lookups.len(), 1);
    assert!(lookups[0].query.contains("reference_number=450789469-s78"), "{}", lookups[0].query);
    let (_, label) =
        t.wms_call(Method::GET, "/wms/shipping-label?orderCode=450789469&shipmentId=78", &json!(null)).await;
    assert_eq!(label["transporter"], "Fedex");
    t.drained().await;
    let fulfils = shopify_ops(&shop, "fulfill EXISTING-42");
    assert_eq!(fulfils.len(), 1, "{:?}", shop.log());
    assert!(fulfils[0].ends_with("company=Fedex"), "{fulfils:?}");
    t.stop().await;
}

// Two worker threads, so the two calls really run at once (the window they race for is short:
// this shows the outcome, it cannot force the interleaving).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pack_calls_at_once_cannot_both_ship_the_same_unit() {
    let (t, _shop, cp) = sent_order("clickpost", 1).await;
    let (a, b) = (pack(60), pack(61));
    let (first, second) =
        tokio::join!(t.wms_call(Method::POST, "/wms/shipments", &a), t.wms_call(Method::POST, "/wms/shipments", &b));
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST], "{} / {}", first.1, second.1);
    assert_eq!(cp.calls_to("/api/v3/create-order/").len(), 1, "one booking at the courier");
    t.stop().await;
}

fn sr_order(channel_order_id: &str, id: u64, status: &str) -> serde_json::Value {
    json!({ "id": id, "channel_order_id": channel_order_id, "status": status, "shipments": [{ "id": id * 10, "awb": "" }] })
}

#[tokio::test]
async fn shiprocket_logs_in_once_matches_exactly_and_relogs_after_a_401() {
    let (t, _shop, sr) = sent_order("shiprocket", 3).await;
    // Near misses around the exact channel_order_id "1001".
    *sr.state.orders.lock().unwrap() =
        vec![sr_order("10010", 1, "NEW"), sr_order("1001", 2, "NEW"), sr_order("21001", 3, "NEW")];
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack_one(90)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["awbNumber"], "AWB-20");
    assert_eq!(body["transporter"], "Amazon Surface");
    assert_eq!(body["shippingLabelUrl"], "https://sr.example/label-20.pdf");
    let assigned = sr.calls_to("/v1/external/courier/assign/awb");
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].body["shipment_id"], 20);
    assert_eq!(sr.calls_to("/v1/external/courier/generate/label")[0].body["shipment_id"], json!([20]));
    assert_eq!(sr.calls_to("/v1/external/orders/print/invoice")[0].body["ids"], json!([2]));
    let (_, inv) = t.wms_call(Method::GET, "/wms/invoice?orderCode=450789469&shipmentCode=90", &json!(null)).await;
    assert_eq!(
        (inv["invoiceCode"].as_str(), inv["invoiceUrl"].as_str()),
        (Some("INV-77"), Some("https://sr.example/invoice-2.pdf"))
    );

    // A second pack: the cached token is used.
    let (status, _) = t.wms_call(Method::POST, "/wms/shipments", &pack_one(91)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sr.logins(), 1);
    // Shiprocket forgets the token: one re-login, then success.
    sr.expire_tokens();
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack_one(92)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sr.logins(), 2);
    // Three shipments of one unit each took all three: a fourth has nothing left to ship.
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack(94)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["errorMessage"].as_str().unwrap().contains("nothing left to ship"), "{body}");
    assert_eq!(sr.calls_to("/v1/external/courier/assign/awb").len(), 3, "nothing more was booked");
    t.stop().await;
}

#[tokio::test]
async fn shiprocket_cancelled_order_is_an_error_and_nothing_is_assigned() {
    let (t, _shop, sr) = sent_order("shiprocket", 1).await;
    *sr.state.orders.lock().unwrap() = vec![sr_order("1001", 2, "CANCELED")];
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack(93)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["hasError"], true);
    assert!(body["errorMessage"].as_str().unwrap().contains("CANCELED"), "{body}");
    assert!(sr.calls_to("/v1/external/courier/assign/awb").is_empty());
    t.stop().await;
}

#[tokio::test]
async fn every_wms_call_needs_credentials() {
    let (t, _shop) = spawn(true).await;
    for (method, path) in [
        (Method::PUT, "/wms/inventory"),
        (Method::PUT, "/wms/orders/cancel"),
        (Method::POST, "/wms/shipments"),
        (Method::GET, "/wms/invoice?orderCode=1&shipmentCode=1"),
        (Method::GET, "/wms/shipping-label?orderCode=1&shipmentCode=1"),
        (Method::POST, "/wms/handover"),
        (Method::POST, "/wms/manifest"),
        (Method::POST, "/wms/returns"),
        (Method::PUT, "/wms/acknowledgement"),
    ] {
        let resp = t
            .http
            .request(method, t.url(path))
            .header("authUsername", "in-user")
            .header("authPassword", "wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["hasError"], true, "{path}");
    }
    t.stop().await;
}

#[tokio::test]
async fn a_missing_label_is_fetched_by_the_label_job() {
    let (t, _shop, cp) = sent_order("clickpost", 1).await;
    *cp.state.no_label.lock().unwrap() = true;
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack(80)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let q = "/wms/shipping-label?orderCode=450789469&shipmentId=80";
    assert_eq!(t.wms_call(Method::GET, q, &json!(null)).await.0, StatusCode::NOT_FOUND);
    channeld::services::shipments::retrieve_labels(&t.app).await.unwrap();
    let (status, label) = t.wms_call(Method::GET, q, &json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(label["shippingLabelUrl"], "https://labels.example/WB-450789469-s80.pdf");
    assert_eq!(cp.calls_to("/api/v1/fetch/shippinglabel/").len(), 1);
    t.stop().await;
}

#[tokio::test]
async fn a_slow_booking_answers_in_progress_and_the_repeat_gets_the_result() {
    let shop = AdminShopify::start().await;
    let cp = FakeCourier::start().await;
    let t = TestApp::spawn_with(Options {
        shopify_url: Some(shop.url()),
        courier_url: Some(cp.url()),
        answer_within_seconds: 1,
        ..Options::default()
    })
    .await;
    t.deliver("orders/create", &fixture_order(), "c1").await;
    t.drained().await;
    *cp.state.delay.lock().unwrap() = std::time::Duration::from_millis(2500);
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack(81)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["errorMessage"], "in progress");
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack(81)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["awbNumber"], "WB-450789469-s81");
    assert_eq!(cp.calls_to("/api/v3/create-order/").len(), 1, "booked once");
    t.stop().await;
}
