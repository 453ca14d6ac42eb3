//! One courier event applied to a shipment (CONTRACT.md §10.2–§10.4).
//!
//! 1. An event whose (status code, timestamp) was taken before is a duplicate: recorded, nothing
//!    else (Clickpost retries until answered 200 and fans one update out to several webhooks).
//! 2. The state follows Clickpost's `latest_status` when the event carries one (webhooks arrive
//!    out of order), else the event itself; an event whose latest status is already applied is
//!    stale.
//! 3. Never backwards: a status of a lower rank, or of the same rank and not newer, is recorded as
//!    stale; a final status (delivered, lost, damaged, RTO delivered) takes nothing more, and an
//!    RTO only its delivery back. Out for delivery ⇄ NDR goes either way for a newer event: a new
//!    attempt after a failed one is forward.
//! 4. Each applied NDR is one failed attempt (the third flags `ndr-repeated`); the first RTO flags
//!    the shipment, and with `rto_to_wms` asks for its return order once.
//! 5. A Shopify fulfillment event each time the mapped Shopify status changes; consecutive events
//!    mapping to the same status make none, except `ATTEMPTED_DELIVERY`, once per attempt, and
//!    `FAILURE` is made once.

use super::events::{Courier, CourierEvent, Scan};
use super::statuses::{self, shipment_status, shopify_event};
use super::{
    flag, FlagEdits, Outcome, ShipmentStatus, ShopifyStep, StepState, TimelineEntry, TrackingRecord, NDR_REPEATED_AFTER,
};

/// What `[tracking]` (and the shipment's courier) allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackingRules {
    /// Plan Shopify fulfillment events: `tracking.shopify_events`, for a shipment whose
    /// fulfillment channeld created (booked through Clickpost).
    pub shopify_events: bool,
    /// `tracking.rto_to_wms` with `returns.enabled`: an RTO sends a return order to the WMS.
    pub rto_to_wms: bool,
}

/// What an event changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub record: TrackingRecord,
    pub outcome: Outcome,
    /// Indexes in `record.shopify` of the fulfillment events planned now (one outbox call each).
    pub new_steps: Vec<u32>,
    /// Flag edits for the shipment's order.
    pub order_flags: FlagEdits,
    /// A failed attempt counted now: its reason as a metric may carry it (Clickpost's list of NDR
    /// reasons, `undelivered` for Shiprocket, else `other`; never the courier's free text).
    pub ndr: Option<&'static str>,
    /// The attempts just reached [`NDR_REPEATED_AFTER`].
    pub ndr_repeated: bool,
    /// The shipment turned RTO now (counted once).
    pub rto: bool,
    /// Its `RETURN_TO_ORIGIN` return order is to be queued now.
    pub rto_to_wms: bool,
}

/// Applies `ev` to the shipment's record (§10.2–§10.4).
pub fn on_event(rec: TrackingRecord, ev: &CourierEvent, rules: &TrackingRules, received_ms: i64) -> Decision {
    let mut d = Decision {
        record: rec,
        outcome: Outcome::Applied,
        new_steps: Vec::new(),
        order_flags: Vec::new(),
        ndr: None,
        ndr_repeated: false,
        rto: false,
        rto_to_wms: false,
    };
    let mut entry = entry_of(ev, received_ms);
    match judge(&d.record, ev, received_ms) {
        Err((outcome, note)) => (entry.outcome, entry.note) = (outcome, note),
        Ok((target, drive)) => {
            if drive != &ev.scan {
                entry.latest_key = Some(drive.key());
                entry.note = format!("the latest status it carries applied: {}", name(drive));
            }
            apply(&mut d, ev, drive, target, rules, received_ms, &mut entry.note);
        }
    }
    d.outcome = entry.outcome;
    d.record.changed_ms = received_ms;
    d.record.record(entry);
    d
}

fn entry_of(ev: &CourierEvent, received_ms: i64) -> TimelineEntry {
    let s = &ev.scan;
    TimelineEntry {
        received_ms,
        code: s.code,
        description: s.description.clone(),
        status: s.status.clone(),
        location: s.location.clone(),
        timestamp: s.timestamp.clone(),
        at_ms: s.at_ms,
        ndr_reason: ev.ndr_reason.clone(),
        outcome: Outcome::Applied,
        note: String::new(),
        key: s.key(),
        latest_key: None,
    }
}

