//! Business rules on plain data: no I/O, no clock, no store. Everything here is unit tested on
//! the real fixtures.
//!
//! - [`model`]: the records channeld keeps (order, outbox entry, task).
//! - [`order_map`]: Shopify order → Create Outward Order, skip and validation rules.
//! - [`intake`]: how a webhook (or a re-fetched order) changes an order and what it queues.
//! - [`routing`]: which WMS location an order goes to, from Shopify's fulfillment orders.
//! - [`retry`]: backoff and `Retry-After`.
//! - [`listings`], [`inventory`]: SKU ↔ inventory item mapping, WMS quantities, push batches.
//! - [`seller_cancel`], [`shipment`], [`handover`]: what the WMS's fulfilment calls ask for.
//! - [`returns`]: approved Shopify returns to the WMS, its QC results back to Shopify.
//! - [`tracking`]: courier scans to shipment statuses and Shopify fulfillment events; NDR and RTO.
//! - [`webhooks`], [`scopes`]: the subscriptions and access scopes channeld needs.
//! - [`shopify_order`], [`wms_order`]: the order as Shopify sends it and as the WMS takes it.

pub mod handover;
pub mod intake;
pub mod inventory;
pub mod listings;
pub mod model;
pub mod order_map;
pub mod retry;
pub mod returns;
pub mod routing;
pub mod scopes;
pub mod seller_cancel;
pub mod shipment;
pub mod shopify_order;
pub mod tracking;
pub mod webhooks;
pub mod wms_order;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::{self, Routing};

/// The order rules of `[orders]`, normalised once (lower-cased tags and gateways, a resolved
/// `since`).
#[derive(Debug, Clone)]
pub struct OrderRules {
    /// Orders created before this instant (unix ms) are skipped.
    pub since_ms: i64,
    pub routing: Routing,
    pub default_location: String,
    pub hold_tags: Vec<String>,
    pub sla_attribute: String,
    pub default_sla_hours: u32,
    pub cod_gateways: Vec<String>,
    pub billing_fallback_to_shipping: bool,
    pub skip_test_orders: bool,
}

impl OrderRules {
    pub fn new(cfg: &config::Orders, since_ms: i64) -> Self {
        let lower = |v: &[String]| v.iter().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect();
        Self {
            since_ms,
            routing: cfg.routing,
            default_location: cfg.default_location.trim().to_string(),
            hold_tags: lower(&cfg.hold_tags),
            sla_attribute: cfg.sla_attribute.trim().to_string(),
            default_sla_hours: cfg.default_sla_hours,
            cod_gateways: lower(&cfg.cod_gateways),
            billing_fallback_to_shipping: cfg.billing_fallback_to_shipping,
            skip_test_orders: cfg.skip_test_orders,
        }
    }
}

/// Times go to the WMS as RFC 3339 UTC with milliseconds: `2026-11-27T10:00:00.000Z`.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses the time formats seen in Shopify and Increff payloads; `None` for anything else.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let s = s.strip_suffix("[UTC]").unwrap_or(s);
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Money goes out as a JSON number with two decimals.
pub fn round2(v: f64) -> f64 {
    if v.is_finite() {
        (v * 100.0).round() / 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::flows::shopify_order::ShopifyOrder;

    pub(crate) fn fixture_order() -> ShopifyOrder {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/shopify/order_450789469_get_2025-10.json"))
                .unwrap();
        serde_json::from_value(v["order"].clone()).unwrap()
    }

    pub(crate) fn rules() -> OrderRules {
        let cfg: config::Orders = toml::from_str("").unwrap();
        OrderRules::new(&cfg, 0)
    }

    #[test]
    fn time_formats() {
        let t = parse_time("2020-10-16T20:22:28.000+05:30").unwrap();
        assert_eq!(fmt_time(t), "2020-10-16T14:52:28.000Z");
        assert!(parse_time("2020-10-16T20:22:28Z[UTC]").is_some());
        assert!(parse_time("yesterday").is_none());
        assert_eq!(round2(3.335_000_1), 3.34);
    }
}
