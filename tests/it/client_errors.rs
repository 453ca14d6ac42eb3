//! What the outbound clients' errors may say: never a credential. Clickpost's API key rides in
//! the query string, and reqwest writes the URL into its error text; any party may echo a
//! credential back in an error body.

use channeld::config;
use channeld::courier::clickpost::ClickpostClient;
use channeld::remote::CallError;
use channeld::wms::client::WmsClient;
use serde_json::json;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

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
