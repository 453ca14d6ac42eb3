//! The way back when the state database is damaged: a data file sled reads as empty is rebuilt
//! from the journal at start by itself; one sled refuses to open makes `serve` say so and name
//! `channeld store rebuild`, which builds the state again from the journal. Either way nothing
//! acknowledged is lost and the WMS holds each order once.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::crash::{all_delivered, free_addr, post_order, start};
use crate::fakes::FakeWms;
use crate::helpers::{run_cli, wms_request, write_config, Options};

#[tokio::test]
async fn a_state_that_cannot_be_opened_is_named_and_rebuilt_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let addr = free_addr();
    let o = Options { routing: "wms", ..Options::default() };
    let config = write_config(dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &o);
    let mut daemon = start(&config, addr).await;
    let client = reqwest::Client::new();
    let acked: HashSet<u64> = (1..=20).collect();
    for id in &acked {
        assert!(post_order(&client, addr, *id).await);
    }
    all_delivered(&config, &wms, &acked).await;
    let handover = json!({ "locationCode": "WH-1", "handoverItems": [{ "orderCode": "3", "shipmentCode": "s3" }] });
    let (status, _) = wms_request(&client, addr, Method::POST, "/wms/handover", &handover).await;
    assert!(status.is_success());
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();

    // The disk lost sled's log: garbage where it was. sled opens that as an empty database; the
    // daemon notices and applies the whole journal again, by itself.
    let data = dir.path().join("store/db/db");
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::write(&data, vec![0xAB; len as usize]).unwrap();
    let mut daemon = start(&config, addr).await;
    assert_eq!(order_ids(&config).await, acked, "every acknowledged order is back after the start");
    all_delivered(&config, &wms, &acked).await;
    assert_eq!(wms.created().len(), 20, "repeats were answered \"already exists\"");
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();

    // A settings file sled cannot read: it refuses to open, and `serve` names the way back.
    std::fs::write(dir.path().join("store/db/conf"), [0xAB; 40]).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_channeld"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve must refuse a store it cannot open");
    assert!(stderr.contains("channeld store rebuild"), "serve names the way back: {stderr}");

    let (ok, stdout, stderr) = run_cli(&config, &["store", "rebuild"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("20 order(s)"), "{stdout}");
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("store")).unwrap().flatten().collect();
    assert!(kept.iter().any(|e| e.file_name().to_string_lossy().starts_with("db.broken-")), "the old one is kept");

    let sent_before = wms.calls_to("POST", "/orders/outward").len();
    let mut daemon = start(&config, addr).await;
    assert_eq!(order_ids(&config).await, acked, "every acknowledged order is back");
    // Creations go out again and the WMS answers "already exists": still one order each there.
    all_delivered(&config, &wms, &acked).await;
    assert_eq!(wms.created().len(), 20);
    assert!(wms.calls_to("POST", "/orders/outward").len() >= sent_before);
    let (_, exported, _) = run_cli(&config, &["orders", "show", "3", "--json"]).await;
    assert!(exported.contains("\"status\": \"sent\""), "{exported}");
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

