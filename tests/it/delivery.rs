//! Outbox behaviour against a failing WMS: retries, dead letters, replay.

use channeld::flows::model::{EntryState, OrderStatus};

use crate::helpers::{eventually, fixture_order, order_numbered, LogCapture, Options, TestApp};

#[tokio::test]
async fn three_server_errors_then_success_delivers_once() {
    let t = TestApp::spawn().await;
    t.wms.set(|b| b.fail_next = 3);
    t.deliver("orders/create", &fixture_order(), "c1").await;
    t.drained().await;
    assert_eq!(t.wms.calls_to("POST", "/orders/outward").len(), 4);
    assert_eq!(t.wms.created(), vec!["450789469".to_string()]);
    assert!(t.app.store.outbox_entries().unwrap().is_empty(), "nothing left or dead-lettered");
    t.stop().await;
}

#[tokio::test]
async fn refusal_is_dead_lettered_at_once_and_replayable() {
    let t = TestApp::spawn().await;
    t.wms.set(|b| b.refuse = Some((400, "Invalid pincode for location".into())));
    t.deliver("orders/create", &fixture_order(), "c1").await;
    eventually("a dead letter", || t.app.store.outbox_entries().unwrap().iter().any(|e| e.state == EntryState::Dead))
        .await;
    let dead = t.app.store.outbox_entries().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1, "a refusal is not retried");
    assert!(dead[0].last_error.as_deref().unwrap().contains("Invalid pincode for location"), "{dead:?}");
    assert_eq!(t.wms.calls_to("POST", "/orders/outward").len(), 1);

    // The operator sees it, fixes the WMS side, and replays it.
    let (ok, out, err) = t.cli(&["outbox", "list"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("dead") && out.contains("Invalid pincode"), "{out}");
    t.wms.set(|b| b.refuse = None);
    let (ok, out, err) = t.cli(&["outbox", "retry", "--all-dead"]).await;
    assert!(ok && out.contains("1 call(s) queued again"), "{out}{err}");
    eventually("the replayed creation", || t.wms.created() == vec!["450789469".to_string()]).await;
    t.drained().await;
    assert!(t.app.store.outbox_entries().unwrap().is_empty());
    assert_eq!(t.app.store.order(450789469).unwrap().unwrap().status, OrderStatus::Sent);
    t.stop().await;
}

#[tokio::test]
async fn slow_wms_does_not_slow_acknowledgements() {
    let t = TestApp::spawn().await;
    t.wms.set(|b| b.delay = std::time::Duration::from_secs(3));
    let started = std::time::Instant::now();
    for i in 0..5u64 {
        let status = t.deliver("orders/create", &crate::helpers::order_numbered(1000 + i), &format!("e{i}")).await;
        assert_eq!(status, reqwest::StatusCode::OK);
    }
    // Not a timing assertion on speed: only that acknowledging never waits for the 3 s WMS.
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "acknowledgements waited for the WMS");
    t.stop().await;
}

#[tokio::test]
async fn wms_down_under_steady_load_then_every_order_is_delivered_once() {
    const ORDERS: u64 = 150;
    let t = TestApp::spawn_with(Options { routing: "wms", max_attempts: 1_000, ..Options::default() }).await;
    t.wms.set(|b| b.fail_next = u32::MAX); // down: every call answered 500
    for i in 0..ORDERS {
        let status = t.deliver("orders/create", &order_numbered(5_000 + i), &format!("d{i}")).await;
        assert_eq!(status, reqwest::StatusCode::OK, "acknowledged while the WMS is down");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await; // steady intake through the outage
    }
    assert!(t.wms.created().is_empty());
    assert!(!t.wms.calls_to("POST", "/orders/outward").is_empty(), "deliveries were tried during the outage");

    let mut failed = 0;
    t.wms.set(|b| {
        failed = u32::MAX - b.fail_next;
        b.fail_next = 0;
    });
    eventually("every order at the WMS", || t.wms.created().len() == ORDERS as usize).await;
    t.drained().await;
    assert!(t.app.store.outbox_entries().unwrap().is_empty(), "nothing dead-lettered");
    // Every creation that reached a working WMS was new: none was sent twice.
    let accepted = t.wms.calls_to("POST", "/orders/outward").len() - failed as usize;
    assert_eq!(accepted, ORDERS as usize);
    t.stop().await;
}

