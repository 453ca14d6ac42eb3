//! Onboarding on a fresh install (#20): `listings import` and `listings discover` run before
//! `serve` ever did, so they create the store, and `serve` then serves those listings.

use std::os::unix::fs::PermissionsExt;

use reqwest::Method;
use serde_json::{json, Value};

use crate::crash::{free_addr, start};
use crate::fakes::FakeWms;
use crate::helpers::{run_cli, wms_request, write_config, Options};
use crate::shopify_inventory_fake::InventoryShopify;

#[tokio::test]
async fn listings_imported_before_the_first_serve_create_the_store_and_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let shop = InventoryShopify::start().await;
    shop.add_items([20_000, 20_001]);
    let addr = free_addr();
    let o = Options { shopify_url: Some(shop.url()), ..Options::default() };
    let config = write_config(dir.path(), addr, &wms.url(), &shop.url(), &o);
    let store = dir.path().join("store");
    assert!(!store.exists(), "a fresh install: no store yet");

    // Shopify checks the serials: a file naming one it does not know is refused as a whole, and
    // leaves nothing half-imported behind.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "channelSkuCode,channelSerialNo\nSKU-A,20000\nSKU-X,99999\n").unwrap();
    let (ok, _, err) = run_cli(&config, &["listings", "import", bad.to_str().unwrap()]).await;
    assert!(!ok, "an unknown serial refuses the file");
    assert!(err.contains("99999") && !err.contains("no store"), "{err}");

    let csv = dir.path().join("listings.csv");
    std::fs::write(&csv, "channelSkuCode,channelSerialNo\nSKU-A,20000\nSKU-B,gid://shopify/InventoryItem/20001\n")
        .unwrap();
    let (ok, out, err) = run_cli(&config, &["listings", "import", csv.to_str().unwrap()]).await;
    assert!(ok, "import on a fresh install: {out}{err}");
    assert!(store.join("db").is_dir(), "the import created the store");
    assert_eq!(std::fs::metadata(&store).unwrap().permissions().mode() & 0o777, 0o700);

    // Discovery on another fresh install works the same way.
    let other = tempfile::tempdir().unwrap();
    shop.state.variants.lock().unwrap().extend([("SKU-A".to_string(), 20_000), ("SKU-B".to_string(), 20_001)]);
    let other_config = write_config(other.path(), free_addr(), &wms.url(), &shop.url(), &o);
    let (ok, out, err) = run_cli(&other_config, &["listings", "discover"]).await;
    assert!(ok, "discover on a fresh install: {out}{err}");
    let (ok, listed, err) = run_cli(&other_config, &["listings", "list", "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(skus(&listed), ["SKU-A", "SKU-B"]);

    // The first serve starts on that store and serves the listings.
    let mut daemon = start(&config, addr).await;
    let (ok, listed, err) = run_cli(&config, &["listings", "list", "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(skus(&listed), ["SKU-A", "SKU-B"]);
    let body = json!({ "locationCode": "WH-INV", "inventories": [
        { "channelSkuCode": "SKU-A", "quantity": 4 }, { "channelSkuCode": "SKU-B", "quantity": 5 },
        { "channelSkuCode": "SKU-C", "quantity": 6 } ] });
    let (status, answer) = wms_request(&reqwest::Client::new(), addr, Method::PUT, "/wms/inventory", &body).await;
    assert!(status.is_success(), "{answer}");
    assert_eq!(answer, json!({ "successList": ["SKU-A", "SKU-B"], "failureList": ["SKU-C"] }));
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

fn skus(listed: &str) -> Vec<String> {
    let rows: Vec<Value> = serde_json::from_str(listed).unwrap_or_else(|e| panic!("{e}: {listed}"));
    let mut skus: Vec<String> = rows
        .iter()
        .map(|r| r["sku"].as_str().or(r["channelSkuCode"].as_str()).unwrap_or_default().to_string())
        .collect();
    skus.sort();
    skus
}
