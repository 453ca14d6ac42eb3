//! JSON logs as an operator's log parser reads them: every line is an object whose `fields` hold
//! one `message` (the event's), so no parser drops a field.

use reqwest::StatusCode;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::helpers::{LogCapture, TestApp};

/// The keys of a JSON object in the order written, repeats included (serde_json's `Value` keeps
/// only the last of a repeated key, which is exactly what hides the problem).
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(serde::Deserialize)]
struct Line {
    fields: Keys,
}

// One thread: the server's tasks run where the test's log subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_webhook_logs_one_message_key_in_json() {
    let (out, _logs) = LogCapture::start("info");
    let t = TestApp::spawn().await;
    let status = t.deliver_raw("orders/create", b"{\"id\": 1}", &[("X-Shopify-Hmac-Sha256", "bad".into())]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    t.stop().await;

    let refused = out.lines_with("webhook refused");
    assert_eq!(refused.len(), 1, "{}", out.text());
    let line: Line = serde_json::from_str(&refused[0]).unwrap();
    let messages = line.fields.0.iter().filter(|k| k.as_str() == "message").count();
    assert_eq!(messages, 1, "one message key: {}", refused[0]);
    // The refusal's own text is still there, under another name.
    assert!(refused[0].contains("invalid or missing X-Shopify-Hmac-Sha256"), "{}", refused[0]);
}
