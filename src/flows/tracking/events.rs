//! The couriers' status webhooks (CONTRACT.md §10.2), read into one shape: Clickpost's status
//! webhook (`waybill`, `clickpost_status_code`, `timestamp`, `additional.latest_status`, the NDR
//! reason) and Shiprocket's tracking webhook (`awb`, `shipment_status_id`, `current_timestamp`,
//! `scans[]`). Read leniently: numbers may come as text and text as numbers; only a body that is
//! not JSON, or names no waybill, is refused.
//!
//! Timestamps without a zone are India Standard Time (+05:30): Clickpost's `2016-07-12T17:12:36.710`
//! and `2018-03-16 18:56:00`, Shiprocket's `23 05 2023 11:43:52` (day month year); those with one
//! (`2017-08-02T13:23:02Z`, `2018-08-06T14:48:57.002000Z`) are taken as they say.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use serde_json::Value;

use crate::lenient::{value_count, value_text};

/// The aggregator a webhook comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Courier {
    Clickpost,
    Shiprocket,
}

impl Courier {
    pub const ALL: [Courier; 2] = [Courier::Clickpost, Courier::Shiprocket];

    /// As shipments name their provider (`ShipmentRecord::provider`), and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Courier::Clickpost => "clickpost",
            Courier::Shiprocket => "shiprocket",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Reads a webhook body of this courier.
    pub fn read(self, body: &[u8]) -> Result<CourierEvent, &'static str> {
        match self {
            Courier::Clickpost => read_clickpost(body),
            Courier::Shiprocket => read_shiprocket(body),
        }
    }
}

/// One status the courier reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Clickpost's `clickpost_status_code`, Shiprocket's `shipment_status_id` (0: none given).
    pub code: u32,
    pub description: String,
    /// The courier's own words.
    pub status: String,
    pub location: String,
    /// As sent.
    pub timestamp: String,
    /// `timestamp` as an instant (unix ms), when it could be read.
    pub at_ms: Option<i64>,
}

impl Scan {
    /// Its de-duplication key within a shipment: the status code and the time it happened (the
    /// instant when readable, so two spellings of one time are one event).
    pub fn key(&self) -> String {
        match self.at_ms {
            Some(ms) => format!("{}@{ms}", self.code),
            None => format!("{}@{}", self.code, self.timestamp.trim()),
        }
    }
}

/// A courier's status webhook, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourierEvent {
    pub courier: Courier,
    pub waybill: String,
    /// The status this webhook reports.
    pub scan: Scan,
    /// Clickpost's `additional.latest_status`: the shipment's newest status when the webhook was
    /// sent (webhooks arrive out of order; this one drives the state).
    pub latest: Option<Scan>,
    /// The failed delivery's reason (Clickpost's `additional.ndr_status_description`; Shiprocket:
    /// the last scan's activity).
    pub ndr_reason: String,
    /// Clickpost's `additional.ndr_status_code` (Clickpost asks to map NDRs by it, not by the text).
    pub ndr_code: Option<u32>,
}

fn text(v: &Value, key: &str) -> String {
    value_text(&v[key]).trim().to_string()
}

/// Clickpost's status webhook.
fn read_clickpost(body: &[u8]) -> Result<CourierEvent, &'static str> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON")?;
    let waybill = text(&v, "waybill");
    if waybill.is_empty() {
        return Err("no waybill");
    }
    let scan = clickpost_scan(&v);
    let additional = &v["additional"];
    let latest = additional.get("latest_status").filter(|l| l.is_object()).map(clickpost_scan);
    Ok(CourierEvent {
        courier: Courier::Clickpost,
        waybill,
        scan,
        latest: latest.filter(|l| l.code != 0),
        ndr_reason: text(additional, "ndr_status_description"),
        ndr_code: match &additional["ndr_status_code"] {
            Value::Null => None,
            v => Some(value_count(v)).filter(|_| !text(additional, "ndr_status_code").is_empty()),
        },
    })
}

fn clickpost_scan(v: &Value) -> Scan {
    let timestamp = text(v, "timestamp");
    let (status, remark) = (text(v, "status"), text(v, "remark"));
    Scan {
        code: value_count(&v["clickpost_status_code"]),
        description: text(v, "clickpost_status_description"),
        status: if remark.is_empty() || remark == status { status } else { format!("{remark} ({status})") },
        location: text(v, "location"),
        at_ms: parse_time(&timestamp),
        timestamp,
    }
}