fn name(s: &Scan) -> String {
    format!("{} at {}", super::status_name(s.code, &s.description), s.timestamp)
}

/// Whether the event applies, and then the status it moves to and the scan that drives it; else
/// how it is recorded, and why.
fn judge<'e>(
    rec: &TrackingRecord,
    ev: &'e CourierEvent,
    received_ms: i64,
) -> Result<(ShipmentStatus, &'e Scan), (Outcome, String)> {
    if rec.seen(&ev.scan.key()) {
        return Err((Outcome::Duplicate, "received before".into()));
    }
    let drive = ev.latest.as_ref().unwrap_or(&ev.scan);
    if drive != &ev.scan && rec.seen(&drive.key()) {
        return Err((Outcome::Stale, format!("its latest status ({}) was applied before", name(drive))));
    }
    let Some(target) = shipment_status(ev.courier, drive.code, &drive.description) else {
        return Err((Outcome::Ignored, format!("{} is not a status channeld follows", name(drive))));
    };
    let at = drive.at_ms.unwrap_or(received_ms);
    allowed(rec.status, rec.status_at_ms, target, at).map_err(|why| (Outcome::Stale, why))?;
    Ok((target, drive))
}

/// Whether the shipment may move from `from` (as of `from_at`) to `to` (as of `at`).
fn allowed(from: ShipmentStatus, from_at: Option<i64>, to: ShipmentStatus, at: i64) -> Result<(), String> {
    use ShipmentStatus::*;
    let newer = from_at.is_none_or(|t| at > t);
    match (from, to) {
        _ if from == Rto && to == RtoDelivered => Ok(()),
        _ if from == to && newer => Ok(()),
        _ if from == to => Err(format!("not newer than the {} already applied", from.as_str())),
        (Rto, _) => Err(format!("the shipment is returning to origin: {} would move it back", to.as_str())),
        _ if from.is_final() => Err(format!("the shipment is {}: nothing follows", from.as_str())),
        (OutForDelivery, Ndr) | (Ndr, OutForDelivery) if newer => Ok(()),
        (OutForDelivery, Ndr) | (Ndr, OutForDelivery) => Err(format!("older than the {} applied", from.as_str())),
        _ if to.rank() > from.rank() => Ok(()),
        _ => Err(format!("{} would move the shipment back from {}", to.as_str(), from.as_str())),
    }
}

/// Moves the shipment to `target`, counting an NDR or an RTO, and plans its Shopify event.
fn apply(
    d: &mut Decision,
    ev: &CourierEvent,
    drive: &Scan,
    target: ShipmentStatus,
    rules: &TrackingRules,
    received_ms: i64,
    note: &mut String,
) {
    let rec = &mut d.record;
    let at = drive.at_ms.unwrap_or(received_ms);
    let from = rec.status;
    if from != target {
        let moved = format!("{} → {}", from.as_str(), target.as_str());
        *note = if note.is_empty() { moved } else { format!("{note}; {moved}") };
    }
    rec.status = target;
    rec.status_at_ms = Some(rec.status_at_ms.map_or(at, |t| t.max(at)));
    let reason = ndr_reason(ev, drive);
    if target == ShipmentStatus::Ndr {
        count_ndr(d, &reason);
        d.ndr = Some(ndr_label(ev));
    }
    if matches!(target, ShipmentStatus::Rto | ShipmentStatus::RtoDelivered) {
        mark_rto(d, target, rules);
    }
    if rules.shopify_events && ev.courier == Courier::Clickpost {
        if let Some(step) = plan_step(&mut d.record, drive, at, &reason) {
            d.new_steps.push(step);
        }
    }
}

/// The reason of a failed delivery: Clickpost's NDR description, else the one of its NDR code,
/// else the status's name.
fn ndr_reason(ev: &CourierEvent, drive: &Scan) -> String {
    let by_code = ev.ndr_code.and_then(statuses::ndr_reason).unwrap_or_default();
    let found = [ev.ndr_reason.as_str(), by_code, &drive.description, &drive.status]
        .into_iter()
        .find(|r| !r.trim().is_empty())
        .map(str::to_string);
    found.unwrap_or_else(|| format!("status {}", drive.code))
}

