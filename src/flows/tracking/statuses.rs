//! The couriers' status codes: what each means for a shipment ([`ShipmentStatus`]), and which
//! Clickpost codes become which Shopify `FulfillmentEventStatus` (CONTRACT.md §10.3).
//!
//! Sources (README "Tracking" has the tables):
//! - Clickpost: "Clickpost status code" (docs.clickpost.ai/docs/tracking-status-codes, and its
//!   source, the Clickpost/slate repository's `_status.md`): codes unified across courier partners.
//! - Shiprocket: the shipment-status id space (`shipment_status_id`, Track-by-AWB's
//!   `shipment_status`, scans' `sr-status`). Shiprocket's API documentation lists it under
//!   "Tracking → Shipment Status Codes", whose rows did not survive in the copies available here;
//!   the ids used are the ones Shiprocket's own examples confirm (18 In Transit, 7 Delivered,
//!   17 Out For Delivery, 42 Picked Up, 6 Shipped, 38 Reached at Destination Hub, 19 Out For Pickup,
//!   5 Manifest Generated, 1 AWB Assigned, 3 Pickup Generated), the contract's 9 (RTO initiated)
//!   and 10 (RTO delivered), and for the rest the table as integrations that copy it agree on.
//!   Unknown ids whose `shipment_status` begins with "RTO" are taken as RTO, as §10.3 says.

use super::events::Courier;
use super::ShipmentStatus;

/// What a courier status code means for the shipment; `None` for one channeld does not follow
/// (a cancellation, an exchange or return leg, an expiry).
pub fn shipment_status(courier: Courier, code: u32, description: &str) -> Option<ShipmentStatus> {
    match courier {
        Courier::Clickpost => clickpost(code),
        Courier::Shiprocket => shiprocket(code).or_else(|| rto_by_name(description)),
    }
}

/// Clickpost status codes.
fn clickpost(code: u32) -> Option<ShipmentStatus> {
    use ShipmentStatus::*;
    Some(match code {
        // Order placed, pickup pending / failed, out for pickup, AWB registered.
        1 | 2 | 3 | 25 | 28 => Booked,
        4 => PickedUp,
        // In transit, destination hub in, delayed, contact customer care, held.
        5 | 1004 | 18 | 19 | 20 => InTransit,
        6 => OutForDelivery,
        // Failed delivery; not serviceable.
        7 | 9 => Ndr,
        8 => Delivered,
        // RTO requested, RTO, RTO out for delivery, RTO failed, RTO in transit, RTO contact
        // customer care, RTO delayed.
        11 | 12 | 13 | 15 | 21 | 26 | 27 => Rto,
        14 => RtoDelivered,
        16 => Lost,
        17 => Damaged,
        _ => return None,
    })
}

/// Shiprocket shipment-status ids.
fn shiprocket(id: u32) -> Option<ShipmentStatus> {
    use ShipmentStatus::*;
    Some(match id {
        // AWB assigned, label generated, pickup scheduled / queued, manifest generated, pickup
        // error, pickup rescheduled, out for pickup, pickup exception, pickup booked, shipment booked.
        1 | 2 | 3 | 4 | 5 | 13 | 15 | 19 | 20 | 27 | 52 => Booked,
        // Picked up, handover to courier.
        42 | 51 => PickedUp,
        // Shipped, in transit, delayed, reached destination hub, misrouted, reached warehouse, in
        // flight, the overseas legs.
        6 | 18 | 22 | 38 | 39 | 48 | 50 | 54 | 55 | 56 | 57 => InTransit,
        17 => OutForDelivery,
        // Undelivered.
        21 => Ndr,
        7 => Delivered,
        // RTO initiated, acknowledged, NDR, out for delivery, in transit, lock, reached back at the
        // seller's city.
        9 | 14 | 40 | 41 | 46 | 75 | 78 => Rto,
        10 => RtoDelivered,
        // Lost, untraceable.
        12 | 76 => Lost,
        // Destroyed, damaged.
        24 | 25 => Damaged,
        _ => return None,
    })
}