#[tokio::test]
async fn a_refused_creation_shows_as_rejected_with_the_wms_message_and_is_sent_again_once_fixed() {
    let t = TestApp::spawn().await;
    t.wms.set(|b| b.refuse = Some((400, "Invalid pincode for location".into())));
    t.deliver("orders/create", &fixture_order(), "c1").await;
    eventually("a dead letter", || t.app.store.outbox_entries().unwrap().iter().any(|e| e.state == EntryState::Dead))
        .await;
    let rec = t.app.store.order(450789469).unwrap().unwrap();
    assert_eq!(rec.status, OrderStatus::Rejected);
    assert!(rec.reasons.iter().any(|r| r.contains("Invalid pincode for location")), "{:?}", rec.reasons);
    let (ok, out, err) = t.cli(&["orders", "list", "--status", "rejected"]).await;
    assert!(ok && out.contains("450789469") && out.contains("Invalid pincode"), "{out}{err}");
    let (ok, out, err) = t.cli(&["orders", "show", "450789469"]).await;
    assert!(ok && out.contains("reason") && out.contains("Invalid pincode for location"), "{out}{err}");
    assert_eq!(t.app.store.order_counts().unwrap().iter().find(|(s, _)| *s == OrderStatus::Rejected).unwrap().1, 1);

    // The merchant fixes the order on Shopify: the update validates it again and its creation
    // goes out once, not stuck behind the dead letter.
    t.wms.set(|b| b.refuse = None);
    let mut fixed = fixture_order();
    fixed["updated_at"] = "2026-11-27T10:00:00Z".into();
    t.deliver("orders/updated", &fixed, "u1").await;
    eventually("the creation sent again", || t.wms.created() == vec!["450789469".to_string()]).await;
    t.drained().await;
    assert!(t.app.store.outbox_entries().unwrap().is_empty(), "no creation left behind");
    assert_eq!(t.wms.calls_to("POST", "/orders/outward").len(), 2);
    assert_eq!(t.app.store.order(450789469).unwrap().unwrap().status, OrderStatus::Sent);
    t.stop().await;
}

#[tokio::test]
async fn the_wms_refusing_our_credentials_pauses_wms_work_raises_an_alert_and_resumes() {
    // The log the operator gets: this (current-thread) test's tasks are the server's.
    let (log, _logs) = LogCapture::start("info");
    let t = TestApp::spawn_with(Options { routing: "wms", ..Options::default() }).await;
    const FAILURES: &str = "channeld_wms_auth_failures_total";
    let failures_before = t.metric(FAILURES).await;
    t.wms.set(|b| b.refuse = Some((401, "bad credentials".into())));
    t.deliver("orders/create", &order_numbered(1), "c1").await;
    let alerted =
        || t.app.store.alerts().unwrap().iter().any(|(name, a)| name == "wms_credentials" && a.summary.contains("401"));
    eventually("the credentials alert", alerted).await;
    // While paused, further orders are not sent at all (not one 401 per queued order).
    for id in 2..=4 {
        t.deliver("orders/create", &order_numbered(id), &format!("c{id}")).await;
    }
    eventually("the paused orders tried", || {
        let entries = t.app.store.outbox_entries().unwrap();
        entries.len() == 4 && entries.iter().all(|e| e.last_error.is_some())
    })
    .await;
    assert_eq!(t.wms.calls_to("POST", "/orders/outward").len(), 1, "one call met the 401; the rest waited");
    assert!(
        t.app.store.outbox_entries().unwrap().iter().all(|e| e.state == EntryState::Pending && e.attempts == 0),
        "a paused call is neither dead-lettered nor counted as an attempt"
    );

    let (_, out, err) = t.cli(&["doctor"]).await;
    assert!(out.contains("the WMS refused channeld's credentials"), "doctor names it: {out}{err}");
    // Logged as an error naming the keys to fix and the WMS's answer, and counted.
    let refused = log.lines_with("the WMS refused channeld's credentials");
    assert!(!refused.is_empty(), "{}", log.text());
    let line: serde_json::Value = serde_json::from_str(&refused[0]).unwrap();
    assert_eq!(line["level"], "ERROR", "{line}");
    let reason = line["fields"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("401") && reason.contains("bad credentials"), "{line}");
    assert!(line["fields"]["message"].as_str().unwrap().contains("wms.auth_username"), "{line}");
    // Other tests share the process's recorder: ours added at least this one.
    assert!(t.metric(FAILURES).await >= failures_before + 1.0, "{FAILURES} counts the refusal");

    // Fixed: after the pause every order goes out and the alert clears.
    t.wms.set(|b| b.refuse = None);
    t.drained().await;
    assert_eq!(t.wms.created().len(), 4);
    assert!(!alerted(), "the alert clears once the WMS takes our calls");
    t.stop().await;
}
