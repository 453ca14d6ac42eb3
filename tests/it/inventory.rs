//! Listings and the inventory push, against the stateful Shopify inventory fake.

use std::time::Duration;

use channeld::flows::listings::Listing;
use channeld::jobs::inventory_push::push_pending;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{Options, TestApp, INVENTORY_LOCATION_ID as LOC};
use crate::shopify_inventory_fake::{Budget, InventoryShopify};

async fn spawn() -> (TestApp, InventoryShopify) {
    let shop = InventoryShopify::start().await;
    let t = TestApp::spawn_with(Options { shopify_url: Some(shop.url()), ..Options::default() }).await;
    (t, shop)
}

/// Lists `n` SKUs `SKU-i` → inventory item `10_000 + i`, known to the fake.
fn list_skus(t: &TestApp, shop: &InventoryShopify, n: u64) {
    shop.add_items((0..n).map(|i| 10_000 + i));
    let listings: Vec<Listing> = (0..n).map(|i| Listing { sku: format!("SKU-{i}"), item_id: 10_000 + i }).collect();
    t.app.store.replace_listings(&listings).unwrap();
}

async fn put_quantities(t: &TestApp, rows: impl Iterator<Item = (u64, i64)>) -> Value {
    let inventories: Vec<Value> =
        rows.map(|(i, q)| json!({ "channelSkuCode": format!("SKU-{i}"), "quantity": q })).collect();
    let (status, body) = t
        .wms_call(Method::PUT, "/wms/inventory", &json!({ "locationCode": "WH-INV", "inventories": inventories }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn import_refuses_bad_files_whole_and_stores_good_ones() {
    let (t, shop) = spawn().await;
    shop.add_items([101, 102, 103, 104, 105]);
    let file = t.dir().join("listings.csv");
    let file = file.to_str().unwrap().to_string();
    let import = |body: &'static str| {
        std::fs::write(&file, body).unwrap();
        t.cli_owned(vec!["listings".into(), "import".into(), file.clone()])
    };

    let (ok, _, err) = import("channelSkuCode,channelSerialNo\nA,101\nB,101\n").await;
    assert!(!ok && err.contains("lines 2, 3") && err.contains("serial number 101 repeats"), "{err}");
    assert!(t.app.store.listings().unwrap().is_empty(), "nothing stored");

    let (ok, _, err) = import("channelSkuCode,channelSerialNo\nA,101\nB,999\n").await;
    assert!(!ok && err.contains("line 3") && err.contains("999"), "{err}");
    assert!(t.app.store.listings().unwrap().is_empty());

    let (ok, out, err) =
        import("\u{feff}channelSkuCode,name,channelSerialNo\nA,Shirt,101\nB,Hat,gid://shopify/InventoryItem/102\n")
            .await;
    assert!(ok, "{err}");
    assert!(out.contains("2 listing(s) stored"), "{out}");
    let (ok, out, _) = t.cli(&["listings", "list", "--json"]).await;
    assert!(ok);
    let listed: Vec<Listing> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed, vec![Listing { sku: "A".into(), item_id: 101 }, Listing { sku: "B".into(), item_id: 102 }]);

    // Discovery: exact SKUs only; a SKU on two variants is reported, not mapped.
    *shop.state.variants.lock().unwrap() =
        vec![("A".into(), 101), ("C".into(), 103), ("D".into(), 104), ("D".into(), 105)];
    let (ok, _, err) = t.cli(&["listings", "discover"]).await;
    assert!(ok, "{err}");
    assert!(err.contains("SKU D is on 2 variants"), "{err}");
    let skus: Vec<String> = t.app.store.listings().unwrap().into_iter().map(|l| l.sku).collect();
    assert_eq!(skus, vec!["A", "C"]);
    t.stop().await;
}

#[tokio::test]
async fn thousand_skus_go_out_in_four_full_batches_and_only_changes_after() {
    let (t, shop) = spawn().await;
    list_skus(&t, &shop, 1000);
    for call in 0..5u64 {
        let body = put_quantities(&t, (call * 200..(call + 1) * 200).map(|i| (i, i as i64 % 37))).await;
        assert_eq!(body["successList"].as_array().unwrap().len(), 200);
        assert!(body["failureList"].as_array().unwrap().is_empty());
    }
    let report = push_pending(&t.app).await.unwrap();
    assert_eq!((report.calls, report.pushed, report.quarantined), (4, 1000, 0));
    let calls = shop.applied_calls();
    assert_eq!(calls.len(), 4);
    assert!(calls.iter().all(|c| c.rows.len() == 250));
    assert!(calls.iter().all(|c| c.name == "available" && c.reason == "correction" && c.change_from_all_null));
    assert!(calls.iter().all(|c| c.reference.starts_with("logistics://channeld/")));
    let keys: std::collections::HashSet<_> = calls.iter().map(|c| c.key.clone()).collect();
    assert_eq!(keys.len(), 4, "one idempotency key per request");
    for i in 0..1000u64 {
        assert_eq!(shop.level(10_000 + i, LOC), Some(i as i64 % 37), "SKU-{i}");
    }

    // The same quantities again: nothing to push.
    put_quantities(&t, (0..200).map(|i| (i, i as i64 % 37))).await;
    assert_eq!(push_pending(&t.app).await.unwrap().calls, 0);
    assert_eq!(shop.calls().len(), 4);

    // One change: one call with one row.
    put_quantities(&t, [(7, 500)].into_iter()).await;
    let report = push_pending(&t.app).await.unwrap();
    assert_eq!((report.calls, report.pushed), (1, 1));
    let last = shop.calls().pop().unwrap();
    assert_eq!(last.rows, vec![(10_007, LOC, 500)]);
    t.stop().await;
}

#[tokio::test]
async fn a_refused_row_is_quarantined_and_the_rest_pushed_in_the_same_run() {
    let (t, shop) = spawn().await;
    list_skus(&t, &shop, 10);
    shop.state.refuse.lock().unwrap().insert(10_003);
    put_quantities(&t, (0..10).map(|i| (i, 5))).await;
    let report = push_pending(&t.app).await.unwrap();
    assert_eq!((report.pushed, report.quarantined), (9, 1));
    let applied = shop.applied_calls();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].rows.len(), 9);
    assert!(applied[0].rows.iter().all(|r| r.0 != 10_003));
    let (ok, out, _) = t.cli(&["inventory", "status"]).await;
    assert!(ok && out.contains("SKU-3") && out.contains("The specified inventory item could not be found"), "{out}");

    // Not sent again, even with a new quantity, until its listing changes.
    put_quantities(&t, [(3, 8)].into_iter()).await;
    assert_eq!(push_pending(&t.app).await.unwrap().calls, 0);
    shop.add_items([20_003]);
    let mut listings = t.app.store.listings().unwrap();
    listings.iter_mut().find(|l| l.sku == "SKU-3").unwrap().item_id = 20_003;
    t.app.store.replace_listings(&listings).unwrap();
    let report = push_pending(&t.app).await.unwrap();
    assert_eq!((report.calls, report.pushed), (1, 1));
    assert_eq!(shop.level(20_003, LOC), Some(8));

    // `inventory release` retries a quarantined row by hand.
    shop.state.refuse.lock().unwrap().insert(10_004);
    put_quantities(&t, [(4, 9)].into_iter()).await;
    assert_eq!(push_pending(&t.app).await.unwrap().quarantined, 1);
    shop.state.refuse.lock().unwrap().clear();
    let (ok, out, err) = t.cli(&["inventory", "release", "SKU-4"]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(push_pending(&t.app).await.unwrap().pushed, 1);
    assert_eq!(shop.level(10_004, LOC), Some(9));
    t.stop().await;
}

