//! The admin commands, run as the real binary against a running in-process daemon (over the
//! admin socket) and against a stopped one (opening the store directly).

use channeld::flows::model::OrderStatus;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{eventually, fixture_order, run_cli, TestApp};

#[tokio::test]
async fn rejected_order_is_listed_and_shown_with_every_reason() {
    let t = TestApp::spawn().await;
    let mut o = fixture_order();
    o["shipping_address"] = Value::Null;
    o["line_items"][1]["sku"] = "".into();
    assert_eq!(t.deliver("orders/create", &o, "r1").await, StatusCode::OK);
    let rec = t.app.store.order(450789469).unwrap().unwrap();
    assert_eq!(rec.status, OrderStatus::Rejected);

    let (ok, out, err) = t.cli(&["orders", "list", "--status", "rejected"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("450789469") && out.contains("rejected"), "{out}");
    let (ok, out, _) = t.cli(&["orders", "list", "--status", "rejected", "--json"]).await;
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let reasons = listed[0]["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r.as_str().unwrap().contains("shipping address is missing")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.as_str().unwrap().contains("no SKU")), "{reasons:?}");
    let (ok, out, _) = t.cli(&["orders", "show", "#1001"]).await;
    assert!(ok && out.contains("shipping address is missing") && out.contains("no SKU"), "{out}");

    t.drained().await;
    assert!(t.wms.calls().is_empty(), "a rejected order is never sent");
    t.stop().await;
}

#[tokio::test]
async fn orders_and_outbox_answer_while_serving_and_when_stopped() {
    let t = TestApp::spawn().await;
    t.wms.set(|b| b.fail_next = 1_000);
    t.deliver("orders/create", &fixture_order(), "c1").await;
    let (ok, out, err) = t.cli(&["outbox", "list", "--json"]).await;
    assert!(ok, "{err}");
    let entries: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(entries[0]["order_id"], 450789469);
    assert_eq!(entries[0]["call"], "wms_create");
    let (ok, out, _) = t.cli(&["orders", "list"]).await;
    assert!(ok && out.contains("#1001") && out.contains("queued"), "{out}");

    let config = t.config_path.clone();
    let _dir = t.stop().await;
    // The daemon is gone: the command opens the store itself.
    let (ok, out, err) = run_cli(&config, &["orders", "show", "450789469"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("queued"), "{out}");
}

#[tokio::test]
async fn retry_refetches_a_rejected_order_from_shopify() {
    let t = TestApp::spawn().await;
    let mut broken = fixture_order();
    broken["shipping_address"] = Value::Null;
    t.deliver("orders/create", &broken, "r1").await;
    assert_eq!(t.app.store.order(450789469).unwrap().unwrap().status, OrderStatus::Rejected);
    // Fixed on Shopify since: the GraphQL order has its address.
    let fixed: Value = serde_json::from_str(include_str!("../fixtures/shopify-graphql/order_450789469.json")).unwrap();
    t.shopify.serve_order(fixed).await;
    let (ok, out, err) = t.cli(&["orders", "retry", "450789469"]).await;
    assert!(ok, "{out}{err}");
    eventually("the retried creation", || t.wms.created() == vec!["450789469".to_string()]).await;
    // Retrying a sent order changes nothing.
    t.drained().await;
    let (ok, out, _) = t.cli(&["orders", "retry", "#1001"]).await;
    assert!(ok && out.contains("already at the WMS"), "{out}");
    assert_eq!(t.wms.calls_to("POST", "/orders/outward").len(), 1);
    t.stop().await;
}

#[tokio::test]
async fn export_writes_every_record_while_serving_and_when_stopped() {
    let t = TestApp::spawn().await;
    t.deliver("orders/create", &fixture_order(), "e1").await;
    t.drained().await;
    let live = t.dir().join("live.jsonl");
    let (ok, out, err) = t.cli(&["export", live.to_str().unwrap()]).await;
    assert!(ok, "{out}{err}");
    let text = std::fs::read_to_string(&live).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines
        .iter()
        .any(|l| l["tree"] == "orders" && l["value"]["id"] == 450789469 && l["value"]["status"] == "sent"));
    assert!(lines.iter().any(|l| l["tree"] == "payloads"));
    assert!(lines.iter().any(|l| l["tree"] == "webhook_ids"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&live).unwrap().permissions().mode() & 0o777, 0o600);

    let config = t.config_path.clone();
    let dir = t.stop().await;
    let offline = dir.path().join("offline.jsonl");
    let (ok, out, err) = run_cli(&config, &["export", offline.to_str().unwrap()]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(std::fs::read_to_string(&offline).unwrap().lines().count(), lines.len());
}

#[tokio::test]
async fn lists_come_a_page_at_a_time_with_a_cursor_to_the_next() {
    let t = TestApp::spawn_with(crate::helpers::Options { routing: "wms", ..Default::default() }).await;
    t.wms.set(|b| b.fail_next = 1_000);
    for id in 1..=5 {
        assert_eq!(
            t.deliver("orders/create", &crate::helpers::order_numbered(id), &format!("p{id}")).await,
            StatusCode::OK
        );
    }
    let ids = |out: &str| -> Vec<u64> {
        serde_json::from_str::<Vec<Value>>(out).unwrap().iter().map(|o| o["id"].as_u64().unwrap()).collect()
    };
    let (ok, out, err) = t.cli(&["orders", "list", "--limit", "2", "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(ids(&out), vec![5, 4], "newest first");
    let cursor = err.trim().rsplit(' ').next().unwrap().to_string();
    assert!(err.contains("more: continue with --before"), "{err}");
    let (_, out, err) = t.cli(&["orders", "list", "--limit", "2", "--json", "--before", &cursor]).await;
    assert_eq!(ids(&out), vec![3, 2]);
    let cursor = err.trim().rsplit(' ').next().unwrap().to_string();
    let (_, out, err) = t.cli(&["orders", "list", "--limit", "2", "--json", "--before", &cursor]).await;
    assert_eq!((ids(&out), err.contains("more:")), (vec![1], false), "the last page says no more");
    let (ok, _, err) = t.cli(&["orders", "list", "--since", "yesterday"]).await;
    assert!(!ok && err.contains("RFC 3339"), "{err}");

    let (_, out, err) = t.cli(&["outbox", "list", "--limit", "3", "--json"]).await;
    let first: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(first.len(), 3);
    let cursor = err.trim().rsplit(' ').next().unwrap().to_string();
    let (_, out, _) = t.cli(&["outbox", "list", "--limit", "3", "--json", "--after", &cursor]).await;
    let rest: Vec<Value> = serde_json::from_str(&out).unwrap();
    let orders: Vec<u64> = first.iter().chain(&rest).map(|e| e["order_id"].as_u64().unwrap()).collect();
    assert_eq!(orders, vec![1, 2, 3, 4, 5], "every queued call once, in queue order");
    t.stop().await;
}

/// `--since` as the CLI takes it: an RFC 3339 time, to the millisecond.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn listed_ids(out: &str, field: &str) -> Vec<u64> {
    serde_json::from_str::<Vec<Value>>(out).unwrap().iter().map(|o| o[field].as_u64().unwrap()).collect()
}

/// The cursor `more: continue with --after CURSOR` names on stderr, if any.
fn next_cursor(err: &str) -> Option<String> {
    let more = err.lines().find(|l| l.starts_with("more: continue with"))?;
    more.rsplit(' ').next().map(str::to_string)
}

#[tokio::test]
async fn orders_and_outbox_list_since_show_only_what_came_from_then_on() {
    let o = crate::helpers::Options { routing: "wms", max_attempts: 1_000, ..Default::default() };
    let t = TestApp::spawn_with(o).await;
    t.wms.set(|b| b.fail_next = u32::MAX); // every creation stays queued, retried
    let deliver = |id: u64| {
        let t = &t;
        async move { t.deliver("orders/create", &crate::helpers::order_numbered(id), &format!("s{id}")).await }
    };
    assert_eq!(deliver(1).await, StatusCode::OK);
    let first_seen = t.app.store.order(1).unwrap().unwrap().first_seen_ms;
    // Orders 2 and 3 come strictly later than order 1 (to the millisecond the filter reads).
    eventually("the clock past order 1", || chrono::Utc::now().timestamp_millis() > first_seen).await;
    for id in [2, 3] {
        assert_eq!(deliver(id).await, StatusCode::OK);
    }
    let since = rfc3339(first_seen + 1);

    let (ok, out, err) = t.cli(&["orders", "list", "--since", &since, "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(listed_ids(&out, "id"), vec![3, 2], "only the later orders, newest first");
    let (_, out, _) = t.cli(&["orders", "list", "--since", &rfc3339(first_seen), "--json"]).await;
    assert_eq!(listed_ids(&out, "id"), vec![3, 2, 1], "at or after: order 1 itself is in");

    // The outbox by when calls were queued: oldest first, a page at a time.
    let (ok, out, err) = t.cli(&["outbox", "list", "--since", &since, "--limit", "1", "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(listed_ids(&out, "order_id"), vec![2]);
    let cursor = next_cursor(&err).expect("a next page");
    let (_, out, err) =
        t.cli(&["outbox", "list", "--since", &since, "--limit", "1", "--json", "--after", &cursor]).await;
    assert_eq!((listed_ids(&out, "order_id"), next_cursor(&err)), (vec![3], None), "the last page: {err}");
    let (ok, _, err) = t.cli(&["outbox", "list", "--since", "yesterday"]).await;
    assert!(!ok && err.contains("RFC 3339"), "{err}");

    // Delivered calls leave the list.
    t.wms.set(|b| b.fail_next = 0);
    t.drained().await;
    let (_, out, _) = t.cli(&["outbox", "list", "--since", &rfc3339(0), "--json"]).await;
    assert_eq!(listed_ids(&out, "order_id"), Vec::<u64>::new());
    t.stop().await;
}

#[tokio::test]
async fn listings_list_comes_a_page_at_a_time_by_sku() {
    let t = TestApp::spawn().await;
    let listings: Vec<_> = ["SKU-E", "SKU-A", "SKU-C", "SKU-B", "SKU-D"]
        .iter()
        .zip(1u64..)
        .map(|(sku, item_id)| channeld::flows::listings::Listing { sku: sku.to_string(), item_id })
        .collect();
    t.app.store.replace_listings(&listings).unwrap();
    let skus = |out: &str| -> Vec<String> {
        serde_json::from_str::<Vec<Value>>(out)
            .unwrap()
            .iter()
            .map(|l| l["sku"].as_str().unwrap().to_string())
            .collect()
    };
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..3 {
        let mut args = vec!["listings", "list", "--limit", "2", "--json"];
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let (ok, out, err) = t.cli(&args).await;
        assert!(ok, "{err}");
        seen.push(skus(&out));
        after = next_cursor(&err);
    }
    assert_eq!(seen, vec![vec!["SKU-A", "SKU-B"], vec!["SKU-C", "SKU-D"], vec!["SKU-E"]], "by SKU, two a page");
    assert_eq!(after, None, "the last page says no more");
    t.stop().await;
}