/// A Shiprocket status whose id is not known, named `RTO …`.
fn rto_by_name(description: &str) -> Option<ShipmentStatus> {
    let upper = description.trim().to_ascii_uppercase();
    if !upper.starts_with("RTO") {
        return None;
    }
    Some(if upper.contains("DELIVERED") { ShipmentStatus::RtoDelivered } else { ShipmentStatus::Rto })
}

/// The Shopify fulfillment event of a Clickpost status code (§10.3), with its message when it has
/// one of its own (the NDR reason is the caller's); `None`: nothing on Shopify.
pub fn shopify_event(code: u32) -> Option<(&'static str, Option<&'static str>)> {
    Some(match code {
        4 => ("CARRIER_PICKED_UP", None),
        5 | 1004 => ("IN_TRANSIT", None),
        6 => ("OUT_FOR_DELIVERY", None),
        7 | 9 => ("ATTEMPTED_DELIVERY", None),
        18 | 20 => ("DELAYED", None),
        8 => ("DELIVERED", None),
        11 | 12 | 21 => ("FAILURE", Some("returning to origin")),
        16 => ("FAILURE", Some("lost")),
        17 => ("FAILURE", Some("damaged")),
        _ => return None,
    })
}

/// Clickpost's NDR reasons by `ndr_status_code` ("NDR Status Codes", Clickpost/slate `_track.md`):
/// a fixed list, so a reason from it can label a metric.
pub fn ndr_reason(code: u32) -> Option<&'static str> {
    const REASONS: [&str; 12] = [
        "Unknown Exception",
        "Customer Unavailable",
        "Rejected by Customer",
        "Delivery Rescheduled",
        "No Attempt",
        "Customer Unreachable",
        "Address Issue",
        "Payment Issue",
        "Out Of Delivery Area",
        "Order Already Cancelled",
        "Self Collect",
        "Shipment Seized By Customer",
    ];
    REASONS.get(code as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ShipmentStatus::*;

    #[test]
    fn clickpost_codes_follow_the_contract_s_table() {
        let cp = |c| shipment_status(Courier::Clickpost, c, "");
        assert_eq!(
            [4, 5, 1004, 6, 9, 7, 8].map(cp),
            [PickedUp, InTransit, InTransit, OutForDelivery, Ndr, Ndr, Delivered].map(Some)
        );
        assert_eq!([11, 12, 21, 14, 16, 17].map(cp), [Rto, Rto, Rto, RtoDelivered, Lost, Damaged].map(Some));
        assert_eq!([10, 23, 30, 101].map(cp), [None; 4], "cancellations, expiries, exchanges, returns");
        assert_eq!(shopify_event(9), Some(("ATTEMPTED_DELIVERY", None)));
        assert_eq!(shopify_event(21), Some(("FAILURE", Some("returning to origin"))));
        assert_eq!(shopify_event(14), None, "RTO delivered: nothing on Shopify");
        assert_eq!(
            (ndr_reason(1), ndr_reason(11), ndr_reason(12)),
            (Some("Customer Unavailable"), Some("Shipment Seized By Customer"), None)
        );
    }

    #[test]
    fn shiprocket_ids_are_the_shipment_status_space_and_rto_is_also_known_by_name() {
        let sr = |c, d| shipment_status(Courier::Shiprocket, c, d);
        assert_eq!(sr(18, "IN TRANSIT"), Some(InTransit));
        assert_eq!(
            (sr(9, ""), sr(10, ""), sr(78, ""), sr(21, "")),
            (Some(Rto), Some(RtoDelivered), Some(Rto), Some(Ndr))
        );
        assert_eq!((sr(7, ""), sr(17, ""), sr(42, "")), (Some(Delivered), Some(OutForDelivery), Some(PickedUp)));
        assert_eq!(sr(99, "RTO Something New"), Some(Rto));
        assert_eq!(sr(98, "rto delivered"), Some(RtoDelivered));
        assert_eq!(sr(8, "CANCELED"), None);
    }
}