#[tokio::test]
async fn throttled_pushes_wait_for_the_budget_and_lose_nothing() {
    let (t, shop) = spawn().await;
    list_skus(&t, &shop, 1000);
    for call in 0..5u64 {
        put_quantities(&t, (call * 200..(call + 1) * 200).map(|i| (i, 3))).await;
    }
    // Another app overdrew the bucket just before the push (0.4 s of refill at 50 points/s before
    // the first call fits), so the push starts throttled whatever the machine's speed.
    let mut budget = Budget::new(20.0, 50.0, 10.0);
    budget.available = -10.0;
    *shop.state.budget.lock().unwrap() = Some(budget);
    let report = tokio::time::timeout(Duration::from_secs(30), push_pending(&t.app)).await.unwrap().unwrap();
    assert_eq!(report.pushed, 1000);
    assert!(shop.throttled() >= 1, "the fake must have throttled at least once");
    assert!((0..1000u64).all(|i| shop.level(10_000 + i, LOC) == Some(3)));
    t.stop().await;
}

#[tokio::test]
async fn wms_inventory_validation_and_limits() {
    let (t, shop) = spawn().await;
    list_skus(&t, &shop, 3);
    let (status, body) = t
        .wms_call(
            Method::PUT,
            "/wms/inventory",
            &json!({ "locationCode": "WH-INV", "inventories": [
            { "channelSkuCode": "SKU-0", "quantity": 4, "channelSerialNo": "10000" },
            { "channelSkuCode": "SKU-1", "quantity": 4, "channelSerialNo": "gid://shopify/InventoryItem/55" },
            { "channelSkuCode": "NOPE", "quantity": 4 },
            { "channelSkuCode": "SKU-2", "quantity": -1 },
        ] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "successList": ["SKU-0"], "failureList": ["SKU-1", "NOPE", "SKU-2"] }));
    // An unmapped location refuses every row.
    let (_, body) = t
        .wms_call(
            Method::PUT,
            "/wms/inventory",
            &json!({ "locationCode": "ELSEWHERE", "inventories": [{ "channelSkuCode": "SKU-0", "quantity": 1 }] }),
        )
        .await;
    assert_eq!(body, json!({ "successList": [], "failureList": ["SKU-0"] }));
    // More than 200 rows.
    let rows: Vec<Value> = (0..201).map(|_| json!({ "channelSkuCode": "SKU-0", "quantity": 1 })).collect();
    let (status, body) =
        t.wms_call(Method::PUT, "/wms/inventory", &json!({ "locationCode": "WH-INV", "inventories": rows })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["hasError"], true);
    // Without credentials.
    let status = t.http.put(t.url("/wms/inventory")).json(&json!({})).send().await.unwrap().status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Unsupported calls answer clearly.
    for path in ["/wms/manifest", "/wms/returns"] {
        let (status, body) = t.wms_call(Method::POST, path, &json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["errorMessage"].as_str().unwrap().contains("not supported for Shopify"), "{body}");
    }
    let (status, _) = t.wms_call(Method::PUT, "/wms/acknowledgement", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    t.stop().await;
}

#[tokio::test]
async fn a_quantity_shopify_cannot_take_is_refused_per_row_and_a_stored_one_is_quarantined_alone() {
    let (t, shop) = spawn().await;
    list_skus(&t, &shop, 250);
    let big = |i: u64| if i == 1 { 3_000_000_000 } else { i as i64 };
    let body = put_quantities(&t, (0..200).map(|i| (i, big(i)))).await;
    assert_eq!(body["failureList"], json!(["SKU-1"]), "above Shopify's Int: refused at the door");
    assert_eq!(body["successList"].as_array().unwrap().len(), 199);
    put_quantities(&t, (200..250).map(|i| (i, i as i64))).await;
    // A row stored before quantities were checked (an older channeld took it).
    t.app.store.set_desired(LOC, "WH-INV", &[("SKU-7".into(), 10_007, 3_000_000_000)], 0).unwrap();

    let report = push_pending(&t.app).await.unwrap();
    assert_eq!((report.pushed, report.quarantined, report.failed_batches), (248, 1, 0), "{report:?}");
    assert!(report.calls <= 20, "halving finds the row in a few calls: {report:?}");
    for i in (0..250u64).filter(|i| ![1, 7].contains(i)) {
        assert_eq!(shop.level(10_000 + i, LOC), Some(i as i64), "SKU-{i}");
    }
    assert_eq!(shop.level(10_007, LOC), None);
    let (ok, out, _) = t.cli(&["inventory", "status"]).await;
    assert!(ok && out.contains("SKU-7") && out.contains("Could not coerce value 3000000000 to Int"), "{out}");
    // The next run has nothing to send: the batch does not fail forever.
    assert_eq!(push_pending(&t.app).await.unwrap().calls, 0);
    t.stop().await;
}

#[tokio::test]
async fn a_batch_refused_without_a_row_named_is_halved_down_to_the_refused_row() {
    let (t, shop) = spawn().await;
    list_skus(&t, &shop, 10);
    shop.state.refuse_unnamed.lock().unwrap().insert(10_005);
    put_quantities(&t, (0..10).map(|i| (i, 5))).await;
    let report = push_pending(&t.app).await.unwrap();
    assert_eq!((report.pushed, report.quarantined, report.failed_batches), (9, 1, 0), "{report:?}");
    assert!((0..10u64).filter(|i| *i != 5).all(|i| shop.level(10_000 + i, LOC) == Some(5)));
    let quarantined: Vec<String> =
        t.app.store.inventory_rows().unwrap().into_iter().filter(|r| r.quarantine.is_some()).map(|r| r.sku).collect();
    assert_eq!(quarantined, vec!["SKU-5"]);
    t.stop().await;
}

#[tokio::test]
async fn a_refusal_every_row_meets_alone_quarantines_nothing() {
    let (t, shop) = spawn().await;
    list_skus(&t, &shop, 4);
    shop.state.refuse_unnamed.lock().unwrap().extend(10_000..10_004);
    put_quantities(&t, (0..4).map(|i| (i, 5))).await;
    let report = push_pending(&t.app).await.unwrap();
    assert_eq!((report.pushed, report.quarantined, report.failed_batches), (0, 0, 1), "{report:?}");
    assert!(t.app.store.inventory_rows().unwrap().iter().all(|r| r.quarantine.is_none() && r.is_pending()));
    // Once Shopify takes them, they all go out.
    shop.state.refuse_unnamed.lock().unwrap().clear();
    assert_eq!(push_pending(&t.app).await.unwrap().pushed, 4);
    t.stop().await;
}
