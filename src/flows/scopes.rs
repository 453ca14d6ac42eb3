//! The Shopify access scopes channeld needs (CONTRACT.md §7), and which are missing.

/// (scope, the flow that needs it).
pub const REQUIRED: [(&str, &str); 19] = [
    ("write_assigned_fulfillment_orders", "fulfilment"),
    ("read_assigned_fulfillment_orders", "fulfilment"),
    ("write_fulfillments", "fulfilment"),
    ("read_fulfillments", "fulfilment"),
    ("write_merchant_managed_fulfillment_orders", "fulfilment"),
    ("read_merchant_managed_fulfillment_orders", "fulfilment (order routing)"),
    ("write_shipping", "fulfilment"),
    ("read_shipping", "fulfilment"),
    ("write_third_party_fulfillment_orders", "fulfilment"),
    ("read_third_party_fulfillment_orders", "fulfilment"),
    ("write_orders", "orders (cancel, archive)"),
    ("read_orders", "orders (webhooks, reconciliation)"),
    ("write_order_edits", "orders (seller cancellation of some units)"),
    ("read_order_edits", "orders (seller cancellation of some units)"),
    ("read_customers", "orders (addresses)"),
    ("write_inventory", "inventory (push)"),
    ("read_inventory", "inventory (listings)"),
    ("read_locations", "inventory and routing (locations)"),
    ("read_products", "inventory (listings discover)"),
];

/// The scopes returns need besides those (CONTRACT.md §9.9), only with `returns.enabled`.
pub const RETURNS: [(&str, &str); 2] = [
    ("write_returns", "returns (returnProcess, returnClose)"),
    ("read_returns", "returns (return webhooks, reading returns)"),
];

/// The required scopes not granted, each with its flow (with `returns`, theirs too). A `write_*`
/// scope implies its `read_*`.
pub fn missing(granted: &[String], returns: bool) -> Vec<(&'static str, &'static str)> {
    let has = |scope: &str| {
        granted.iter().any(|g| g == scope)
            || scope.strip_prefix("read_").is_some_and(|rest| granted.iter().any(|g| *g == format!("write_{rest}")))
    };
    let returns = RETURNS.iter().filter(|_| returns);
    REQUIRED.iter().chain(returns).copied().filter(|(scope, _)| !has(scope)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_implies_read_and_missing_ones_are_named() {
        let mut granted: Vec<String> = REQUIRED.iter().map(|(s, _)| s.to_string()).collect();
        assert!(missing(&granted, false).is_empty());
        granted.retain(|s| s != "read_orders" && s != "write_inventory" && s != "read_inventory");
        let m = missing(&granted, false);
        // read_orders is implied by write_orders; read_inventory is not implied any more.
        assert_eq!(m, vec![("write_inventory", "inventory (push)"), ("read_inventory", "inventory (listings)")]);
        granted.push("write_inventory".into());
        let m = missing(&granted, true);
        assert_eq!(m.iter().map(|(s, _)| *s).collect::<Vec<_>>(), ["write_returns", "read_returns"], "returns on");
    }

    #[test]
    fn the_fixture_grant_misses_most() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/shopify/access_scopes_2025-10.json")).unwrap();
        let granted: Vec<String> = v["response"]["access_scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["handle"].as_str().unwrap().to_string())
            .collect();
        let m = missing(&granted, false);
        assert!(m.iter().all(|(s, _)| *s != "read_orders" && *s != "read_products"));
        assert!(m.iter().any(|(s, _)| *s == "write_inventory"));
    }
}
