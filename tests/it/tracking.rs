//! Tracking end to end (CONTRACT.md §10), against the fake WMS, the fake couriers and the stateful
//! fake Shopify, fed with Clickpost's and Shiprocket's own webhook examples: a shipment booked
//! through Clickpost gets one Shopify fulfillment event per forward step, never twice (repeats,
//! stale events, a `kill -9` between Shopify's answer and channeld's record of it); failed
//! deliveries and returns to origin are flagged, counted, and an RTO is announced to the WMS once.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::courier_fakes::FakeCourier;
use crate::helpers::{eventually, fixture_order, run_cli, wms_request, Options, TestApp};
use crate::shopify_admin_fake::AdminShopify;

const ORDER: u64 = 450789469;
const SHIPMENT: u64 = 77;
/// The waybill the fake Clickpost gives shipment 77 of the order.
const AWB: &str = "WB-450789469-s77";
const CP_KEY: &str = "cp-webhook-key-0123456789";
const SR_TOKEN: &str = "sr-webhook-token-0123456789";

const OFD: &str = include_str!("../fixtures/clickpost/tracking_webhook_out_for_delivery.json");
const NDR: &str = include_str!("../fixtures/clickpost/tracking_webhook_failed_delivery_ndr.json");
const SR_IN_TRANSIT: &str = include_str!("../fixtures/shiprocket/tracking_webhook_in_transit.json");

/// Clickpost's out-for-delivery example for our waybill, with another status code and time (its
/// `latest_status` alike, as Clickpost sends it).
fn clickpost(code: u32, timestamp: &str) -> Value {
    let mut v: Value = serde_json::from_str(OFD).unwrap();
    v["waybill"] = AWB.into();
    for at in ["", "/additional/latest_status"] {
        let at = v.pointer_mut(at).unwrap();
        at["clickpost_status_code"] = code.into();
        at["timestamp"] = timestamp.into();
    }
    v
}

/// Clickpost's failed-delivery (NDR) example for our waybill, at another time.
fn ndr(timestamp: &str) -> Value {
    let mut v: Value = serde_json::from_str(NDR).unwrap();
    v["waybill"] = AWB.into();
    v["timestamp"] = timestamp.into();
    v["additional"]["latest_status"]["timestamp"] = timestamp.into();
    v
}

/// The fixture's events 4, 5, 5, 6, 8 (picked up, in transit twice, out for delivery, delivered).
fn journey() -> Vec<Value> {
    vec![
        clickpost(4, "2017-08-01T09:00:00Z"),
        clickpost(5, "2017-08-01T20:00:00Z"),
        clickpost(5, "2017-08-02T06:10:00Z"),
        clickpost(6, "2017-08-02T13:23:02Z"),
        clickpost(8, "2017-08-02T16:45:10Z"),
    ]
}

fn clickpost_options(shop: &AdminShopify, courier: &FakeCourier, extra: &str) -> Options {
    Options {
        shopify_url: Some(shop.url()),
        courier_url: Some(courier.url()),
        provider: "clickpost",
        clickpost_webhook_key: CP_KEY,
        extra_sections: format!("[tracking]\nenabled = true\n{extra}"),
        ..Options::default()
    }
}

/// The fixture order with two units of IPOD2008RED to ship.
fn order() -> Value {
    let mut o = fixture_order();
    o["line_items"][1]["quantity"] = 2.into();
    o["line_items"][1]["current_quantity"] = 2.into();
    o
}

fn pack() -> Value {
    json!({ "orderCode": ORDER.to_string(), "locationCode": "WH-1", "shipmentId": SHIPMENT, "weight": 750,
            "dimensions": { "length": 20, "breadth": 10, "height": 5 } })
}

/// A daemon (`[tracking]` plus `extra`) with the order at the WMS and shipment 77 (both units)
/// booked through Clickpost and fulfilled on Shopify.
async fn booked(extra: &str) -> (TestApp, AdminShopify, FakeCourier) {
    let shop = AdminShopify::start().await;
    let courier = FakeCourier::start().await;
    let t = TestApp::spawn_with(clickpost_options(&shop, &courier, extra)).await;
    shop.state.fulfillment_orders.lock().unwrap()[0].lines = vec![(1072503277, 518995019, 2)];
    assert_eq!(t.deliver("orders/create", &order(), "c1").await, StatusCode::OK);
    t.drained().await;
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack()).await;
    assert_eq!((status, body["awbNumber"].as_str()), (StatusCode::OK, Some(AWB)), "{body}");
    t.drained().await;
    assert_eq!(*shop.state.tracking.lock().unwrap(), [AWB], "fulfilled on Shopify");
    (t, shop, courier)
}

