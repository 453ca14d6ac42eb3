//! Returns end to end (CONTRACT.md §9), against the fake WMS and the stateful fake Shopify: an
//! approved return reaches the WMS once, one item per unit; the WMS's QC results become one
//! `returnProcess` each (restock and refund PASS units, never FAIL ones), and `returnClose` once
//! everything passed; held, cancelled and repeated events do what §9.4 says.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::fakes::FakeWms;
use crate::helpers::{eventually, fixture_order, wms_request, Options, TestApp, LOCATION_ID};
use crate::shopify_admin_fake::AdminShopify;
use crate::shopify_returns_fake::{FakeReturn, FakeReturnLine};

const ORDER: u64 = 450789469;
const RETURN: u64 = 945;

/// The fixture order with two units of IPOD2008RED (line 518995019) and one of IPOD2008GREEN
/// (line 466157049) to ship.
fn order() -> Value {
    let mut o = fixture_order();
    for line in o["line_items"].as_array_mut().unwrap() {
        let (qty, current) = match line["id"].as_u64().unwrap() {
            518995019 => (2, 2),
            466157049 => (1, 1),
            _ => (1, 0),
        };
        (line["quantity"], line["current_quantity"]) = (qty.into(), current.into());
    }
    o
}

/// Return 945 of the order: both RED units (shipped as fulfillment line 101) and the GREEN one
/// (102), with a reverse delivery tracked as RTN123 by Delhivery.
fn shopify_return() -> FakeReturn {
    FakeReturn {
        id: RETURN,
        name: "#1001-R1".into(),
        status: "OPEN".into(),
        order_id: ORDER,
        lines: vec![
            FakeReturnLine::new(11, 2, 101, 518995019, "IPOD2008RED"),
            FakeReturnLine::new(12, 1, 102, 466157049, "IPOD2008GREEN"),
        ],
        exchange_lines: 0,
        tracking: Some(("RTN123".into(), "Delhivery".into())),
    }
}

fn approve() -> Value {
    json!({ "id": RETURN, "admin_graphql_api_id": format!("gid://shopify/Return/{RETURN}"), "status": "open",
            "order": { "id": ORDER, "admin_graphql_api_id": format!("gid://shopify/Order/{ORDER}") } })
}

fn cancel() -> Value {
    json!({ "id": RETURN, "admin_graphql_api_id": format!("gid://shopify/Return/{RETURN}"), "order_id": ORDER, "status": "canceled" })
}

/// A daemon with returns on, the order sent to the WMS and the return on the fake shop.
async fn started(returns: &str) -> (TestApp, AdminShopify) {
    let shop = AdminShopify::start().await;
    let o = Options {
        routing: "wms",
        shopify_url: Some(shop.url()),
        extra_sections: format!("[returns]\nenabled = true\n{returns}"),
        ..Options::default()
    };
    let t = TestApp::spawn_with(o).await;
    shop.state.returns.put(shopify_return());
    shop.state.returns.ship(ORDER, LOCATION_ID, &[101, 102]);
    assert_eq!(t.deliver("orders/create", &order(), "create-1").await, StatusCode::OK);
    t.drained().await;
    assert_eq!(t.wms.created(), vec![ORDER.to_string()]);
    (t, shop)
}

async fn ack(t: &TestApp, items: &[(&str, &str, &str)]) -> (StatusCode, Value) {
    let body = json!({
        "returnOrderCode": RETURN.to_string(), "forwardOrderCode": ORDER.to_string(), "locationCode": "WH-1",
        "orderItems": items.iter().map(|(code, sku, qc)| json!({
            "itemCode": code, "channelSkuCode": sku, "qcStatus": qc,
            "qcReason": if *qc == "FAIL" { json!("DAMAGED") } else { Value::Null },
            "imageUrls": if *qc == "FAIL" { json!(["https://increff.com/img.jpg"]) } else { Value::Null } })).collect::<Vec<_>>(),
    });
    t.wms_call(Method::PUT, "/wms/returns/acknowledgement", &body).await
}