/// Shiprocket's tracking webhook: the shipment-status id space (`shipment_status_id`), not the
/// order-status one (`current_status_id`), whose 9 and 10 mean other things.
fn read_shiprocket(body: &[u8]) -> Result<CourierEvent, &'static str> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON")?;
    let waybill = text(&v, "awb");
    if waybill.is_empty() {
        return Err("no awb");
    }
    let last_scan = v["scans"].as_array().and_then(|s| s.last()).cloned().unwrap_or(Value::Null);
    let timestamp = text(&v, "current_timestamp");
    let description = [text(&v, "shipment_status"), text(&v, "current_status")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let scan = Scan {
        code: value_count(&v["shipment_status_id"]),
        status: text(&v, "current_status"),
        location: text(&last_scan, "location"),
        at_ms: parse_time(&timestamp),
        description,
        timestamp,
    };
    Ok(CourierEvent {
        courier: Courier::Shiprocket,
        waybill,
        scan,
        latest: None,
        ndr_reason: text(&last_scan, "activity"),
        ndr_code: None,
    })
}

/// India Standard Time, in which couriers write times without a zone.
fn ist() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 1800).expect("+05:30 is a valid offset")
}

/// Reads a courier timestamp as an instant (unix ms); `None` for anything else.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%d %m %Y %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .and_then(|t| ist().from_local_datetime(&t).single())
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NDR: &str = include_str!("../../../tests/fixtures/clickpost/tracking_webhook_failed_delivery_ndr.json");
    const OFD: &str = include_str!("../../../tests/fixtures/clickpost/tracking_webhook_out_for_delivery.json");
    const SR: &str = include_str!("../../../tests/fixtures/shiprocket/tracking_webhook_in_transit.json");

    fn utc(ms: i64) -> String {
        crate::flows::fmt_time(DateTime::from_timestamp_millis(ms).unwrap())
    }

    #[test]
    fn every_timestamp_format_the_couriers_send_reads_and_zoneless_ones_are_ist() {
        let cases = [
            ("2017-08-02T13:23:02Z", "2017-08-02T13:23:02.000Z"),
            ("2018-08-06T14:48:57.002000Z", "2018-08-06T14:48:57.002Z"),
            ("2016-07-12T17:12:36.710", "2016-07-12T11:42:36.710Z"),
            ("2018-03-16 18:56:00", "2018-03-16T13:26:00.000Z"),
            ("23 05 2023 11:43:52", "2023-05-23T06:13:52.000Z"),
            ("2023-05-19 11:59:16", "2023-05-19T06:29:16.000Z"),
        ];
        for (given, want) in cases {
            assert_eq!(parse_time(given).map(utc).as_deref(), Some(want), "{given}");
        }
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn clickpost_s_fixtures_read_with_their_latest_status_and_ndr_reason() {
        let e = Courier::Clickpost.read(NDR.as_bytes()).unwrap();
        assert_eq!((e.waybill.as_str(), e.scan.code, e.ndr_reason.as_str()), ("XYZABC", 9, "Customer Unavailable"));
        assert_eq!(e.ndr_code, Some(1));
        assert_eq!(e.scan.location, "Bengaluru_Koramangala_Dc (Karnataka)");
        assert_eq!(e.scan.status, "Failed Delivery (When forward shipment is not accepted by end customer)");
        assert_eq!(e.latest.as_ref().map(Scan::key), Some(e.scan.key()));
        let o = Courier::Clickpost.read(OFD.as_bytes()).unwrap();
        assert_eq!((o.scan.code, o.scan.description.as_str()), (6, "OutForDelivery"));
        assert_eq!(o.scan.at_ms.map(utc).as_deref(), Some("2017-08-02T13:23:02.000Z"));
        assert_eq!(Courier::Clickpost.read(b"{\"waybill\": \"\"}"), Err("no waybill"));
        assert_eq!(Courier::Clickpost.read(b"not json"), Err("body is not JSON"));
        // Numbers as text, and a latest status of nothing, are read too.
        let odd = br#"{"waybill": 77, "clickpost_status_code": "5", "timestamp": "2018-03-16 18:56:00", "additional": {"latest_status": {}}}"#;
        let e = Courier::Clickpost.read(odd).unwrap();
        assert_eq!((e.waybill.as_str(), e.scan.code, e.latest), ("77", 5, None));
    }

    #[test]
    fn shiprocket_s_fixture_reads_in_the_shipment_status_space() {
        let e = Courier::Shiprocket.read(SR.as_bytes()).unwrap();
        assert_eq!(
            (e.waybill.as_str(), e.scan.code),
            ("19041424751540", 18),
            "shipment_status_id, not current_status_id"
        );
        assert_eq!(
            (e.scan.description.as_str(), e.scan.location.as_str()),
            ("IN TRANSIT", "Chomu_SamodRd_D (Rajasthan)")
        );
        assert_eq!(e.scan.at_ms.map(utc).as_deref(), Some("2023-05-23T06:13:52.000Z"));
        assert_eq!(e.latest, None);
        assert_eq!(Courier::Shiprocket.read(b"{}"), Err("no awb"));
    }
}