async fn post(t: &TestApp, path: &str, header: (&str, &str), body: &Value) -> StatusCode {
    let req = t.http.post(t.url(path)).header(header.0, header.1).json(body);
    req.send().await.unwrap().status()
}

async fn track(t: &TestApp, body: &Value) -> StatusCode {
    post(t, "/tracking/clickpost", ("webhook_key", CP_KEY), body).await
}

async fn show(t: &TestApp, which: &str) -> Value {
    let (ok, out, err) = t.cli(&["shipments", "show", which, "--json"]).await;
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn outcomes(shown: &Value) -> Vec<String> {
    let timeline = shown["timeline"].as_array().cloned().unwrap_or_default();
    timeline.iter().map(|e| format!("{} {}", e["code"], e["outcome"].as_str().unwrap())).collect()
}

fn event(status: &str, at: &str, message: &str) -> (String, String, String, String) {
    (status.into(), at.into(), message.into(), "VASAI, MUMBAI".into())
}

#[tokio::test]
async fn a_clickpost_journey_makes_one_fulfillment_event_per_forward_step_in_order() {
    let (t, shop, _cp) = booked("").await;
    for e in journey() {
        assert_eq!(track(&t, &e).await, StatusCode::OK);
    }
    t.drained().await;
    assert_eq!(
        shop.state.events.events_of(1),
        [
            event("CARRIER_PICKED_UP", "2017-08-01T09:00:00Z", ""),
            event("IN_TRANSIT", "2017-08-01T20:00:00Z", ""),
            event("OUT_FOR_DELIVERY", "2017-08-02T13:23:02Z", ""),
            event("DELIVERED", "2017-08-02T16:45:10Z", ""),
        ]
    );
    let first = shop.state.events.calls.lock().unwrap()[0].clone();
    assert_eq!(first["happenedAt"], "2017-08-01T09:00:00.000Z", "happenedAt from the event");
    assert_eq!(first["fulfillmentId"], "gid://shopify/Fulfillment/1");
    let shown = show(&t, AWB).await;
    assert_eq!(
        (shown["status"].as_str(), shown["fulfillment_id"].as_str()),
        (Some("delivered"), Some("gid://shopify/Fulfillment/1"))
    );
    assert_eq!(outcomes(&shown), ["4 applied", "5 applied", "5 applied", "6 applied", "8 applied"]);
    let (ok, out, _) = t.cli(&["orders", "show", &ORDER.to_string()]).await;
    assert!(ok && out.contains(&format!("shipment   {SHIPMENT} clickpost AWB {AWB}: delivered")), "{out}");
    t.stop().await;
}

#[tokio::test]
async fn repeated_shuffled_and_stale_events_make_nothing_new_on_shopify_and_are_shown_as_such() {
    let (t, shop, _cp) = booked("").await;
    for e in journey() {
        assert_eq!(track(&t, &e).await, StatusCode::OK);
    }
    t.drained().await;
    let duplicates = t.metric("channeld_tracking_events_total{courier=\"clickpost\",result=\"duplicate\"}").await;
    let mut again = journey();
    again.rotate_left(2);
    again.swap(0, 2);
    for e in &again {
        assert_eq!(track(&t, e).await, StatusCode::OK);
    }
    // Out for delivery after delivered.
    assert_eq!(track(&t, &clickpost(6, "2017-08-02T18:00:00Z")).await, StatusCode::OK);
    t.drained().await;
    assert_eq!(shop.state.events.all_events(), 4, "{:?}", shop.state.events.events_of(1));
    assert_eq!(shop.state.events.calls.lock().unwrap().len(), 4);
    let shown = show(&t, &SHIPMENT.to_string()).await;
    assert_eq!(shown["status"], "delivered");
    let seen = outcomes(&shown);
    assert_eq!(seen[5..10], ["8 duplicate", "6 duplicate", "5 duplicate", "4 duplicate", "5 duplicate"]);
    assert_eq!(seen[10], "6 stale");
    let note = shown["timeline"][10]["note"].as_str().unwrap();
    assert!(note.contains("delivered"), "{note}");
    let now = t.metric("channeld_tracking_events_total{courier=\"clickpost\",result=\"duplicate\"}").await;
    assert!(now - duplicates >= 5.0, "{duplicates} → {now}");
    let (ok, out, _) = t.cli(&["shipments", "show", AWB]).await;
    assert!(ok && out.contains(": stale (") && out.contains(": duplicate (received before)"), "{out}");
    t.stop().await;
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_stores_nothing_and_an_unknown_waybill_is_answered_and_counted() {
    let (t, shop, _cp) = booked("").await;
    let journal = |t: &TestApp| {
        let mut n = 0;
        t.app
            .store
            .each_inbound(|_, _| {
                n += 1;
                Ok(())
            })
            .unwrap();
        n
    };
    let before = journal(&t);
    let refused = t.metric("channeld_tracking_events_total{courier=\"clickpost\",result=\"refused\"}").await;
    let e = clickpost(4, "2017-08-01T09:00:00Z");
    assert_eq!(post(&t, "/tracking/clickpost", ("webhook_key", "wrong"), &e).await, StatusCode::UNAUTHORIZED);
    assert_eq!(post(&t, "/tracking/clickpost", ("x-other", CP_KEY), &e).await, StatusCode::UNAUTHORIZED);
    // Clickpost's key does not open Shiprocket's door (no token is configured for it).
    assert_eq!(post(&t, "/tracking/rocket", ("x-api-key", ""), &e).await, StatusCode::UNAUTHORIZED);
    assert_eq!(journal(&t), before, "nothing journaled");
    assert!(t.app.store.tracking(ORDER, SHIPMENT).unwrap().unwrap().timeline.is_empty(), "nothing recorded");
    let now = t.metric("channeld_tracking_events_total{courier=\"clickpost\",result=\"refused\"}").await;
    assert!(now - refused >= 2.0);

    let unknown_before = t.metric("channeld_tracking_events_total{courier=\"clickpost\",result=\"unknown_awb\"}").await;
    let mut other = e.clone();
    other["waybill"] = "NOT-OURS-1".into();
    assert_eq!(track(&t, &other).await, StatusCode::OK);
    assert_eq!(journal(&t), before, "an unknown waybill is not stored");
    let unknown = t.metric("channeld_tracking_events_total{courier=\"clickpost\",result=\"unknown_awb\"}").await;
    assert_eq!(unknown - unknown_before, 1.0);
    assert_eq!(track(&t, &json!({ "clickpost_status_code": 4 })).await, StatusCode::BAD_REQUEST, "no waybill");
    let bad = t.http.post(t.url("/tracking/clickpost")).header("webhook_key", CP_KEY).body("nope");
    assert_eq!(bad.send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(shop.state.events.all_events(), 0);
    t.stop().await;
}

#[tokio::test]
async fn tracking_turned_off_answers_404() {
    let shop = AdminShopify::start().await;
    let courier = FakeCourier::start().await;
    let mut o = clickpost_options(&shop, &courier, "");
    o.extra_sections = String::new();
    let t = TestApp::spawn_with(o).await;
    let e = clickpost(4, "2017-08-01T09:00:00Z");
    assert_eq!(track(&t, &e).await, StatusCode::NOT_FOUND);
    assert_eq!(post(&t, "/tracking/rocket", ("x-api-key", SR_TOKEN), &e).await, StatusCode::NOT_FOUND);
    t.stop().await;
}

#[tokio::test]
async fn an_ndr_is_an_attempted_delivery_with_its_reason_and_three_flag_the_order_ndr_repeated() {
    let (t, shop, _cp) = booked("").await;
    let counted = t.metric("channeld_tracking_ndr_total{reason=\"Customer Unavailable\"}").await;
    assert_eq!(track(&t, &clickpost(6, "2016-07-12T09:00:00Z")).await, StatusCode::OK);
    assert_eq!(track(&t, &ndr("2016-07-12T17:12:36.710")).await, StatusCode::OK);
    t.drained().await;
    let made = shop.state.events.events_of(1);
    assert_eq!(made.len(), 2, "{made:?}");
    // 17:12:36.710 IST, without a zone: 11:42:36 UTC.
    let city = "Bengaluru_Koramangala_Dc (Karnataka)".to_string();
    assert_eq!(
        made[1],
        ("ATTEMPTED_DELIVERY".into(), "2016-07-12T11:42:36Z".into(), "Customer Unavailable".into(), city)
    );
    let flags =
        |v: &Value| v["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect::<Vec<_>>();
    let order = |t: &TestApp| {
        let t = t.config_path.clone();
        async move {
            let (ok, out, err) = run_cli(&t, &["orders", "show", &ORDER.to_string(), "--json"]).await;
            assert!(ok, "{err}");
            serde_json::from_str::<Value>(&out).unwrap()
        }
    };
    let shown = order(&t).await;
    assert!(
        flags(&shown).contains(&"ndr: shipment 77 failed delivery attempt 1: Customer Unavailable".to_string()),
        "{shown}"
    );
    assert!(!flags(&shown).iter().any(|f| f.starts_with("ndr-repeated")));

    for at in ["2016-07-13T09:00:00Z", "2016-07-13T17:00:00", "2016-07-14T09:00:00Z", "2016-07-14T17:00:00"] {
        let e = if at.ends_with('Z') { clickpost(6, at) } else { ndr(at) };
        assert_eq!(track(&t, &e).await, StatusCode::OK);
    }
    t.drained().await;
    let shown = order(&t).await;
    let f = flags(&shown);
    assert!(f.iter().any(|f| f.starts_with("ndr-repeated: shipment 77 failed delivery 3 times")), "{f:?}");
    assert!(f.contains(&"ndr: shipment 77 failed delivery attempt 3: Customer Unavailable".to_string()), "{f:?}");
    assert_eq!(f.iter().filter(|f| f.starts_with("ndr: ")).count(), 1, "one line per shipment: {f:?}");
    let attempts = shop.state.events.events_of(1).iter().filter(|e| e.0 == "ATTEMPTED_DELIVERY").count();
    assert_eq!(attempts, 3, "once per attempt");
    assert_eq!(t.metric("channeld_tracking_ndr_total{reason=\"Customer Unavailable\"}").await - counted, 3.0);
    let s = show(&t, AWB).await;
    assert_eq!((s["status"].as_str(), s["ndr_attempts"].as_u64()), (Some("ndr"), Some(3)));
    t.stop().await;
}

#[tokio::test]
async fn an_rto_with_rto_to_wms_sends_one_return_to_origin_order_with_an_item_per_unit_and_its_qc_executes_nothing() {
    let (t, shop, _cp) = booked("rto_to_wms = true\n[returns]\nenabled = true\n").await;
    let rtos = t.metric("channeld_tracking_rto_total").await;
    assert_eq!(track(&t, &clickpost(5, "2017-08-01T20:00:00Z")).await, StatusCode::OK);
    let rto = clickpost(12, "2017-08-04T10:00:00Z");
    for _ in 0..2 {
        assert_eq!(track(&t, &rto).await, StatusCode::OK);
    }
    assert_eq!(track(&t, &clickpost(21, "2017-08-05T10:00:00Z")).await, StatusCode::OK);
    t.drained().await;
    let calls = t.wms.calls_to("POST", "/return/return-orders");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let body = &calls[0].body;
    assert_eq!(
        (body["orderType"].as_str(), body["returnOrderCode"].as_str(), body["forwardOrderCode"].as_str()),
        (Some("RETURN_TO_ORIGIN"), Some("rto-77"), Some("450789469"))
    );
    assert_eq!((body["locationCode"].as_str(), body["awbNumber"].as_str()), (Some("WH-1"), Some(AWB)));
    let items: Vec<(&str, &str)> = body["orderItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["itemCode"].as_str().unwrap(), i["channelSkuCode"].as_str().unwrap()))
        .collect();
    assert_eq!(items, [("77-518995019-1", "IPOD2008RED"), ("77-518995019-2", "IPOD2008RED")]);
    assert!(body["orderItems"].as_array().unwrap().iter().all(|i| i["reason"] == "return to origin"));
    let failures: Vec<_> = shop.state.events.events_of(1).into_iter().filter(|e| e.0 == "FAILURE").collect();
    assert_eq!(failures.len(), 1, "FAILURE once");
    assert_eq!(failures[0].2, "returning to origin");
    assert_eq!(t.metric("channeld_tracking_rto_total").await - rtos, 1.0);

    // The WMS's QC of the RTO: recorded and shown, nothing on Shopify.
    let ack = json!({ "returnOrderCode": "rto-77", "forwardOrderCode": ORDER.to_string(), "locationCode": "WH-1",
        "orderItems": [{ "itemCode": "77-518995019-1", "channelSkuCode": "IPOD2008RED", "qcStatus": "PASS" },
                       { "itemCode": "77-518995019-2", "channelSkuCode": "IPOD2008RED", "qcStatus": "FAIL", "qcReason": "DAMAGED" }] });
    let (status, answer) = t.wms_call(Method::PUT, "/wms/returns/acknowledgement", &ack).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    t.drained().await;
    assert!(shop.state.returns.process_calls.lock().unwrap().is_empty(), "no returnProcess for an RTO");
    let (ok, out, err) = t.cli(&["returns", "show", "rto-77", "--json"]).await;
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["status"], "done");
    assert!(shown["flags"].as_array().unwrap().iter().any(|f| f == "return-to-origin"), "{shown}");
    let (ok, out, _) = t.cli(&["orders", "show", &ORDER.to_string(), "--json"]).await;
    let order: Value = serde_json::from_str(&out).unwrap();
    assert!(ok && order["flags"].as_array().unwrap().iter().any(|f| f == "rto: shipment 77 is returning to origin"));
    assert_eq!(order["shipments"][0]["status"], "rto");
    t.stop().await;
}

#[tokio::test]
async fn a_shipment_fulfilled_before_ids_were_kept_finds_its_fulfillment_once_by_its_tracking_number() {
    let (t, shop, _cp) = booked("").await;
    let now = chrono::Utc::now().timestamp_millis();
    assert!(t.app.store.update_tracking(ORDER, SHIPMENT, now, |r| r.fulfillment_id = None).unwrap());
    for e in &journey()[..2] {
        assert_eq!(track(&t, e).await, StatusCode::OK);
    }
    t.drained().await;
    assert_eq!(shop.state.events.events_of(1).len(), 2);
    let reads = shop.log().iter().filter(|l| *l == "query OrderFulfillments").count();
    assert_eq!(reads, 1, "read once, then kept");
    let kept = t.app.store.tracking(ORDER, SHIPMENT).unwrap().unwrap().fulfillment_id;
    assert_eq!(kept.as_deref(), Some("gid://shopify/Fulfillment/1"));
    t.stop().await;
}

#[tokio::test]
async fn shopify_events_off_records_statuses_and_sends_nothing() {
    let (t, shop, _cp) = booked("shopify_events = false\n").await;
    for e in journey() {
        assert_eq!(track(&t, &e).await, StatusCode::OK);
    }
    t.drained().await;
    assert_eq!(shop.state.events.all_events(), 0);
    assert_eq!(show(&t, AWB).await["status"], "delivered");
    t.stop().await;
}

fn sr_order(channel_order_id: &str, id: u64) -> Value {
    json!({ "id": id, "channel_order_id": channel_order_id, "status": "NEW", "shipments": [{ "id": id * 10, "awb": "" }] })
}

/// Shiprocket's in-transit example for our Shiprocket waybill, with another status and time.
fn shiprocket(awb: &str, id: u32, status: &str, timestamp: &str) -> Value {
    let mut v: Value = serde_json::from_str(SR_IN_TRANSIT).unwrap();
    v["awb"] = awb.into();
    v["shipment_status_id"] = id.into();
    v["shipment_status"] = status.into();
    v["current_timestamp"] = timestamp.into();
    v
}

#[tokio::test]
async fn a_shiprocket_shipment_s_events_are_recorded_and_shown_with_no_shopify_event() {
    let shop = AdminShopify::start().await;
    let sr = FakeCourier::start().await;
    let o = Options {
        shopify_url: Some(shop.url()),
        courier_url: Some(sr.url()),
        provider: "shiprocket",
        shiprocket_webhook_token: SR_TOKEN,
        extra_sections: "[tracking]\nenabled = true\n".into(),
        ..Options::default()
    };
    let t = TestApp::spawn_with(o).await;
    *sr.state.orders.lock().unwrap() = vec![sr_order("1001", 2)];
    assert_eq!(t.deliver("orders/create", &order(), "c1").await, StatusCode::OK);
    t.drained().await;
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack()).await;
    assert_eq!((status, body["awbNumber"].as_str()), (StatusCode::OK, Some("AWB-20")), "{body}");
    let rocket = ("x-api-key", SR_TOKEN);
    let in_transit = shiprocket("AWB-20", 18, "IN TRANSIT", "23 05 2023 11:43:52");
    assert_eq!(post(&t, "/tracking/rocket", rocket, &in_transit).await, StatusCode::OK);
    let rto = shiprocket("AWB-20", 9, "RTO INITIATED", "25 05 2023 10:00:00");
    assert_eq!(post(&t, "/tracking/rocket", rocket, &rto).await, StatusCode::OK);
    // The Shiprocket token does not open Clickpost's door.
    let cp = post(&t, "/tracking/clickpost", ("webhook_key", SR_TOKEN), &clickpost(4, "2017-08-01T09:00:00Z")).await;
    assert_eq!(cp, StatusCode::UNAUTHORIZED);
    t.drained().await;
    let shown = show(&t, "AWB-20").await;
    assert_eq!((shown["courier"].as_str(), shown["status"].as_str()), (Some("shiprocket"), Some("rto")));
    assert_eq!(outcomes(&shown), ["18 applied", "9 applied"]);
    assert_eq!(shown["timeline"][0]["timestamp"], "23 05 2023 11:43:52");
    assert!(shown["flags"].as_array().unwrap().iter().any(|f| f == "rto"));
    assert_eq!(shop.state.events.all_events(), 0);
    assert!(!shop.log().iter().any(|l| l.contains("FulfillmentEvent")), "{:?}", shop.log());
    assert!(t.wms.calls_to("POST", "/return/return-orders").is_empty(), "rto_to_wms is off");
    let (ok, out, _) = t.cli(&["shipments", "list", "--status", "rto"]).await;
    assert!(ok && out.contains("AWB-20"), "{out}");
    let (ok, out, _) = t.cli(&["shipments", "list", "--status", "delivered", "--json"]).await;
    assert!(ok && serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().is_empty(), "{out}");
    t.stop().await;
}

/// Shopify makes the event and its answer never reaches channeld (killed meanwhile): after the
/// restart, the step finds its event on the fulfillment and sends no second one.
#[tokio::test]
async fn kill_9_between_shopify_s_answer_to_an_event_and_channeld_recording_it_makes_no_second_event() {
    let dir = tempfile::tempdir().unwrap();
    let wms = crate::fakes::FakeWms::start().await;
    let shop = AdminShopify::start().await;
    let courier = FakeCourier::start().await;
    shop.state.fulfillment_orders.lock().unwrap()[0].lines = vec![(1072503277, 518995019, 2)];
    let addr = crate::crash::free_addr();
    let o = clickpost_options(&shop, &courier, "");
    let config = crate::helpers::write_config(dir.path(), addr, &wms.url(), &shop.url(), &o);
    let mut daemon = crate::crash::start(&config, addr).await;
    let client = reqwest::Client::new();
    let bytes = serde_json::to_vec(&order()).unwrap();
    let created = client
        .post(format!("http://{addr}/shopify/api/push/orders"))
        .header("X-Shopify-Shop-Domain", format!("{}.myshopify.com", crate::helpers::SHOP))
        .header("X-Shopify-Event-Id", "c1")
        .header("X-Shopify-Hmac-Sha256", channeld::shopify::webhook::sign(crate::helpers::SECRET, &bytes))
        .body(bytes);
    assert!(created.send().await.unwrap().status().is_success());
    eventually("the order at the WMS", || wms.created().len() == 1).await;
    let (status, body) = wms_request(&client, addr, Method::POST, "/wms/shipments", &pack()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("the fulfillment on Shopify", || !shop.state.tracking.lock().unwrap().is_empty()).await;

    *shop.state.events.hold_next.lock().unwrap() = true;
    let held = shop.state.events.held.notified();
    let track =
        |e: Value| client.post(format!("http://{addr}/tracking/clickpost")).header("webhook_key", CP_KEY).json(&e);
    assert_eq!(track(clickpost(4, "2017-08-01T09:00:00Z")).send().await.unwrap().status(), StatusCode::OK);
    tokio::time::timeout(std::time::Duration::from_secs(20), held)
        .await
        .expect("fulfillmentEventCreate reached Shopify");
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    shop.state.events.release.notify_one();

    let mut daemon = crate::crash::start(&config, addr).await;
    let done = || async {
        let (ok, out, _) = run_cli(&config, &["shipments", "show", &SHIPMENT.to_string(), "--json"]).await;
        ok && serde_json::from_str::<Value>(&out).is_ok_and(|v| v["shopify_events"][0]["state"] == "done")
    };
    let mut recorded = false;
    for _ in 0..200 {
        if done().await {
            recorded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(recorded, "the step was recorded done after the restart");
    assert_eq!(shop.state.events.events_of(1).len(), 1, "no second event");
    assert_eq!(shop.state.events.calls.lock().unwrap().len(), 1, "no second call");
    // The order's calls go on: the next step is sent.
    assert_eq!(track(clickpost(5, "2017-08-01T20:00:00Z")).send().await.unwrap().status(), StatusCode::OK);
    eventually("the next event", || shop.state.events.events_of(1).len() == 2).await;
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

#[test]
fn the_tracking_documents_are_among_those_validated_against_the_schema() {
    let names: Vec<&str> = channeld::shopify::documents().iter().map(|(d, _)| d.name).collect();
    for name in ["FulfillmentEventCreate", "FulfillmentEvents", "OrderFulfillments", "FulfillmentState"] {
        assert!(names.contains(&name), "{name} is not in shopify::documents(): {names:?}");
    }
}

/// A store whose state went back before the courier's events (a power cut lost sled's last
/// writes) applies the journal again at start: every shipment ends as it was, its timeline without
/// a second copy of any event, and no fulfillment event queued twice.
#[tokio::test]
async fn a_replay_of_the_journal_leaves_each_shipment_s_tracking_as_it_was() {
    let (t, _shop, _cp) = booked("").await;
    for e in journey() {
        assert_eq!(track(&t, &e).await, StatusCode::OK);
    }
    t.drained().await;
    let before = t.app.store.tracking(ORDER, SHIPMENT).unwrap().unwrap();
    assert_eq!(before.timeline.len(), 5);
    let config = t.config_path.clone();
    let dir = t.stop().await;
    let cfg = channeld::config::Config::load(&config).unwrap();
    // As if sled had made nothing after the first record durable: the whole journal is applied
    // again at the next open.
    let db = loop {
        match sled::open(dir.path().join("store/db")) {
            Ok(db) => break db,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    db.open_tree("meta").unwrap().insert("applied_seq", &1u64.to_be_bytes()).unwrap();
    db.flush().unwrap();
    drop(db);
    let store = loop {
        match channeld::store::Store::open(&cfg.storage.path, 8) {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let app = channeld::services::open(cfg, store).unwrap();
    let after = app.store.tracking(ORDER, SHIPMENT).unwrap().unwrap();
    assert_eq!(after.timeline, before.timeline, "no event taken twice");
    assert_eq!(after.shopify, before.shopify);
    let queued: Vec<String> = app.store.outbox_entries().unwrap().iter().map(|e| e.task.kind().to_string()).collect();
    assert!(!queued.iter().any(|k| k == "shopify_fulfillment_event"), "{queued:?}");
    app.store.close().unwrap();
}

#[tokio::test]
async fn doctor_names_the_tracking_webhooks_and_a_public_url_shiprocket_would_refuse() {
    let shop = AdminShopify::start().await;
    let sr = FakeCourier::start().await;
    let wms = crate::fakes::FakeWms::start().await;
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        shopify_url: Some(shop.url()),
        courier_url: Some(sr.url()),
        provider: "shiprocket",
        shiprocket_webhook_token: SR_TOKEN,
        extra_sections: "[tracking]\nenabled = true\nrto_to_wms = true\n".into(),
        ..Options::default()
    };
    let config = crate::helpers::write_config(dir.path(), crate::crash::free_addr(), &wms.url(), &shop.url(), &o);
    let (_, out, _) = run_cli(&config, &["doctor"]).await;
    let ok = "ok    shiprocket.webhook_token is set: the courier's webhook goes to https://connector.example.com/tracking/rocket";
    assert!(out.contains(ok), "{out}");
    assert!(out.contains("ok    server.public_url has none of the words Shiprocket refuses"), "{out}");
    assert!(out.contains("note  tracking.rto_to_wms is on but returns.enabled is off"), "{out}");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("https://connector.example.com", "https://srv.example.com")).unwrap();
    let (ok, out, _) = run_cli(&config, &["doctor"]).await;
    assert!(!ok);
    assert!(out.contains("FAIL  server.public_url https://srv.example.com contains \"sr\""), "{out}");
}