async fn show(t: &TestApp) -> Value {
    let (ok, out, err) = t.cli(&["returns", "show", &RETURN.to_string(), "--json"]).await;
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// Sends the return to the WMS and waits until it is there.
async fn sent(t: &TestApp) {
    assert_eq!(t.deliver("returns/approve", &approve(), "approve-1").await, StatusCode::OK);
    t.drained().await;
    assert_eq!(t.wms.returns_created().len(), 1);
}

#[tokio::test]
async fn an_approved_return_reaches_the_wms_once_with_one_item_per_unit() {
    let (t, _shop) = started("").await;
    for _ in 0..3 {
        assert_eq!(t.deliver("returns/approve", &approve(), "approve-1").await, StatusCode::OK);
    }
    assert_eq!(t.deliver("returns/approve", &approve(), "approve-other-event").await, StatusCode::OK);
    t.drained().await;
    let calls = t.wms.calls_to("POST", "/return/return-orders");
    assert_eq!(calls.len(), 1, "one WMS return: {calls:?}");
    let body = &calls[0].body;
    assert_eq!(body["forwardOrderCode"], ORDER.to_string());
    assert_eq!(body["returnOrderCode"], RETURN.to_string());
    assert_eq!(body["locationCode"], "WH-1", "where the units shipped from");
    assert_eq!(body["orderType"], "CUSTOMER_RETURN");
    assert_eq!((body["awbNumber"].as_str(), body["transporter"].as_str()), (Some("RTN123"), Some("Delhivery")));
    let items: Vec<(&str, &str, &str)> = body["orderItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (i["itemCode"].as_str().unwrap(), i["channelSkuCode"].as_str().unwrap(), i["reason"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        items,
        [
            ("11-1", "IPOD2008RED", "Size too small"),
            ("11-2", "IPOD2008RED", "Size too small"),
            ("12-1", "IPOD2008GREEN", "Size too small")
        ]
    );
    let shown = show(&t).await;
    assert_eq!((shown["status"].as_str(), shown["name"].as_str()), (Some("sent"), Some("#1001-R1")));
    let (ok, out, _) = t.cli(&["orders", "show", &ORDER.to_string()]).await;
    assert!(ok && out.contains("return     945 #1001-R1 sent: 0 pass, 0 fail, 3 awaiting QC"), "{out}");
    t.stop().await;
}

#[tokio::test]
async fn a_return_of_a_rejected_order_is_held_until_released() {
    let (t, shop) = started("").await;
    // Another order, rejected (no shipping address): its return is held.
    let mut rejected = order();
    rejected["id"] = 7777.into();
    rejected["name"] = "#7777".into();
    rejected["shipping_address"] = Value::Null;
    assert_eq!(t.deliver("orders/create", &rejected, "create-7777").await, StatusCode::OK);
    let mut held = approve();
    held["order"]["id"] = 7777.into();
    held["id"] = 946.into();
    held["admin_graphql_api_id"] = "gid://shopify/Return/946".into();
    shop.state.returns.put(FakeReturn { id: 946, order_id: 7777, name: "#7777-R1".into(), ..shopify_return() });
    shop.state.returns.ship(7777, LOCATION_ID, &[101, 102]);
    assert_eq!(t.deliver("returns/approve", &held, "approve-946").await, StatusCode::OK);
    t.drained().await;
    assert!(t.wms.calls_to("POST", "/return/return-orders").is_empty(), "nothing sent");
    let (ok, out, _) = t.cli(&["returns", "list", "--status", "held"]).await;
    assert!(ok && out.contains("946") && out.contains("rejected"), "{out}");

    // The operator knows the WMS has the order (made there by hand): release sends it.
    t.wms.state.orders.lock().unwrap().insert("7777".into());
    let (ok, out, err) = t.cli(&["returns", "release", "946"]).await;
    assert!(ok, "{out}{err}");
    t.drained().await;
    let sent = t.wms.returns_created();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["forwardOrderCode"], "7777");
    assert_eq!(sent[0]["orderItems"][0]["channelSkuCode"], "IPOD2008RED", "a released return uses the current SKU");
    t.stop().await;
}

