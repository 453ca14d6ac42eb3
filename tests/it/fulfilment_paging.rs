//! Clickpost's acknowledgement to Shopify (`fulfillmentCreate`) finds the shipment's units on
//! every page of the order's fulfillment orders and of their lines, and refuses, naming them,
//! units that find no open line, instead of fulfilling the rest in silence.

use channeld::flows::model::EntryState;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::courier_fakes::FakeCourier;
use crate::helpers::{fixture_order, Options, TestApp};
use crate::shopify_admin_fake::{AdminShopify, FakeFulfillmentOrder};

const RED: u64 = 518995019;

/// A daemon with the admin fake serving `fos`; the fixture order with 2 red iPods at the WMS.
async fn sent_order(fos: Vec<FakeFulfillmentOrder>) -> (TestApp, AdminShopify, FakeCourier) {
    let shop = AdminShopify::start().await;
    *shop.state.fulfillment_orders.lock().unwrap() = fos;
    let courier = FakeCourier::start().await;
    let t = TestApp::spawn_with(Options {
        shopify_url: Some(shop.url()),
        courier_url: Some(courier.url()),
        ..Options::default()
    })
    .await;
    let mut o = fixture_order();
    o["line_items"][1]["quantity"] = 2.into();
    o["line_items"][1]["current_quantity"] = 2.into();
    t.deliver("orders/create", &o, "c1").await;
    t.drained().await;
    assert_eq!(t.wms.created(), vec!["450789469".to_string()]);
    (t, shop, courier)
}

/// Packs both red iPods in shipment 70 (booked with Clickpost, then acknowledged to Shopify).
async fn pack_both(t: &TestApp) {
    let pack = json!({ "orderCode": "450789469", "locationCode": "WH-1", "shipmentId": 70, "weight": 750,
        "dimensions": { "length": 20, "breadth": 10, "height": 5 },
        "invoice": { "invoiceCode": "INV-70", "invoiceDate": "2026-11-27T10:00:00Z",
                     "invoiceItems": [{ "orderItemCode": RED.to_string(), "quantity": 2 }] } });
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.drained().await;
}

/// Fulfillment order `id` with `n` lines of other order lines, then `extra`.
fn fo(id: u64, n: u64, extra: &[(u64, u64, u64)]) -> FakeFulfillmentOrder {
    let mut lines: Vec<(u64, u64, u64)> = (0..n).map(|i| (id * 1000 + i, 900_000 + i, 1)).collect();
    lines.extend_from_slice(extra);
    FakeFulfillmentOrder { id, status: "OPEN", lines }
}

fn fulfilments(shop: &AdminShopify) -> Vec<String> {
    shop.log().into_iter().filter(|l| l.starts_with("fulfill ")).collect()
}

#[tokio::test]
async fn units_on_a_later_page_of_fulfillment_orders_and_lines_are_found() {
    // Eleven fulfillment orders (one page is ten); the red iPod is line 31 of the last one (one
    // page of lines is 25), one unit there and one on the first line of the first one.
    let mut fos: Vec<FakeFulfillmentOrder> = (1..=10).map(|id| fo(id, 3, &[])).collect();
    fos[0].lines.insert(0, (1, RED, 1));
    fos.push(fo(11, 30, &[(11_999, RED, 1)]));
    let (t, shop, _c) = sent_order(fos).await;
    pack_both(&t).await;
    let made = fulfilments(&shop);
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(made[0].contains("FulfillmentOrderLineItem/1\""), "{made:?}");
    assert!(made[0].contains("FulfillmentOrderLineItem/11999"), "{made:?}");
    assert!(shop.log().iter().any(|l| l == "query FulfillmentOrderLines"), "the lines were paged through");
    assert!(t.app.store.outbox_entries().unwrap().is_empty(), "acknowledged");
    t.stop().await;
}

#[tokio::test]
async fn units_with_no_open_line_refuse_the_fulfillment_and_are_named() {
    // Shopify has only one unit of the two left to fulfil.
    let (t, shop, _c) = sent_order(vec![fo(1, 2, &[(5, RED, 1)])]).await;
    pack_both(&t).await;
    assert!(fulfilments(&shop).is_empty(), "nothing fulfilled partially");
    let entries = t.app.store.outbox_entries().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].state, EntryState::Dead);
    let error = entries[0].last_error.clone().unwrap_or_default();
    assert!(error.contains(&format!("line {RED}: 1 unit")), "{error}");
    t.stop().await;
}