/// An NDR's reason as a metric label (see [`Decision::ndr`]).
fn ndr_label(ev: &CourierEvent) -> &'static str {
    match ev.courier {
        Courier::Shiprocket => "undelivered",
        Courier::Clickpost => ev.ndr_code.and_then(statuses::ndr_reason).unwrap_or("other"),
    }
}

fn count_ndr(d: &mut Decision, reason: &str) {
    let rec = &mut d.record;
    rec.ndr_attempts += 1;
    rec.ndr_reason = reason.to_string();
    rec.flag(flag::NDR);
    let (sid, n) = (rec.shipment_id, rec.ndr_attempts);
    d.order_flags
        .push((format!("ndr: shipment {sid} "), format!("ndr: shipment {sid} failed delivery attempt {n}: {reason}")));
    if n >= NDR_REPEATED_AFTER {
        d.ndr_repeated = !rec.flagged(flag::NDR_REPEATED);
        rec.flag(flag::NDR_REPEATED);
        d.order_flags.push((
            format!("ndr-repeated: shipment {sid} "),
            format!(
                "ndr-repeated: shipment {sid} failed delivery {n} times without a later forward step (last: {reason})"
            ),
        ));
    }
}

fn mark_rto(d: &mut Decision, target: ShipmentStatus, rules: &TrackingRules) {
    let rec = &mut d.record;
    let sid = rec.shipment_id;
    if !rec.flagged(flag::RTO) {
        rec.flag(flag::RTO);
        d.rto = true;
        d.order_flags.push((format!("rto: shipment {sid} "), format!("rto: shipment {sid} is returning to origin")));
    }
    if rules.rto_to_wms && !rec.flagged(flag::RTO_TO_WMS) {
        rec.flag(flag::RTO_TO_WMS);
        d.rto_to_wms = true;
    }
    if target == ShipmentStatus::RtoDelivered && !rec.flagged(flag::RTO_DELIVERED) {
        rec.flag(flag::RTO_DELIVERED);
        d.order_flags.push((
            format!("rto-delivered: shipment {sid} "),
            format!("rto-delivered: shipment {sid} is back at origin"),
        ));
    }
}