#[tokio::test]
async fn qc_results_restock_and_refund_passed_units_once_and_leave_failed_ones_open() {
    let (t, shop) = started("").await;
    sent(&t).await;
    let (status, answer) =
        ack(&t, &[("11-1", "IPOD2008RED", "PASS"), ("11-2", "IPOD2008RED", "PASS"), ("12-1", "IPOD2008GREEN", "FAIL")])
            .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({ "hasError": false }));
    t.drained().await;
    let returns = &shop.state.returns;
    assert_eq!(returns.process_calls.lock().unwrap().len(), 1, "one returnProcess");
    let done = returns.processed.lock().unwrap().clone();
    let location = format!("gid://shopify/Location/{LOCATION_ID}");
    assert_eq!(
        done.dispositions,
        vec![(11, 2, "RESTOCKED".to_string(), location), (12, 1, "NOT_RESTOCKED".to_string(), String::new())]
    );
    assert_eq!(
        done.refunds,
        vec![("gid://shopify/OrderTransaction/7".into(), "200.00".into(), "INR".into())],
        "2 PASS units"
    );
    assert_eq!(returns.get(RETURN).status, "OPEN", "a FAIL unit leaves it open for the merchant");
    assert!(returns.closes.lock().unwrap().is_empty());
    let shown = show(&t).await;
    let flags: Vec<&str> = shown["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(flags.contains(&"qc-fail"), "{flags:?}");
    assert_eq!(shown["status"], "done");
    assert_eq!(shown["units"][2]["qc_reason"], "DAMAGED");
    assert_eq!(shown["units"][2]["image_urls"][0], "https://increff.com/img.jpg");

    // The same acknowledgement again: 200, nothing new on Shopify. A contradicting one: 409.
    let (status, _) =
        ack(&t, &[("11-1", "IPOD2008RED", "PASS"), ("11-2", "IPOD2008RED", "PASS"), ("12-1", "IPOD2008GREEN", "FAIL")])
            .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = ack(&t, &[("12-1", "IPOD2008GREEN", "PASS")]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    t.drained().await;
    assert_eq!(returns.process_calls.lock().unwrap().len(), 1, "nothing new on Shopify");
    t.stop().await;
}

#[tokio::test]
async fn an_acknowledgement_is_checked_whole_before_anything_is_stored() {
    let (t, shop) = started("").await;
    sent(&t).await;
    let body = |code: &str, location: &str, items: Value| json!({ "returnOrderCode": code, "forwardOrderCode": ORDER.to_string(), "locationCode": location, "orderItems": items });
    let good = json!([{ "itemCode": "11-1", "channelSkuCode": "IPOD2008RED", "qcStatus": "PASS" }]);
    let cases = [
        (body("999", "WH-1", good.clone()), StatusCode::NOT_FOUND),
        (body(&RETURN.to_string(), "WH-9", good.clone()), StatusCode::BAD_REQUEST),
        (
            body(
                &RETURN.to_string(),
                "WH-1",
                json!([{ "itemCode": "11-1", "channelSkuCode": "IPOD2008RED", "qcStatus": "PASS" },
                                                     { "itemCode": "77-1", "channelSkuCode": "X", "qcStatus": "PASS" }]),
            ),
            StatusCode::NOT_FOUND,
        ),
        (
            body(
                &RETURN.to_string(),
                "WH-1",
                json!([{ "itemCode": "11-1", "channelSkuCode": "IPOD2008RED", "qcStatus": "OK" }]),
            ),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (b, want) in cases {
        let (status, answer) = t.wms_call(Method::PUT, "/wms/returns/acknowledgement", &b).await;
        assert_eq!(status, want, "{b}: {answer}");
        assert_eq!(answer["hasError"], true);
    }
    // `returnItemCode` is taken for `itemCode`, and POST like PUT.
    let alias = body(
        &RETURN.to_string(),
        "WH-1",
        json!([{ "returnItemCode": "11-1", "channelSkuCode": "IPOD2008RED", "qcStatus": "PASS" }]),
    );
    let (status, answer) = t.wms_call(Method::POST, "/wms/returns/acknowledgement", &alias).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    t.drained().await;
    assert_eq!(shop.state.returns.process_calls.lock().unwrap().len(), 1, "only the accepted call executed");
    // Return changes from the WMS are not supported.
    let (status, answer) = t.wms_call(Method::POST, "/wms/returns", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["errorMessage"], "return changes from the WMS are not supported for Shopify");
    t.stop().await;
}

#[tokio::test]
async fn a_partial_acknowledgement_then_the_rest_make_two_process_calls_then_a_close() {
    let (t, shop) = started("").await;
    sent(&t).await;
    assert_eq!(ack(&t, &[("11-1", "IPOD2008RED", "PASS")]).await.0, StatusCode::OK);
    t.drained().await;
    assert_eq!(show(&t).await["status"], "partial");
    assert!(shop.state.returns.closes.lock().unwrap().is_empty(), "units await QC: still open");
    assert_eq!(ack(&t, &[("11-2", "IPOD2008RED", "PASS"), ("12-1", "IPOD2008GREEN", "PASS")]).await.0, StatusCode::OK);
    t.drained().await;
    let returns = &shop.state.returns;
    assert_eq!(returns.process_calls.lock().unwrap().len(), 2);
    assert_eq!(*returns.closes.lock().unwrap(), vec![RETURN]);
    assert_eq!(returns.get(RETURN).status, "CLOSED");
    let refunded: Vec<String> = returns.processed.lock().unwrap().refunds.iter().map(|r| r.1.clone()).collect();
    assert_eq!(refunded, ["100.00", "200.00"]);
    assert_eq!(show(&t).await["status"], "done");
    t.stop().await;
}

#[tokio::test]
async fn a_cancelled_return_is_never_sent_before_and_executes_nothing_after() {
    // Before sending: the order's creation is still failing at the WMS, the return waits behind it.
    let shop = AdminShopify::start().await;
    let o = Options {
        routing: "wms",
        shopify_url: Some(shop.url()),
        extra_sections: "[returns]\nenabled = true\n".into(),
        ..Options::default()
    };
    let t = TestApp::spawn_with(o).await;
    shop.state.returns.put(shopify_return());
    shop.state.returns.ship(ORDER, LOCATION_ID, &[101, 102]);
    t.wms.set(|b| b.fail_next = 1_000_000);
    assert_eq!(t.deliver("orders/create", &order(), "create-1").await, StatusCode::OK);
    assert_eq!(t.deliver("returns/approve", &approve(), "approve-1").await, StatusCode::OK);
    assert_eq!(t.deliver("returns/cancel", &cancel(), "cancel-1").await, StatusCode::OK);
    t.wms.set(|b| b.fail_next = 0);
    eventually("the order created", || t.wms.created().len() == 1).await;
    t.drained().await;
    assert!(t.wms.calls_to("POST", "/return/return-orders").is_empty(), "never sent");
    assert_eq!(show(&t).await["status"], "cancelled");
    t.stop().await;

    // After sending: flagged and alerted; a later QC is answered 200 and executes nothing.
    let (t, shop) = started("").await;
    sent(&t).await;
    let flagged = t.metric("channeld_return_flags_total{flag=\"cancelled-after-send\"}").await;
    assert_eq!(t.deliver("returns/cancel", &cancel(), "cancel-1").await, StatusCode::OK);
    assert!(t.metric("channeld_return_flags_total{flag=\"cancelled-after-send\"}").await >= flagged + 1.0, "counted");
    assert_eq!(ack(&t, &[("11-1", "IPOD2008RED", "PASS")]).await.0, StatusCode::OK);
    t.drained().await;
    assert!(shop.state.returns.process_calls.lock().unwrap().is_empty(), "nothing on Shopify");
    let shown = show(&t).await;
    let flags: HashSet<&str> = shown["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(flags.contains("cancelled-after-send") && flags.contains("qc-after-cancel"), "{flags:?}");
    t.stop().await;
}

#[tokio::test]
async fn with_returns_off_return_webhooks_are_ignored_and_acknowledgements_refused() {
    let shop = AdminShopify::start().await;
    let t = TestApp::spawn_with(Options { routing: "wms", shopify_url: Some(shop.url()), ..Options::default() }).await;
    assert_eq!(t.deliver("returns/approve", &approve(), "approve-1").await, StatusCode::OK);
    assert!(t.app.store.return_record(RETURN).unwrap().is_none(), "ignored: nothing stored");
    let (status, answer) = ack(&t, &[("11-1", "IPOD2008RED", "PASS")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["hasError"], true);
    t.stop().await;
}

#[tokio::test]
async fn reconciliation_sends_a_return_whose_approval_never_arrived() {
    let (t, shop) = started("").await;
    let mut gql: Value =
        serde_json::from_str(include_str!("../fixtures/shopify-graphql/order_450789469.json")).unwrap();
    gql["legacyResourceId"] = ORDER.to_string().into();
    gql["updatedAt"] = "2026-11-30T10:00:00Z".into();
    shop.put_order(gql);
    channeld::jobs::reconcile::run(&t.app).await.unwrap();
    t.drained().await;
    assert_eq!(t.wms.returns_created().len(), 1, "the missed approval is sent");
    channeld::jobs::reconcile::run(&t.app).await.unwrap();
    t.drained().await;
    assert_eq!(t.wms.calls_to("POST", "/return/return-orders").len(), 1, "once");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_shopify_processed_a_step_and_before_channeld_recorded_it_restocks_and_refunds_once() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let shop = AdminShopify::start().await;
    shop.state.returns.put(shopify_return());
    shop.state.returns.ship(ORDER, LOCATION_ID, &[101, 102]);
    let addr = crate::crash::free_addr();
    let o = Options {
        routing: "wms",
        shopify_url: Some(shop.url()),
        extra_sections: "[returns]\nenabled = true\n".into(),
        ..Options::default()
    };
    let config = crate::helpers::write_config(dir.path(), addr, &wms.url(), &shop.url(), &o);
    let mut daemon = crate::crash::start(&config, addr).await;
    let client = reqwest::Client::new();
    let signed = |topic: &str, body: &Value, event: &str| {
        let bytes = serde_json::to_vec(body).unwrap();
        let path = channeld::flows::returns::ReturnTopic::parse(topic).map_or("/shopify/api/push/orders", |t| t.path());
        client
            .post(format!("http://{addr}{path}"))
            .header("X-Shopify-Shop-Domain", format!("{}.myshopify.com", crate::helpers::SHOP))
            .header("X-Shopify-Event-Id", event.to_string())
            .header("X-Shopify-Hmac-Sha256", channeld::shopify::webhook::sign(crate::helpers::SECRET, &bytes))
            .body(bytes)
    };
    assert!(signed("orders/create", &order(), "c1").send().await.unwrap().status().is_success());
    eventually("the order at the WMS", || wms.created().len() == 1).await;
    assert!(signed("returns/approve", &approve(), "a1").send().await.unwrap().status().is_success());
    eventually("the return at the WMS", || wms.returns_created().len() == 1).await;

    // Shopify processes the step, and its answer never reaches channeld: killed meanwhile.
    *shop.state.returns.hold_next_process.lock().unwrap() = true;
    let held = shop.state.returns.held.notified();
    let body = json!({ "returnOrderCode": RETURN.to_string(), "forwardOrderCode": ORDER.to_string(), "locationCode": "WH-1",
        "orderItems": [{ "itemCode": "11-1", "channelSkuCode": "IPOD2008RED", "qcStatus": "PASS" },
                       { "itemCode": "11-2", "channelSkuCode": "IPOD2008RED", "qcStatus": "PASS" },
                       { "itemCode": "12-1", "channelSkuCode": "IPOD2008GREEN", "qcStatus": "PASS" }] });
    let (status, _) = wms_request(&client, addr, Method::PUT, "/wms/returns/acknowledgement", &body).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::timeout(std::time::Duration::from_secs(20), held).await.expect("returnProcess reached Shopify");
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    shop.state.returns.release.notify_one();

    let mut daemon = crate::crash::start(&config, addr).await;
    eventually("the return closed on Shopify", || !shop.state.returns.closes.lock().unwrap().is_empty()).await;
    let done = shop.state.returns.processed.lock().unwrap().clone();
    assert_eq!(done.dispositions.len(), 2, "restocked once: {:?}", done.dispositions);
    assert_eq!(done.refunds.len(), 1, "refunded once: {:?}", done.refunds);
    assert_eq!(shop.state.returns.process_calls.lock().unwrap().len(), 1, "no second returnProcess");
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

#[tokio::test]
async fn with_returns_on_registration_doctor_and_webhook_send_know_the_return_topics() {
    let (t, shop) = started("restock_location_id = 655441491\n").await;
    let (ok, out, err) = t.cli(&["webhooks", "register"]).await;
    assert!(ok, "{out}{err}");
    let topics: HashSet<String> = shop.subscriptions().into_iter().map(|(topic, _)| topic).collect();
    for topic in ["RETURNS_APPROVE", "RETURNS_UPDATE", "RETURNS_CANCEL", "REVERSE_DELIVERIES_ATTACH_DELIVERABLE"] {
        assert!(topics.contains(topic), "{topic} registered: {topics:?}");
    }
    assert!(shop.subscriptions().contains(&(
        "RETURNS_APPROVE".to_string(),
        "https://connector.example.com/shopify/api/push/returnApprove".to_string()
    )));
    let (ok, out, err) = t.cli(&["doctor"]).await;
    assert!(ok && out.contains("returns restock at location 655441491"), "{out}{err}");
    // Without the returns scopes, doctor names them with their flow.
    shop.state.scopes.lock().unwrap().retain(|s| !s.ends_with("_returns"));
    let (ok, out, _) = t.cli(&["doctor"]).await;
    assert!(!ok && out.contains("write_returns") && out.contains("needed by returns"), "{out}");

    let file = t.dir().join("approve.json");
    std::fs::write(&file, approve().to_string()).unwrap();
    let (ok, out, err) =
        t.cli(&["webhook", "send", "--topic", "returns/approve", "--file", file.to_str().unwrap()]).await;
    assert!(ok && out.contains("200 OK"), "{out}{err}");
    t.drained().await;
    assert_eq!(t.wms.returns_created().len(), 1, "sent like a webhook from Shopify");
    t.stop().await;
}

#[tokio::test]
async fn a_step_shopify_refused_is_a_dead_letter_that_returns_retry_runs_again_once_fixed() {
    let (t, shop) = started("").await;
    sent(&t).await;
    *shop.state.returns.refuse_process.lock().unwrap() = Some("Return line item is not processable".into());
    assert_eq!(ack(&t, &[("11-1", "IPOD2008RED", "PASS")]).await.0, StatusCode::OK);
    t.drained().await;
    let dead = t.app.store.outbox_entries().unwrap();
    assert_eq!(dead.len(), 1, "dead-lettered: {dead:?}");
    assert!(dead[0].last_error.as_deref().unwrap_or_default().contains("not processable"));
    assert!(shop.state.returns.processed.lock().unwrap().dispositions.is_empty());

    *shop.state.returns.refuse_process.lock().unwrap() = None;
    let (ok, out, err) = t.cli(&["returns", "retry", "#1001-R1"]).await;
    assert!(ok, "{out}{err}");
    eventually("the step processed", || !shop.state.returns.processed.lock().unwrap().dispositions.is_empty()).await;
    t.drained().await;
    assert!(t.app.store.outbox_entries().unwrap().is_empty());
    let processed = shop.state.returns.processed.lock().unwrap().dispositions.clone();
    assert_eq!(processed, vec![(11, 1, "RESTOCKED".to_string(), format!("gid://shopify/Location/{LOCATION_ID}"))]);
    // A retry of a step done does nothing.
    let (ok, _, _) = t.cli(&["returns", "retry", "945"]).await;
    assert!(ok);
    t.drained().await;
    assert_eq!(shop.state.returns.processed.lock().unwrap().dispositions.len(), 1);
    t.stop().await;
}

#[tokio::test]
async fn with_wait_for_tracking_a_return_waits_for_its_reverse_delivery() {
    let (t, shop) = started("wait_for_tracking = true\n").await;
    shop.state.returns.put(FakeReturn { tracking: None, ..shopify_return() });
    assert_eq!(t.deliver("returns/approve", &approve(), "approve-1").await, StatusCode::OK);
    t.drained().await;
    assert!(t.wms.calls_to("POST", "/return/return-orders").is_empty(), "no tracking yet: not sent");
    assert_eq!(show(&t).await["status"], "waiting");
    // The label is made: Shopify attaches the reverse delivery and says so.
    shop.state.returns.put(shopify_return());
    let delivery = json!({ "id": 9080907654321u64, "admin_graphql_api_id": "gid://shopify/ReverseDelivery/9080907654321",
        "return": { "id": RETURN, "admin_graphql_api_id": format!("gid://shopify/Return/{RETURN}") },
        "shipping_deliverable": { "tracking": { "carrier_name": "Delhivery", "tracking_number": "RTN123" } } });
    assert_eq!(t.deliver("reverse_deliveries/attach_deliverable", &delivery, "delivery-1").await, StatusCode::OK);
    t.drained().await;
    let sent = t.wms.returns_created();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["awbNumber"], "RTN123");
    // Tracking that comes after the WMS got the return is recorded, not forwarded.
    assert_eq!(t.deliver("reverse_deliveries/attach_deliverable", &delivery, "delivery-2").await, StatusCode::OK);
    t.drained().await;
    assert_eq!(t.wms.calls_to("POST", "/return/return-orders").len(), 1);
    let flags: Vec<Value> = show(&t).await["flags"].as_array().unwrap().clone();
    assert!(flags.contains(&json!("tracking-after-send")), "{flags:?}");
    t.stop().await;
}
