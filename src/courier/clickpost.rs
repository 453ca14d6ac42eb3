//! Clickpost: create-order v3 (with its in-process polling) and the shipping-label fetch.
//!
//! Clickpost answers HTTP 200 and puts the outcome in `meta.status`: 200 booked; 323 "already
//! placed" (a repeat of our reference number: booked, with the existing waybill, but naming no
//! courier: the order is then looked up by reference number, whose answer carries the courier
//! partner's id); 102/202 "in process" (poll by reference number); 322/329 transient; anything
//! else a refusal whose `meta.message` goes back to the WMS. The API key travels in the query string: errors never
//! carry it (URLs are stripped from transport errors, and the key is scrubbed from every message).

use std::time::Duration;

use serde_json::Value;

use super::send as courier_send;
use crate::config;
use crate::remote::CallError;

/// How often and how long an "in process" booking is polled before the caller retries later.
const POLL_EVERY: Duration = Duration::from_secs(2);
const POLLS: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub waybill: String,
    /// The courier's name, when Clickpost gave it (a new booking does; 323 and lookups do not).
    pub courier: String,
    /// Clickpost's id of the courier partner (`courier_partner_id`, or `courier_partner` in a
    /// lookup), when given.
    pub courier_id: Option<u64>,
    pub label_url: String,
}

impl Booking {
    /// This booking with what it lacks taken from `other` (the same booking as a lookup shows it).
    fn completed_by(self, other: Booking) -> Booking {
        let or = |a: String, b: String| if a.is_empty() { b } else { a };
        Booking {
            waybill: or(self.waybill, other.waybill),
            courier: or(self.courier, other.courier),
            courier_id: self.courier_id.or(other.courier_id),
            label_url: or(self.label_url, other.label_url),
        }
    }
}

#[derive(Clone)]
pub struct ClickpostClient {
    http: reqwest::Client,
    base: String,
    username: String,
    key: config::Secret,
}

impl ClickpostClient {
    pub fn new(cfg: &config::Clickpost) -> anyhow::Result<Self> {
        let http = crate::remote::http_client(30)?;
        Ok(Self {
            http,
            base: cfg.base_url.trim_end_matches('/').to_string(),
            username: cfg.username.clone(),
            key: cfg.api_key.clone(),
        })
    }

    /// Books a shipment; `reference` is the request's `reference_number`.
    pub async fn create_order(&self, body: &Value, reference: &str) -> Result<Booking, CallError> {
        let url = format!("{}/api/v3/create-order/", self.base);
        let query = [("username", self.username.as_str()), ("key", self.key.expose())];
        let answer = self.send(self.http.post(url).query(&query).json(body)).await?;
        match status(&answer) {
            102 | 202 => self.poll(reference).await,
            323 => {
                let placed = booking(&answer)?;
                if !placed.courier.is_empty() {
                    return Ok(placed);
                }
                // "Already placed" names no courier: the order as Clickpost holds it does. Without
                // it the booking still stands (the caller may know the courier otherwise).
                match self.lookup(reference).await.and_then(|answer| booking(&answer)) {
                    Ok(found) => Ok(placed.completed_by(found)),
                    Err(e) => {
                        tracing::warn!(reference, error = %e, "Clickpost: could not look up an order already placed");
                        Ok(placed)
                    }
                }
            }
            _ => booking(&answer),
        }
    }

    /// Asks for a booking by reference number until it is no longer in process.
    async fn poll(&self, reference: &str) -> Result<Booking, CallError> {
        for _ in 0..POLLS {
            tokio::time::sleep(POLL_EVERY).await;
            let answer = self.lookup(reference).await?;
            if !matches!(status(&answer), 102 | 202) {
                return booking(&answer);
            }
        }
        Err(CallError::transient(format!("Clickpost is still processing booking {reference}")))
    }

    /// The order Clickpost holds under this reference number (`GET /api/v3/create-order/`).
    async fn lookup(&self, reference: &str) -> Result<Value, CallError> {
        let url = format!("{}/api/v3/create-order/", self.base);
        let query = [("key", self.key.expose()), ("reference_number", reference)];
        self.send(self.http.get(url).query(&query)).await
    }

    /// The label of a booked waybill (`None` while Clickpost has none).
    pub async fn fetch_label(&self, waybill: &str) -> Result<Option<String>, CallError> {
        let url = format!("{}/api/v1/fetch/shippinglabel/", self.base);
        let answer = self.send(self.http.get(url).query(&[("key", self.key.expose()), ("waybill", waybill)])).await?;
        Ok(answer["result"]["shipping_label"].as_str().filter(|s| !s.is_empty()).map(str::to_string))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, CallError> {
        courier_send("clickpost", "Clickpost", req).await.map_err(|e| e.without_secrets(&[self.key.expose()]))
    }
}

fn status(answer: &Value) -> u64 {
    answer["meta"]["status"].as_u64().unwrap_or(0)
}

fn booking(answer: &Value) -> Result<Booking, CallError> {
    let message = answer["meta"]["message"].as_str().unwrap_or("no message").to_string();
    match status(answer) {
        200 | 323 => {
            let r = &answer["result"];
            let text = |v: &Value| {
                v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string())).unwrap_or_default()
            };
            let waybill = text(&r["waybill"]);
            if waybill.is_empty() {
                return Err(CallError::transient(format!("Clickpost booked without a waybill yet: {message}")));
            }
            let id = |v: &Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            let courier_id = id(&r["courier_partner_id"]).or_else(|| id(&r["courier_partner"]));
            Ok(Booking { waybill, courier: text(&r["courier_name"]), courier_id, label_url: text(&r["label"]) })
        }
        322 | 329 => Err(CallError::transient(format!("Clickpost: {message}"))),
        code => Err(CallError::Refused { message: format!("Clickpost refused the booking ({code}): {message}") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/clickpost/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn outcomes_from_meta_status() {
        let ok = booking(&fixture("create_order_v3_response_success.json")).unwrap();
        assert_eq!(
            ok,
            Booking {
                waybill: "785578015860".into(),
                courier: "Fedex".into(),
                courier_id: Some(1),
                label_url: "https://pyck-res-bucket.s3.amazonaws.com:443/fedex/2017-02-11/785578015860.pdf".into()
            }
        );
        let refused = booking(&fixture("create_order_319_courier_error.json")).unwrap_err();
        assert!(
            matches!(refused, CallError::Refused { ref message } if message.contains("ConfigurationError")),
            "{refused:?}"
        );
        let mut again = fixture("create_order_v3_response_success.json");
        again["meta"]["status"] = 323.into();
        assert_eq!(booking(&again).unwrap().waybill, "785578015860");
        again["meta"]["status"] = 329.into();
        assert!(matches!(booking(&again), Err(CallError::Transient { .. })));
    }

    #[test]
    fn an_already_placed_booking_is_completed_by_the_lookup() {
        // 323 names no courier; the lookup by reference number names its courier partner.
        let placed = Booking {
            waybill: "8505644567".into(),
            courier: String::new(),
            courier_id: None,
            label_url: String::new(),
        };
        let found = booking(&fixture("create_order_get_by_reference_number_response.json")).unwrap();
        assert_eq!((found.courier_id, found.courier.as_str()), (Some(1), ""));
        let done = placed.completed_by(found);
        assert_eq!(done.waybill, "8505644567");
        assert_eq!(done.courier_id, Some(1));
        assert_eq!(done.label_url, "https://pyck-res-bucket.s3.amazonaws.com:443/FEDEX/2019-03-31/8505644567.pdf");
    }
}