/// The Shopify fulfillment event an applied Clickpost status makes, if any (§10.3); returns its
/// index.
fn plan_step(rec: &mut TrackingRecord, drive: &Scan, at_ms: i64, ndr_reason: &str) -> Option<u32> {
    let (status, message) = shopify_event(drive.code)?;
    let repeated = rec.shopify.last().is_some_and(|s| s.status == status);
    let once_only = status == "FAILURE" && rec.shopify.iter().any(|s| s.status == status);
    if once_only || (repeated && status != "ATTEMPTED_DELIVERY") {
        return None;
    }
    let message = if status == "ATTEMPTED_DELIVERY" { ndr_reason } else { message.unwrap_or_default() };
    let happened_at = chrono::DateTime::from_timestamp_millis(at_ms).map(crate::flows::fmt_time).unwrap_or_default();
    rec.shopify.push(ShopifyStep {
        status: status.to_string(),
        happened_at,
        message: message.to_string(),
        city: drive.location.clone(),
        state: StepState::Queued,
    });
    Some(rec.shopify.len() as u32 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFD: &str = include_str!("../../../tests/fixtures/clickpost/tracking_webhook_out_for_delivery.json");
    const NDR: &str = include_str!("../../../tests/fixtures/clickpost/tracking_webhook_failed_delivery_ndr.json");
    const SHOPIFY: TrackingRules = TrackingRules { shopify_events: true, rto_to_wms: true };

    /// The out-for-delivery fixture with another status code and time (its latest status alike).
    fn event(code: u32, timestamp: &str) -> CourierEvent {
        let mut v: serde_json::Value = serde_json::from_str(OFD).unwrap();
        for path in ["/", "/additional/latest_status"] {
            let at = if path == "/" { &mut v } else { v.pointer_mut(path).unwrap() };
            at["clickpost_status_code"] = code.into();
            at["timestamp"] = timestamp.into();
        }
        Courier::Clickpost.read(v.to_string().as_bytes()).unwrap()
    }

    fn run(events: &[CourierEvent]) -> (TrackingRecord, Vec<Decision>) {
        let mut rec = TrackingRecord::new(1, 77, "clickpost", "P0109276342", 0);
        let mut out = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let d = on_event(rec, e, &SHOPIFY, 1_000 + i as i64);
            rec = d.record.clone();
            out.push(d);
        }
        (rec, out)
    }

    fn statuses(rec: &TrackingRecord) -> Vec<(&str, &str)> {
        rec.shopify.iter().map(|s| (s.status.as_str(), s.happened_at.as_str())).collect()
    }

    #[test]
    fn picked_up_in_transit_twice_out_for_delivery_delivered_make_four_shopify_events() {
        let (rec, ds) = run(&[
            event(4, "2017-08-01T09:00:00Z"),
            event(5, "2017-08-01T20:00:00Z"),
            event(5, "2017-08-02T06:00:00Z"),
            event(6, "2017-08-02T13:23:02Z"),
            event(8, "2017-08-02T16:00:00Z"),
        ]);
        assert_eq!(
            statuses(&rec),
            [
                ("CARRIER_PICKED_UP", "2017-08-01T09:00:00.000Z"),
                ("IN_TRANSIT", "2017-08-01T20:00:00.000Z"),
                ("OUT_FOR_DELIVERY", "2017-08-02T13:23:02.000Z"),
                ("DELIVERED", "2017-08-02T16:00:00.000Z"),
            ]
        );
        assert_eq!(rec.shopify[2].city, "VASAI, MUMBAI");
        assert!(ds.iter().all(|d| d.outcome == Outcome::Applied));
        assert_eq!(ds.iter().map(|d| d.new_steps.len()).collect::<Vec<_>>(), [1, 1, 0, 1, 1]);
        assert_eq!(rec.status, ShipmentStatus::Delivered);
    }

    #[test]
    fn repeats_are_duplicates_and_a_step_back_is_stale_and_neither_reaches_shopify() {
        let first =
            [event(4, "2017-08-01T09:00:00Z"), event(6, "2017-08-02T13:23:02Z"), event(8, "2017-08-02T16:00:00Z")];
        let (rec, _) = run(&first);
        let mut rec = rec;
        for e in [first[2].clone(), first[0].clone(), first[1].clone()] {
            let d = on_event(rec, &e, &SHOPIFY, 5_000);
            assert_eq!((d.outcome, d.new_steps.len()), (Outcome::Duplicate, 0));
            rec = d.record;
        }
        let d = on_event(rec, &event(6, "2017-08-02T17:00:00Z"), &SHOPIFY, 6_000);
        assert_eq!((d.outcome, d.new_steps.len(), d.record.status), (Outcome::Stale, 0, ShipmentStatus::Delivered));
        assert!(d.record.timeline.last().unwrap().note.contains("delivered"), "{:?}", d.record.timeline.last());
        assert_eq!(d.record.shopify.len(), 3);
    }

    #[test]
    fn the_latest_status_drives_the_state_and_an_older_event_after_it_is_stale() {
        let mut late = event(5, "2017-08-01T20:00:00Z");
        late.latest = Some(event(6, "2017-08-02T13:23:02Z").scan);
        let (rec, ds) = run(&[late, event(6, "2017-08-02T13:23:02Z"), event(4, "2017-08-01T09:00:00Z")]);
        assert_eq!(rec.status, ShipmentStatus::OutForDelivery);
        assert_eq!(statuses(&rec), [("OUT_FOR_DELIVERY", "2017-08-02T13:23:02.000Z")]);
        assert_eq!(
            ds.iter().map(|d| d.outcome).collect::<Vec<_>>(),
            [Outcome::Applied, Outcome::Duplicate, Outcome::Stale]
        );
    }

    #[test]
    fn each_ndr_is_an_attempt_the_third_is_repeated_and_a_new_attempt_after_one_is_forward() {
        let ndr = |at: &str| {
            let mut e = Courier::Clickpost.read(NDR.as_bytes()).unwrap();
            for s in [&mut e.scan].into_iter().chain(e.latest.as_mut()) {
                s.timestamp = at.into();
                s.at_ms = super::super::events::parse_time(at);
            }
            e
        };
        let (rec, ds) = run(&[
            event(6, "2016-07-12T10:00:00Z"),
            ndr("2016-07-12T17:12:36.710"),
            event(6, "2016-07-13T10:00:00Z"),
            ndr("2016-07-13T17:00:00"),
            ndr("2016-07-14T17:00:00"),
        ]);
        assert_eq!((rec.ndr_attempts, rec.ndr_reason.as_str()), (3, "Customer Unavailable"));
        assert_eq!(rec.shopify[1].status, "ATTEMPTED_DELIVERY");
        assert_eq!(ds[1].ndr, Some("Customer Unavailable"), "the metric label, from the NDR code");
        assert_eq!(rec.shopify[1].message, "Customer Unavailable");
        assert_eq!(rec.shopify[1].happened_at, "2016-07-12T11:42:36.710Z", "IST");
        let attempts = rec.shopify.iter().filter(|s| s.status == "ATTEMPTED_DELIVERY").count();
        assert_eq!(attempts, 3, "once per attempt");
        assert_eq!(ds.iter().map(|d| d.ndr_repeated).collect::<Vec<_>>(), [false, false, false, false, true]);
        assert!(rec.flagged(flag::NDR_REPEATED));
        let flags = &ds[4].order_flags;
        assert!(
            flags.iter().any(|(_, f)| f.starts_with("ndr-repeated: shipment 77 failed delivery 3 times")),
            "{flags:?}"
        );
        assert!(flags.iter().any(|(_, f)| f == "ndr: shipment 77 failed delivery attempt 3: Customer Unavailable"));
    }

    #[test]
    fn an_rto_fails_once_on_shopify_asks_for_its_return_once_and_only_moves_to_rto_delivered() {
        let (rec, ds) = run(&[
            event(5, "2017-08-01T20:00:00Z"),
            event(11, "2017-08-03T10:00:00Z"),
            event(21, "2017-08-04T10:00:00Z"),
            event(6, "2017-08-05T10:00:00Z"),
            event(14, "2017-08-06T10:00:00Z"),
        ]);
        assert_eq!(ds.iter().map(|d| d.rto_to_wms).collect::<Vec<_>>(), [false, true, false, false, false]);
        assert_eq!(ds.iter().map(|d| d.rto).collect::<Vec<_>>(), [false, true, false, false, false]);
        assert_eq!(ds[3].outcome, Outcome::Stale, "out for delivery after an RTO");
        assert_eq!(rec.status, ShipmentStatus::RtoDelivered);
        assert_eq!(statuses(&rec).iter().map(|s| s.0).collect::<Vec<_>>(), ["IN_TRANSIT", "FAILURE"]);
        assert_eq!(rec.shopify[1].message, "returning to origin");
        assert!(ds[4].order_flags.iter().any(|(_, f)| f == "rto-delivered: shipment 77 is back at origin"));
    }

    #[test]
    fn shiprocket_statuses_are_recorded_without_shopify_events() {
        let body = include_str!("../../../tests/fixtures/shiprocket/tracking_webhook_in_transit.json");
        let e = Courier::Shiprocket.read(body.as_bytes()).unwrap();
        let rec = TrackingRecord::new(1, 9, "shiprocket", &e.waybill, 0);
        let d = on_event(rec, &e, &TrackingRules { shopify_events: true, rto_to_wms: false }, 1);
        assert_eq!(
            (d.outcome, d.record.status, d.record.shopify.len()),
            (Outcome::Applied, ShipmentStatus::InTransit, 0)
        );
        let mut unknown = e.clone();
        unknown.scan.code = 8;
        unknown.scan.timestamp = "24 05 2023 10:00:00".into();
        let d = on_event(d.record, &unknown, &SHOPIFY, 2);
        assert_eq!(d.outcome, Outcome::Ignored);
    }

    #[test]
    fn the_timeline_stays_bounded_dropping_repeats_first() {
        let mut rec = TrackingRecord::new(1, 77, "clickpost", "W", 0);
        let applied = event(5, "2017-08-01T20:00:00Z");
        rec = on_event(rec, &applied, &SHOPIFY, 1).record;
        for n in 0..super::super::TIMELINE_MAX + 5 {
            rec = on_event(rec, &applied, &SHOPIFY, 2 + n as i64).record;
        }
        assert_eq!(rec.timeline.len(), super::super::TIMELINE_MAX);
        assert_eq!(rec.timeline[0].outcome, Outcome::Applied, "the applied event is kept");
        assert_eq!(rec.dropped, 6);
        assert!(rec.seen(&applied.scan.key()));
    }
}
