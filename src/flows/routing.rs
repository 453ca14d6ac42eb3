//! Routing `shopify`: the WMS location of an order follows the locations Shopify's order routing
//! assigned to its open fulfillment orders (CONTRACT.md §5.1).

/// A fulfillment order as routing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulfillmentOrderView {
    /// Shopify's `FulfillmentOrderStatus` (`OPEN`, `CLOSED`, ...).
    pub status: String,
    /// The assigned location's numeric id; `None` when the location no longer exists.
    pub location_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingDecision {
    /// All open fulfillment orders at one mapped location.
    Single(String),
    /// Several locations: the WMS splits (`locationCode = null`, `isSplitRequired = true`).
    Split,
    /// No open fulfillment order yet: Shopify's routing is still running; ask again later.
    NotYet,
    /// One location that `[[locations]]` does not map: the order is rejected naming it.
    Unmapped(u64),
}

const OPEN: [&str; 4] = ["OPEN", "IN_PROGRESS", "SCHEDULED", "ON_HOLD"];

pub fn decide(fulfillment_orders: &[FulfillmentOrderView], map: impl Fn(u64) -> Option<String>) -> RoutingDecision {
    let mut locations: Vec<Option<u64>> =
        fulfillment_orders.iter().filter(|fo| OPEN.contains(&fo.status.as_str())).map(|fo| fo.location_id).collect();
    locations.sort_unstable();
    locations.dedup();
    match locations.as_slice() {
        [] => RoutingDecision::NotYet,
        [Some(id)] => map(*id).map_or(RoutingDecision::Unmapped(*id), RoutingDecision::Single),
        [None] => RoutingDecision::Unmapped(0),
        _ => RoutingDecision::Split,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fo(status: &str, id: u64) -> FulfillmentOrderView {
        FulfillmentOrderView { status: status.into(), location_id: Some(id) }
    }
    fn map(id: u64) -> Option<String> {
        (id == 1).then(|| "WH-1".to_string())
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(&[fo("OPEN", 1), fo("OPEN", 1)], map), RoutingDecision::Single("WH-1".into()));
        assert_eq!(decide(&[fo("OPEN", 1), fo("OPEN", 2)], map), RoutingDecision::Split);
        assert_eq!(decide(&[fo("OPEN", 2)], map), RoutingDecision::Unmapped(2));
        assert_eq!(decide(&[fo("CLOSED", 2)], map), RoutingDecision::NotYet);
        assert_eq!(decide(&[], map), RoutingDecision::NotYet);
        assert_eq!(decide(&[fo("CLOSED", 2), fo("ON_HOLD", 1)], map), RoutingDecision::Single("WH-1".into()));
    }
}
