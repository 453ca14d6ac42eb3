//! JSON logs as an operator's log parser reads them: every line is an object whose `fields` hold
//! one `message` (the event's), so no parser drops a field.

use std::sync::{Arc, Mutex};

use channeld::config::LogFormat;
use reqwest::StatusCode;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::helpers::TestApp;

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
    let out = Captured::default();
    let writer = out.clone();
    let filter = channeld::telemetry::log_filter("info").unwrap();
    let _logs = tracing::subscriber::set_default(channeld::telemetry::subscriber(LogFormat::Json, filter, move || {
        writer.clone()
    }));
    let t = TestApp::spawn().await;
    let status = t.deliver_raw("orders/create", b"{\"id\": 1}", &[("X-Shopify-Hmac-Sha256", "bad".into())]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    t.stop().await;

    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let refused: Vec<&str> = text.lines().filter(|l| l.contains("webhook refused")).collect();
    assert_eq!(refused.len(), 1, "{text}");
    let line: Line = serde_json::from_str(refused[0]).unwrap();
    let messages = line.fields.0.iter().filter(|k| k.as_str() == "message").count();
    assert_eq!(messages, 1, "one message key: {}", refused[0]);
    // The refusal's own text is still there, under another name.
    assert!(refused[0].contains("invalid or missing X-Shopify-Hmac-Sha256"), "{}", refused[0]);
}
