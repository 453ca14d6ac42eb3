//! What the outbound clients' errors may say: never a credential. Clickpost's API key rides in
//! the query string, and reqwest writes the URL into its error text; any party may echo a
//! credential back in an error body. And what the daemon passes on of such an error: nothing of
//! its text to the WMS, nothing of the key to its log.

use std::process::Stdio;
use std::time::Duration;

use channeld::config;
use channeld::courier::clickpost::ClickpostClient;
use channeld::remote::CallError;
use channeld::wms::client::WmsClient;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::AsyncReadExt;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::crash::{free_addr, post_order, start_with_logs};
use crate::fakes::FakeWms;
use crate::helpers::{eventually, wms_request, write_config, Options};
use crate::shopify_admin_fake::AdminShopify;

const KEY: &str = "cp-live-key-4f1d9c";
const WMS_PASSWORD: &str = "wms-pass-8e2b71";

/// A port on 127.0.0.1 that nothing listens on: bound, read, and closed again.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn clickpost(base_url: &str) -> ClickpostClient {
    let cfg: config::Clickpost =
        toml::from_str(&format!("username = \"cp-user\"\napi_key = \"{KEY}\"\nbase_url = \"{base_url}\"")).unwrap();
    ClickpostClient::new(&cfg).unwrap()
}

fn assert_clean(err: &CallError, secret: &str) {
    let text = format!("{err} / {err:?}");
    assert!(!text.contains(secret), "the error carries the credential: {text}");
}

#[tokio::test]
async fn a_clickpost_connection_error_never_carries_the_api_key() {
    let client = clickpost(&format!("http://127.0.0.1:{}", closed_port()));
    let err = client.create_order(&json!({ "shipment_details": {} }), "450789469-s1").await.unwrap_err();
    assert!(matches!(err, CallError::Transient { .. }), "{err:?}");
    assert!(err.to_string().contains("could not be reached"), "{err}");
    assert_clean(&err, KEY);
    let err = client.fetch_label("WB-1").await.unwrap_err();
    assert!(matches!(err, CallError::Transient { .. }), "{err:?}");
    assert_clean(&err, KEY);
}

#[tokio::test]
async fn a_clickpost_answer_echoing_the_api_key_is_scrubbed() {
    let server = MockServer::start().await;
    let echo = format!("{{\"message\": \"invalid key {KEY} for /api/v3/create-order/?key={KEY}\"}}");
    Mock::given(any()).respond_with(ResponseTemplate::new(403).set_body_string(echo)).mount(&server).await;
    let err = clickpost(&server.uri()).create_order(&json!({}), "450789469-s1").await.unwrap_err();
    assert!(err.to_string().contains("invalid key"), "{err}");
    assert_clean(&err, KEY);
}

#[tokio::test]
async fn a_wms_answer_echoing_the_password_is_scrubbed() {
    let server = MockServer::start().await;
    let echo = format!("{{\"code\": \"BAD_DATA\", \"message\": \"authPassword {WMS_PASSWORD} is wrong\"}}");
    Mock::given(any()).respond_with(ResponseTemplate::new(400).set_body_string(echo)).mount(&server).await;
    let cfg: config::Wms = toml::from_str(&format!(
        "base_url = \"{}\"\nauth_username = \"u\"\nauth_password = \"{WMS_PASSWORD}\"",
        server.uri()
    ))
    .unwrap();
    let err = WmsClient::new(&cfg).unwrap().update_order("1", "{}").await.unwrap_err();
    assert!(err.to_string().contains("is wrong"), "{err}");
    assert_clean(&err, WMS_PASSWORD);
}

#[tokio::test]
async fn a_wms_connection_error_names_no_credential() {
    let cfg: config::Wms = toml::from_str(&format!(
        "base_url = \"http://127.0.0.1:{}\"\nauth_username = \"u\"\nauth_password = \"{WMS_PASSWORD}\"",
        closed_port()
    ))
    .unwrap();
    let err = WmsClient::new(&cfg).unwrap().update_order("1", "{}").await.unwrap_err();
    assert!(matches!(err, CallError::Transient { .. }), "{err:?}");
    assert_clean(&err, WMS_PASSWORD);
}

/// The path end to end, with the real binary: a pack call whose Clickpost booking meets a
/// real connection error (a closed port) is answered 503 with a fixed text, and neither that answer
/// nor anything the daemon logs (JSON, at debug) carries the key.
#[tokio::test]
async fn a_pack_call_meeting_a_clickpost_connection_error_answers_503_and_no_log_line_has_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (wms, shop) = (FakeWms::start().await, AdminShopify::start().await);
    let (addr, courier_port) = (free_addr(), closed_port());
    let o = Options {
        routing: "wms",
        shopify_url: Some(shop.url()),
        courier_url: Some(format!("http://127.0.0.1:{courier_port}")),
        clickpost_api_key: KEY,
        log_level: "debug",
        log_format: "json",
        ..Options::default()
    };
    let config = write_config(dir.path(), addr, &wms.url(), &shop.url(), &o);
    let mut daemon = start_with_logs(&config, addr, Stdio::piped()).await;
    // Read the log as it comes, so the daemon never blocks on a full pipe.
    let mut stderr = daemon.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.map(|_| text)
    });
    let client = reqwest::Client::new();
    assert!(post_order(&client, addr, 4343).await);
    eventually("the order at the WMS", || !wms.created().is_empty()).await;

    let pack = json!({ "orderCode": "4343", "locationCode": "WH-1", "shipmentId": 777 });
    let (status, body) = wms_request(&client, addr, Method::POST, "/wms/shipments", &pack).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["hasError"], true);
    // A fixed text: nothing of the error itself (its address, its cause), let alone the key.
    assert_eq!(body["errorMessage"], "the courier could not book it now; try again", "{body}");
    assert!(!body.to_string().contains(KEY) && !body.to_string().contains(&courier_port.to_string()), "{body}");

    let pid = daemon.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exited = tokio::time::timeout(Duration::from_secs(15), daemon.wait()).await.expect("channeld stops").unwrap();
    assert!(exited.success(), "{exited:?}");
    let log = log.await.unwrap().unwrap();
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("could not book the shipment now")).collect();
    assert_eq!(failed.len(), 1, "the failed booking is logged once, for the operator: {log}");
    assert!(failed[0].contains("could not be reached"), "with what went wrong: {}", failed[0]);
    assert!(!log.contains(KEY), "the log carries the Clickpost key: {log}");
}