async fn order_ids(config: &std::path::Path) -> HashSet<u64> {
    let (ok, listed, err) = run_cli(config, &["orders", "list", "--json"]).await;
    assert!(ok, "{err}");
    let orders: Vec<Value> = serde_json::from_str(&listed).unwrap();
    orders.iter().map(|o| o["id"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_store_written_before_the_journal_is_upgraded_on_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stores/store-50ca60e.tar.gz");
    let untar = std::process::Command::new("tar").arg("xzf").arg(fixture).arg("-C").arg(dir.path()).status().unwrap();
    assert!(untar.success());
    // That build left its store as the umask made it (0755); serve now refuses that (#17).
    std::fs::set_permissions(dir.path().join("store"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let wms = FakeWms::start().await;
    let addr = free_addr();
    let o = Options { routing: "wms", ..Options::default() };
    let config = write_config(dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &o);
    let mut daemon = start(&config, addr).await;
    // The two queued creations go out; the cancelled order is not sent.
    let queued: HashSet<u64> = [7001, 7003].into();
    all_delivered(&config, &wms, &queued).await;
    assert_eq!(wms.created().len(), 2);
    let (ok, shown, err) = run_cli(&config, &["orders", "show", "7003", "--json"]).await;
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["items"].as_array().unwrap().len(), 60, "the large record reads whole");
    assert_eq!(order_ids(&config).await, [7001, 7002, 7003].into());
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();

    // The raw bodies left sled for the journal, with their topics.
    let export = dir.path().join("export.jsonl");
    let (ok, _, err) = run_cli(&config, &["export", export.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let lines: Vec<Value> =
        std::fs::read_to_string(&export).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let topics: Vec<&str> =
        lines.iter().filter(|l| l["tree"] == "payloads").map(|l| l["value"]["topic"].as_str().unwrap()).collect();
    assert_eq!(topics.iter().filter(|t| **t == "orders/create").count(), 3, "{topics:?}");
    assert_eq!(topics.iter().filter(|t| **t == "orders/cancelled").count(), 1, "{topics:?}");
    assert!(dir.path().join("store/journal").is_dir());
    let blobs = std::fs::read_dir(dir.path().join("store/db/blobs")).unwrap().count();
    assert_eq!(blobs, 0, "no value is kept in a sled blob file");
}

/// Every key and value of every sled tree of the store at `path`, once no daemon holds it.
async fn trees_of(path: &std::path::Path) -> channeld::store::RawTrees {
    use channeld::store::{Store, StoreError};
    for _ in 0..250 {
        match Store::open(path, 8) {
            Ok(store) => {
                let trees = store.raw_trees().unwrap();
                store.close().unwrap();
                return trees;
            }
            // sled's threads release the lock of a store just closed a moment later.
            Err(StoreError::Locked(_)) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the store at {} stayed locked", path.display());
}

/// The raw webhook bodies the journal keeps (topic, when, body), in order of arrival: a restore
/// journals them anew, so their positions differ. Other journal records (WMS calls, sends) are
/// applied state, which the trees hold.
fn bodies_of(path: &std::path::Path) -> Vec<(String, i64, String)> {
    let store = channeld::store::Store::open(path, 8).unwrap();
    let mut bodies = Vec::new();
    store
        .each_inbound(|_, event| {
            if let Some((topic, body)) = event.webhook_body() {
                bodies.push((topic.to_string(), event.received_ms(), body.to_string()));
            }
            Ok(())
        })
        .unwrap();
    store.close().unwrap();
    bodies.sort();
    bodies
}

/// `export` then `import` into an empty store gives back the same store, compared tree by tree
/// with everything the daemon writes present: orders, a tombstone left by retention, a dead
/// outbox entry, a shipment with its AWB and label (and the tracking record keeping its Shopify
/// fulfillment), a handover, the courier name learned from the booking, listings, inventory, job
/// runs, an alert. A record an export leaves out fails it.
#[tokio::test]
async fn an_export_imported_into_an_empty_store_round_trips_every_record() {
    use channeld::store::JobStatus;

    use crate::courier_fakes::FakeCourier;
    use crate::helpers::{order_numbered, TestApp};
    use crate::shopify_admin_fake::AdminShopify;
    let shop = AdminShopify::start().await;
    let courier = FakeCourier::start().await;
    let o = Options {
        routing: "wms",
        shopify_url: Some(shop.url()),
        courier_url: Some(courier.url()),
        ..Options::default()
    };
    let t = TestApp::spawn_with(o).await;
    for id in 1..=6 {
        assert_eq!(t.deliver("orders/create", &order_numbered(id), &format!("c{id}")).await, StatusCode::OK);
    }
    t.drained().await;
    // Order 6 is cancelled, then pruned by retention: it leaves a tombstone.
    let mut cancelled = order_numbered(6);
    cancelled["cancelled_at"] = "2030-01-01T00:00:00Z".into();
    assert_eq!(t.deliver("orders/cancelled", &cancelled, "x6").await, StatusCode::OK);
    t.drained().await;
    let cut = chrono::Utc::now().timestamp_millis() + 1;
    assert_eq!(t.app.store.call(move |s| s.prune_finished(cut, false)).await.unwrap(), 1, "order 6 only");

    let pack = json!({ "orderCode": "2", "locationCode": "WH-1", "shipmentId": 42,
        "invoice": { "invoiceCode": "INV-42", "invoiceUrl": "https://wms.example/42.pdf" } });
    let (status, body) = t.wms_call(Method::POST, "/wms/shipments", &pack).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let handover = json!({ "locationCode": "WH-1", "handoverItems": [{ "orderCode": "2", "shipmentCode": "42" }] });
    assert_eq!(t.wms_call(Method::POST, "/wms/handover", &handover).await.0, StatusCode::OK);
    let listings = vec![channeld::flows::listings::Listing { sku: "SKU-A".into(), item_id: 77 }];
    channeld::services::replace_listings(&t.app, listings).await.unwrap();
    let inventory = json!({ "locationCode": "WH-INV", "inventories": [{ "channelSkuCode": "SKU-A", "quantity": 9 }] });
    assert_eq!(t.wms_call(Method::PUT, "/wms/inventory", &inventory).await.0, StatusCode::OK);
    // A call left dead in the outbox: an update the WMS refuses.
    t.wms.set(|b| b.refuse = Some((400, "no".into())));
    let mut held = order_numbered(3);
    held["tags"] = "on-hold".into();
    held["updated_at"] = "2030-01-01T00:00:00Z".into();
    assert_eq!(t.deliver("orders/updated", &held, "u3").await, StatusCode::OK);
    t.drained().await;
    t.drained().await;
    // What the jobs and the outbox record (set here rather than waiting for a schedule).
    let status = JobStatus { last_run_ms: 1, ok: false, summary: "the WMS refused our credentials".into() };
    let noted = status.clone();
    t.app
        .store
        .call(move |s| {
            s.set_job_status("reconcile", &noted)?;
            s.set_reconcile_watermark(1_700_000_000_000)?;
            s.set_alert("wms_credentials", Some(&noted))
        })
        .await
        .unwrap();

    let first = t.dir().join("first.jsonl");
    let (ok, _, err) = t.cli(&["export", first.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let dir = t.stop().await;

    let restored = tempfile::tempdir().unwrap();
    let config =
        write_config(restored.path(), free_addr(), "http://127.0.0.1:9", "http://127.0.0.1:9", &Options::default());
    let (ok, out, err) = run_cli(&config, &["import", first.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert!(out.contains("5 order(s)") && out.contains("1 shipment(s)") && out.contains("1 handover(s)"), "{out}");
    assert!(out.contains("1 shipment tracking record(s)"), "the fulfillment's id travels: {out}");
    assert!(out.contains("1 pruned order(s) remembered"), "{out}");
    let (ok, _, err) = run_cli(&config, &["import", first.to_str().unwrap()]).await;
    assert!(!ok && err.contains("not empty"), "a second import into the same store is refused: {err}");

    let (original, copy) = (dir.path().join("store"), restored.path().join("store"));
    let (mut a, mut b) = (trees_of(&original).await, trees_of(&copy).await);
    // The one value that belongs to the files that wrote it: the last journal record applied.
    for trees in [&mut a, &mut b] {
        trees.get_mut("meta").unwrap().retain(|(k, _)| k != b"applied_seq");
    }
    let meta_keys: Vec<String> = a["meta"].iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect();
    for key in ["courier_name:clickpost:1", "alert:wms_credentials", "job:reconcile", "reconcile_watermark"] {
        assert!(meta_keys.iter().any(|k| k == key), "the original has {key}: {meta_keys:?}");
    }
    assert!(a["order_names"].iter().any(|(k, _)| k[0] == 0), "the original has a tombstone");
    for tree in ["orders", "outbox", "shipments", "shipment_index", "tracking", "handovers", "webhook_ids", "listings"]
    {
        assert!(!a[tree].is_empty(), "the original has {tree}");
    }
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "the same trees");
    let shown = |kv: &&(Vec<u8>, Vec<u8>)| format!("{} = {}", kv.0.escape_ascii(), kv.1.escape_ascii());
    for (tree, records) in &a {
        let missing: Vec<_> = records.iter().filter(|r| !b[tree].contains(r)).map(|r| shown(&r)).collect();
        let added: Vec<_> = b[tree].iter().filter(|r| !records.contains(r)).map(|r| shown(&r)).collect();
        let (lost, gained) = (missing.join("\n  "), added.join("\n  "));
        assert!(missing.is_empty() && added.is_empty(), "tree {tree}: lost\n  {lost}\ngained\n  {gained}");
    }
    let bodies = bodies_of(&original);
    assert_eq!(bodies.len(), 8, "six creations, a cancellation, an update");
    assert_eq!(bodies, bodies_of(&copy), "every raw body comes back as it was");
    // The restored calls are listed by when they were queued too.
    let (ok, out, err) = run_cli(&config, &["outbox", "list", "--since", "2000-01-01T00:00:00Z", "--json"]).await;
    assert!(ok, "{err}");
    let restored_calls: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(restored_calls.len(), a["outbox"].len(), "{out}");
    assert!(!restored_calls.is_empty());
    drop(dir);
}
