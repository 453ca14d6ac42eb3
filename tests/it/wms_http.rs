//! `/wms/*` at the HTTP level: every answer in the WMS's error format, axum's own rejections
//! included (#16); a store that cannot take a call answers 503, never a 404 or a 200 (#11); failed
//! authentications are logged per address and slowed down (#14); lookups say what they did not find,
//! decided by the service (#33).

use std::process::Stdio;
use std::time::{Duration, Instant};

use channeld::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::crash::free_addr;
use crate::fakes::FakeWms;
use crate::helpers::{fixture_order, wms_request, write_config, Options, TestApp, SHOP};

/// Status and JSON body of a `/wms` call with the inbound credentials and a raw body.
async fn call_raw(
    t: &TestApp,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let resp = t
        .http
        .request(method, t.url(path))
        .header("authUsername", "in-user")
        .header("authPassword", "in-pass")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text:?}"));
    (status, body, headers)
}

fn assert_wms_error(what: &str, status: StatusCode, want: StatusCode, body: &Value) {
    assert_eq!(status, want, "{what}: {body}");
    assert_eq!(body["hasError"], true, "{what}: {body}");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: {body}");
}

#[tokio::test]
async fn axum_rejections_on_wms_paths_answer_in_the_wms_format() {
    let t = TestApp::spawn_with(Options { max_body_bytes: 64 * 1024, ..Options::default() }).await;
    // A query parameter given twice.
    let (status, body, _) =
        call_raw(&t, Method::GET, "/wms/invoice?orderCode=1&orderCode=2&shipmentCode=1", Vec::new()).await;
    assert_wms_error("duplicated query parameter", status, StatusCode::BAD_REQUEST, &body);
    assert!(body["errorMessage"].as_str().unwrap().contains("orderCode"), "{body}");
    // A body over the limit, announced...
    let big = serde_json::to_vec(&json!({ "locationCode": "WH-INV", "pad": "x".repeat(70 * 1024) })).unwrap();
    let (status, body, _) = call_raw(&t, Method::PUT, "/wms/inventory", big).await;
    assert_wms_error("announced oversize body", status, StatusCode::PAYLOAD_TOO_LARGE, &body);
    // ...and sent in chunks, so only reading it finds out.
    let (status, body) = chunked_oversize(&t).await;
    assert_wms_error("chunked oversize body", status, StatusCode::PAYLOAD_TOO_LARGE, &body);
    // A wrong method: 405, and the methods allowed still named.
    let (status, body, headers) = call_raw(&t, Method::DELETE, "/wms/inventory", Vec::new()).await;
    assert_wms_error("wrong method", status, StatusCode::METHOD_NOT_ALLOWED, &body);
    assert!(headers.get("allow").is_some_and(|v| v.to_str().unwrap().contains("PUT")), "{headers:?}");
    // No such route.
    for path in ["/wms/nothing-here", "/wms/orders/nothing/here", "/wms"] {
        let (status, body, _) = call_raw(&t, Method::GET, path, Vec::new()).await;
        assert_wms_error(path, status, StatusCode::NOT_FOUND, &body);
    }
    // Without credentials, an unknown path is refused like any other.
    let resp = t.http.get(t.url("/wms/nothing-here")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.json::<Value>().await.unwrap()["hasError"], true);
    // The handlers' own answers are unchanged.
    let (status, body, _) = call_raw(&t, Method::POST, "/wms/manifest", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({ "hasError": true, "errorMessage": "manifest is not supported for Shopify" }));
    // Outside /wms nothing changes: a webhook's refusal keeps its own shape.
    let status = t.deliver_raw("orders/create", b"{}", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    t.stop().await;
}

/// `PUT /wms/inventory` with a chunked body over `max_body_bytes` (64 KiB here).
/// Get Invoice and Get Shipping Label: "not found" is the service's answer, through the one
/// mapping, and says what is missing: an `orderCode` that is no order id, or a shipment not known.
#[tokio::test]
async fn lookups_of_an_unknown_order_or_shipment_answer_404_saying_what_is_missing() {
    let t = TestApp::spawn().await;
    for (path, says) in [
        ("/wms/invoice?orderCode=%231001&shipmentCode=1", "unknown orderCode \"#1001\""),
        ("/wms/shipping-label?orderCode=abc&shipmentId=1", "unknown orderCode \"abc\""),
        ("/wms/invoice?orderCode=1&shipmentCode=1", "no invoice is known for this shipment yet"),
        ("/wms/shipping-label?shipmentId=1", "no shipping label is available for this shipment yet"),
    ] {
        let (status, body, _) = call_raw(&t, Method::GET, path, Vec::new()).await;
        assert_wms_error(path, status, StatusCode::NOT_FOUND, &body);
        assert_eq!(body["errorMessage"], says, "{path}");
    }
    t.stop().await;
}

async fn chunked_oversize(t: &TestApp) -> (StatusCode, Value) {
    let mut s = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let head = "PUT /wms/inventory HTTP/1.1\r\nHost: channeld\r\nauthUsername: in-user\r\nauthPassword: in-pass\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..5 {
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || s.write_all(&chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    let status: u16 = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("an answer");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    (StatusCode::from_u16(status).unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Every call that writes, against a store that no longer takes records: 503 with a message that
/// says only "try again" — never the 404 an unknown order would get, never a 200.
async fn every_write_answers_503(t: &TestApp, store_dir: &str) {
    let known = "450789469";
    for (method, path, body) in [
        (
            Method::PUT,
            "/wms/inventory",
            json!({ "locationCode": "WH-INV", "inventories": [{ "channelSkuCode": "SKU-0", "quantity": 3 }] }),
        ),
        (
            Method::PUT,
            "/wms/orders/cancel",
            json!({ "orderCode": known, "orderItems": [
            { "channelSkuCode": "IPOD2008BLACK", "orderItemCode": "466157049", "cancelledQuantity": 1 }] }),
        ),
        (Method::PUT, "/wms/orders/cancel", json!({ "orderCode": "999", "orderItems": [] })),
        (Method::POST, "/wms/shipments", json!({ "orderCode": known, "locationCode": "WH-1", "shipmentId": 41 })),
        (Method::POST, "/wms/shipments", json!({ "orderCode": "999", "locationCode": "WH-1", "shipmentId": 42 })),
        (
            Method::POST,
            "/wms/handover",
            json!({ "locationCode": "WH-1", "handoverItems": [{ "orderCode": known, "shipmentCode": "41" }] }),
        ),
    ] {
        let (status, answer) = t.wms_call(method, path, &body).await;
        assert_wms_error(path, status, StatusCode::SERVICE_UNAVAILABLE, &answer);
        let message = answer["errorMessage"].as_str().unwrap();
        assert_eq!(message, "temporarily unable to store the request; try again", "{path}: no internal detail");
        assert!(!message.contains(store_dir), "{path}: {message}");
    }
    let status = t.deliver("orders/create", &crate::helpers::order_numbered(5150), "after-failure").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_closed_store_answers_every_wms_write_with_503() {
    let t = TestApp::spawn().await;
    assert_eq!(t.deliver("orders/create", &fixture_order(), "known").await, StatusCode::OK);
    t.drained().await;
    let store = t.app.store.clone();
    tokio::task::spawn_blocking(move || store.close()).await.unwrap().unwrap();
    every_write_answers_503(&t, &t.dir().display().to_string()).await;
    // (Not stopped through `stop`: its store is already closed.)
}

#[tokio::test]
async fn a_full_disk_answers_every_wms_write_with_503() {
    // The journal refuses records while the disk has less free space than storage.min_free_mb:
    // here more than any disk has.
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = write_config(dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &Options::default());
    let text =
        std::fs::read_to_string(&config).unwrap().replace("[storage]\n", "[storage]\nmin_free_mb = 1000000000\n");
    std::fs::write(&config, text).unwrap();
    let cfg = Config::load(&config).unwrap();
    let store = channeld::store::Store::open_with(&cfg.storage.path, &(&cfg.storage).into()).unwrap();
    let app = channeld::services::open(cfg, store).unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(channeld::server::run(app.clone(), listener, shutdown.clone()));
    let client = reqwest::Client::new();
    let (status, answer) = wms_request(
        &client,
        addr,
        Method::PUT,
        "/wms/inventory",
        &json!({ "locationCode": "WH-INV", "inventories": [{ "channelSkuCode": "SKU-0", "quantity": 3 }] }),
    )
    .await;
    assert_wms_error("inventory on a full disk", status, StatusCode::SERVICE_UNAVAILABLE, &answer);
    assert_eq!(answer["errorMessage"], "temporarily unable to store the request; try again");
    for (path, body) in [
        (
            "/wms/handover",
            json!({ "locationCode": "WH-1", "handoverItems": [{ "orderCode": "1", "shipmentCode": "1" }] }),
        ),
        ("/wms/shipments", json!({ "orderCode": "1", "locationCode": "WH-1", "shipmentId": 1 })),
    ] {
        let (status, answer) = wms_request(&client, addr, Method::POST, path, &body).await;
        assert_wms_error(path, status, StatusCode::SERVICE_UNAVAILABLE, &answer);
    }
    let ready = client.get(format!("http://{addr}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn repeated_authentication_failures_are_slowed_down_but_successful_calls_are_not() {
    let o = Options { auth_failure_delay_ms: 400, auth_failure_max_delay_ms: 1600, ..Options::default() };
    let t = TestApp::spawn_with(o).await;
    // The n-th failure in a row is held back at least 0, 400, 800, 1600, 1600 ms.
    for least in [0u64, 400, 800, 1600, 1600] {
        let started = Instant::now();
        let resp = wrong_credentials(&t.http, t.addr).await;
        let took = started.elapsed();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.json::<Value>().await.unwrap()["hasError"], true);
        assert!(took >= Duration::from_millis(least), "held back {took:?}, at least {least} ms expected");
    }
    // The right credentials from the same address are not held back: well under the 1.6 s a
    // failure now waits.
    let started = Instant::now();
    let body = json!({ "locationCode": "ELSEWHERE", "inventories": [] });
    let (status, _) = t.wms_call(Method::PUT, "/wms/inventory", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(1600), "took {:?}", started.elapsed());
    t.stop().await;
}

async fn wrong_credentials(client: &reqwest::Client, addr: std::net::SocketAddr) -> reqwest::Response {
    let url = format!("http://{addr}/wms/inventory");
    client.put(url).header("authUsername", "in-user").header("authPassword", "guess").send().await.unwrap()
}

/// The real binary's JSON log (its own process: what it logs does not depend on other tests).
#[tokio::test]
async fn refused_authentications_are_logged_with_the_peer_at_most_once_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let addr = free_addr();
    let o = Options { log_format: "json", ..Options::default() };
    let config = write_config(dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &o);
    let daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_channeld"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    eventually_ready(&client, addr).await;
    for _ in 0..5 {
        assert_eq!(wrong_credentials(&client, addr).await.status(), StatusCode::UNAUTHORIZED);
    }
    let pid = daemon.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = daemon.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("WMS call refused")))
        .collect();
    assert_eq!(lines.len(), 1, "one line a minute per address, not one per refusal: {log}");
    assert_eq!(lines[0]["fields"]["peer"], "127.0.0.1", "{}", lines[0]);
    assert_eq!(lines[0]["fields"]["path"], "/wms/inventory", "{}", lines[0]);
    assert!(!log.contains("guess"), "never the password tried");
}

async fn eventually_ready(client: &reqwest::Client, addr: std::net::SocketAddr) {
    for _ in 0..500 {
        if client.get(format!("http://{addr}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("channeld did not become ready");
}

#[tokio::test]
async fn a_webhook_path_is_unaffected_by_the_wms_format() {
    let t = TestApp::spawn().await;
    let resp = t
        .http
        .delete(t.url("/shopify/api/push/orders"))
        .header("X-Shopify-Shop-Domain", format!("{SHOP}.myshopify.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.text().await.unwrap().is_empty());
    t.stop().await;
}
