//! Returns (CONTRACT.md §9): an approved Shopify return becomes one WMS return per receiving
//! location, one item per unit; the WMS's QC acknowledgement becomes one `returnProcess` on Shopify.
//! Plain rules on plain data: which units go where and under which codes, whether an
//! acknowledgement is acceptable as a whole, and what one processing step restocks and refunds.
//!
//! Key invariants:
//! - a unit's `itemCode` is `{return line item id}-{k}`, derived from Shopify's ids, so the same
//!   return always yields the same codes;
//! - the first QC result of a unit is final;
//! - a step never processes more of a line than its QC'd units minus what Shopify already shows
//!   processed, and nothing for a unit the WMS has not QC'd.

use crate::lenient::gid_number;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::flows::model::{OrderRecord, Task};
use crate::flows::wms_order::{CreateReturnOrder, ReturnAckIn, ReturnItem};

/// The return webhook topics channeld subscribes to (§9.4), with their paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnTopic {
    Approve,
    Update,
    Cancel,
    Delivery,
}

impl ReturnTopic {
    pub const ALL: [ReturnTopic; 4] =
        [ReturnTopic::Approve, ReturnTopic::Update, ReturnTopic::Cancel, ReturnTopic::Delivery];

    pub fn as_str(self) -> &'static str {
        match self {
            ReturnTopic::Approve => "returns/approve",
            ReturnTopic::Update => "returns/update",
            ReturnTopic::Cancel => "returns/cancel",
            ReturnTopic::Delivery => "reverse_deliveries/attach_deliverable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The path Shopify posts this topic to.
    pub fn path(self) -> &'static str {
        match self {
            ReturnTopic::Approve => "/shopify/api/push/returnApprove",
            ReturnTopic::Update => "/shopify/api/push/returnUpdate",
            ReturnTopic::Cancel => "/shopify/api/push/returnCancel",
            ReturnTopic::Delivery => "/shopify/api/push/returnDelivery",
        }
    }

    /// `webhookSubscriptionCreate`'s topic enum value.
    pub fn graphql(self) -> &'static str {
        match self {
            ReturnTopic::Approve => "RETURNS_APPROVE",
            ReturnTopic::Update => "RETURNS_UPDATE",
            ReturnTopic::Cancel => "RETURNS_CANCEL",
            ReturnTopic::Delivery => "REVERSE_DELIVERIES_ATTACH_DELIVERABLE",
        }
    }
}

/// What a return webhook names: the return, and its order when the payload carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnEvent {
    pub return_id: u64,
    pub order_id: Option<u64>,
}

/// Reads the ids a return delivery carries (§9.4): the return's `id`, else the number in
/// `admin_graphql_api_id`; for a reverse delivery, under `return`. `None`: not JSON, or no id.
pub fn read_event(topic: ReturnTopic, body: &[u8]) -> Option<ReturnEvent> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let holder = match topic {
        ReturnTopic::Delivery => v.get("return")?,
        _ => &v,
    };
    let return_id = id_of(holder.get("id"), holder.get("admin_graphql_api_id"))?;
    let order_id = match (v.get("order"), v.get("order_id")) {
        (Some(o), _) if o.is_object() => id_of(o.get("id"), o.get("admin_graphql_api_id")),
        (_, id) => id_of(id, None),
    };
    Some(ReturnEvent { return_id, order_id })
}

/// A positive id given as a number, a numeric string, or at the end of a `gid://` string.
fn id_of(id: Option<&serde_json::Value>, gid: Option<&serde_json::Value>) -> Option<u64> {
    let number = |v: &serde_json::Value| match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok().or_else(|| gid_number(s)),
        _ => None,
    };
    id.and_then(number).or_else(|| gid.and_then(number)).filter(|n| *n > 0)
}

/// Where a return stands (`returns list --status`, §9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReturnStatus {
    /// Its order never reached the WMS: kept, shown, sent only once released.
    Held,
    /// Waiting for a reverse delivery's tracking number (`returns.wait_for_tracking`).
    Waiting,
    /// Its Create Return Order is queued.
    Queued,
    /// The WMS has it; no unit QC'd yet.
    Sent,
    /// Some units QC'd.
    Partial,
    /// Every unit sent is processed on Shopify.
    Done,
    Cancelled,
    /// No unit to send (none placed at a mapped location, none ever sent to the WMS).
    Skipped,
}

impl ReturnStatus {
    pub const ALL: [ReturnStatus; 8] = [
        ReturnStatus::Held,
        ReturnStatus::Waiting,
        ReturnStatus::Queued,
        ReturnStatus::Sent,
        ReturnStatus::Partial,
        ReturnStatus::Done,
        ReturnStatus::Cancelled,
        ReturnStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReturnStatus::Held => "held",
            ReturnStatus::Waiting => "waiting",
            ReturnStatus::Queued => "queued",
            ReturnStatus::Sent => "sent",
            ReturnStatus::Partial => "partial",
            ReturnStatus::Done => "done",
            ReturnStatus::Cancelled => "cancelled",
            ReturnStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Flags a return can carry (§9.4, §9.8), each shown by `returns show` and counted.
pub mod flag {
    pub const TRACKING_AFTER_SEND: &str = "tracking-after-send";
    pub const CHANGED_AFTER_SEND: &str = "changed-after-send";
    pub const CANCELLED_AFTER_SEND: &str = "cancelled-after-send";
    pub const QC_AFTER_CANCEL: &str = "qc-after-cancel";
    pub const QC_FAIL: &str = "qc-fail";
    pub const REFUND_MANUAL: &str = "refund-manual";
    pub const LOCATION_UNMAPPED: &str = "location-unmapped";
    pub const PROCESSED_OUTSIDE: &str = "processed-outside";
    pub const UNIT_REMOVED: &str = "unit-removed";
    pub const CLOSED_ON_SHOPIFY: &str = "closed-on-shopify";
    /// Released by the operator (`returns release`): sent although its order never reached the WMS.
    pub const RELEASED: &str = "released";
    /// Not a Shopify return: the courier is bringing a shipment back (RTO, CONTRACT.md §10.4). Its
    /// QC acknowledgement is recorded and shown and executes nothing on Shopify.
    pub const RTO: &str = "return-to-origin";
}

/// A return as channeld knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnRecord {
    /// Shopify's return id.
    pub id: u64,
    pub order_id: u64,
    /// Shopify's name, e.g. `#1001-R1` (known once the return was read).
    pub name: String,
    pub status: ReturnStatus,
    /// Why it is held or skipped.
    pub reasons: Vec<String>,
    pub flags: Vec<String>,
    /// One WMS return per receiving location, built when first sent; retries resend them unchanged.
    pub wms: Vec<WmsReturn>,
    pub units: Vec<ReturnUnit>,
    /// Units not sent, with why.
    pub skipped: Vec<SkippedUnit>,
    /// Tracking of the first reverse delivery, when known: `(number, carrier)`.
    pub tracking: Option<(String, String)>,
    /// Acknowledgements accepted so far (each one's QC'd units are one processing step).
    pub acks: u32,
    /// The step whose `returnProcess` was (or may have been) sent and is not yet recorded.
    pub step_in_flight: Option<u32>,
    /// Refunded by channeld: `(amount, currency)` per refund.
    pub refunds: Vec<(String, String)>,
    /// Shopify closed it (by channeld's `returnClose` or otherwise).
    pub closed: bool,
    pub first_seen_ms: i64,
    pub changed_ms: i64,
}

/// One WMS return: a receiving location's share of a Shopify return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WmsReturn {
    /// `returnOrderCode`: the return id, or `{return id}-{locationCode}` when it has several.
    pub code: String,
    pub location_code: String,
    /// The Create Return Order body as first built (JSON).
    pub body: String,
    pub sent: bool,
}

/// One unit sent to the WMS, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnUnit {
    /// `itemCode`: `{return line item id}-{k}`.
    pub item_code: String,
    pub return_line_id: u64,
    pub fulfillment_line_id: u64,
    pub sku: String,
    /// The WMS return (`returnOrderCode`) it belongs to, and that return's location.
    pub return_code: String,
    pub location_code: String,
    pub reason: String,
    pub qc: Option<Qc>,
    /// Processed on Shopify (restocked or not, refunded or not).
    pub processed: bool,
}

impl ReturnUnit {
    /// QC'd by acknowledgement `ack` or an earlier one, and not processed on Shopify yet: work for
    /// that acknowledgement's step.
    pub fn due(&self, ack: u32) -> bool {
        !self.processed && self.qc.as_ref().is_some_and(|q| q.ack <= ack)
    }
}

/// A unit's QC result as the WMS acknowledged it (the first is final).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qc {
    pub pass: bool,
    pub reason: Option<String>,
    pub image_urls: Vec<String>,
    /// The acknowledgement (1, 2, ...) that brought it: the processing step it belongs to.
    pub ack: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedUnit {
    pub return_line_id: u64,
    pub quantity: u32,
    pub reason: String,
}

impl ReturnRecord {
    pub fn new(id: u64, order_id: u64, status: ReturnStatus, now_ms: i64) -> Self {
        Self {
            id,
            order_id,
            name: String::new(),
            status,
            reasons: Vec::new(),
            flags: Vec::new(),
            wms: Vec::new(),
            units: Vec::new(),
            skipped: Vec::new(),
            tracking: None,
            acks: 0,
            step_in_flight: None,
            refunds: Vec::new(),
            closed: false,
            first_seen_ms: now_ms,
            changed_ms: now_ms,
        }
    }

    pub fn flag(&mut self, flag: &str) {
        if !self.flags.iter().any(|f| f == flag) {
            self.flags.push(flag.to_string());
        }
    }

    pub fn flagged(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The WMS got (part of) it: its Create Return Order was delivered for some location.
    pub fn at_wms(&self) -> bool {
        self.wms.iter().any(|w| w.sent)
    }

    /// Nothing was sent yet and nothing will be without an event: held, waiting, queued.
    pub fn before_sending(&self) -> bool {
        matches!(self.status, ReturnStatus::Held | ReturnStatus::Waiting | ReturnStatus::Queued) && !self.at_wms()
    }

    /// A return to origin (see [`flag::RTO`]): nothing of it is ever done on Shopify.
    pub fn is_rto(&self) -> bool {
        self.flagged(flag::RTO)
    }

    /// Whether processing on Shopify is over for good (cancelled, or closed there).
    pub fn finished_on_shopify(&self) -> bool {
        self.status == ReturnStatus::Cancelled || self.closed
    }

    /// The status that follows from the units once the WMS has the return.
    pub fn settle(&mut self) {
        if self.status == ReturnStatus::Cancelled {
            return;
        }
        if !self.wms.is_empty() && self.wms.iter().all(|w| w.sent) {
            let qcd = self.units.iter().filter(|u| u.qc.is_some()).count();
            let processed = self.units.iter().filter(|u| u.processed).count();
            self.status = if processed == self.units.len() {
                ReturnStatus::Done
            } else if qcd > 0 {
                ReturnStatus::Partial
            } else {
                ReturnStatus::Sent
            };
        }
    }

    /// Sent to the WMS and still waiting for QC of some unit after `stale_after_days` (a return
    /// the WMS dropped never gets QC: the operator looks at it).
    pub fn is_stale(&self, stale_after_days: u32, now_ms: i64) -> bool {
        let waiting = matches!(self.status, ReturnStatus::Sent | ReturnStatus::Partial) && self.qc_counts().2 > 0;
        waiting && now_ms - self.first_seen_ms > i64::from(stale_after_days) * 86_400_000
    }

    /// Units by QC result: (pass, fail, awaiting QC).
    pub fn qc_counts(&self) -> (usize, usize, usize) {
        let pass = self.units.iter().filter(|u| u.qc.as_ref().is_some_and(|q| q.pass)).count();
        let fail = self.units.iter().filter(|u| u.qc.as_ref().is_some_and(|q| !q.pass)).count();
        (pass, fail, self.units.len() - pass - fail)
    }
}

/// Whether a return of this order is held rather than sent (§9.4): the order never reached the
/// WMS and is not on its way there (unknown, rejected, skipped, or cancelled before sending). An
/// order still queued for creation is not held: its return waits behind the creation.
pub fn held_because(order: Option<&OrderRecord>) -> Option<String> {
    use crate::flows::model::OrderStatus::*;
    let Some(order) = order else { return Some("its order is unknown to channeld".into()) };
    if order.may_be_at_wms() {
        return None;
    }
    match order.status {
        Rejected => Some(format!("its order {} was rejected and never sent to the WMS", order.id)),
        Skipped => Some(format!("its order {} was skipped and never sent to the WMS", order.id)),
        Cancelled => Some(format!("its order {} was cancelled before it reached the WMS", order.id)),
        Received | Queued | Sent => None,
    }
}

// --- what a return webhook does ----------------------------------------------------------------

/// What a return webhook changes: the record (`None`: nothing), the calls to queue behind its
/// order's, the outcome (metric label and log), and an alert for the operator, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub record: Option<ReturnRecord>,
    pub tasks: Vec<Task>,
    pub outcome: &'static str,
    pub alert: Option<String>,
}

impl Decision {
    fn none(outcome: &'static str) -> Self {
        Self { record: None, tasks: Vec::new(), outcome, alert: None }
    }

    fn store(record: ReturnRecord, outcome: &'static str) -> Self {
        Self { record: Some(record), tasks: Vec::new(), outcome, alert: None }
    }
}

/// What a return delivery does (§9.4) to the return as stored (`stored`), given its order as
/// stored (`order`).
pub fn on_event(
    topic: ReturnTopic,
    event: &ReturnEvent,
    stored: Option<ReturnRecord>,
    order: Option<&OrderRecord>,
    now_ms: i64,
) -> Decision {
    match (topic, stored) {
        (ReturnTopic::Approve, Some(_)) => Decision::none("repeated"),
        (ReturnTopic::Approve, None) => approved(event, order, now_ms),
        (ReturnTopic::Cancel, stored) => cancelled(event, stored, now_ms),
        (ReturnTopic::Delivery, Some(mut rec)) => {
            if rec.status == ReturnStatus::Waiting {
                rec.status = ReturnStatus::Queued;
                return Decision {
                    tasks: vec![Task::WmsReturn { return_id: rec.id }],
                    ..Decision::store(rec, "queued")
                };
            }
            if rec.at_wms() {
                rec.flag(flag::TRACKING_AFTER_SEND);
                return Decision::store(rec, "tracking_after_send");
            }
            Decision::none("tracking_noted")
        }
        (ReturnTopic::Update, Some(mut rec)) if rec.at_wms() && rec.status != ReturnStatus::Cancelled => {
            rec.flag(flag::CHANGED_AFTER_SEND);
            Decision::store(rec, "changed_after_send")
        }
        (ReturnTopic::Update, Some(_)) => Decision::none("read_when_sent"),
        (ReturnTopic::Update | ReturnTopic::Delivery, None) => Decision::none("unknown_return"),
    }
}

/// An approved return: sent behind its order's creation, or held when its order never reached
/// the WMS.
fn approved(event: &ReturnEvent, order: Option<&OrderRecord>, now_ms: i64) -> Decision {
    let order_id = event.order_id.or(order.map(|o| o.id)).unwrap_or_default();
    match held_because(order) {
        Some(why) => {
            let mut rec = ReturnRecord::new(event.return_id, order_id, ReturnStatus::Held, now_ms);
            rec.reasons.push(why);
            Decision::store(rec, "held")
        }
        None => {
            let rec = ReturnRecord::new(event.return_id, order_id, ReturnStatus::Queued, now_ms);
            Decision { tasks: vec![Task::WmsReturn { return_id: event.return_id }], ..Decision::store(rec, "queued") }
        }
    }
}

/// A cancelled return: never sent when it had not been; when the WMS has it, flagged and alerted
/// (the operator cancels it in the WMS: Increff publishes no way to). One never seen is kept as
/// cancelled, so a late approval (or reconciliation) does not send it.
fn cancelled(event: &ReturnEvent, stored: Option<ReturnRecord>, now_ms: i64) -> Decision {
    let mut rec = match stored {
        Some(rec) if rec.status == ReturnStatus::Cancelled => return Decision::none("repeated"),
        Some(rec) => rec,
        None => ReturnRecord::new(event.return_id, event.order_id.unwrap_or_default(), ReturnStatus::Cancelled, now_ms),
    };
    let at_wms = rec.at_wms();
    rec.status = ReturnStatus::Cancelled;
    if !at_wms {
        return Decision::store(rec, "cancelled");
    }
    rec.flag(flag::CANCELLED_AFTER_SEND);
    let alert = format!(
        "return {} of order {} was cancelled on Shopify after the WMS got it ({}): cancel it in the WMS",
        rec.id,
        rec.order_id,
        rec.wms.iter().filter(|w| w.sent).map(|w| w.code.as_str()).collect::<Vec<_>>().join(", ")
    );
    Decision { alert: Some(alert), ..Decision::store(rec, "cancelled_after_send") }
}

/// `returns release`: a held return is sent, the operator vouching that the WMS knows its order.
pub fn release(rec: &mut ReturnRecord) -> Result<Vec<Task>, String> {
    if rec.status != ReturnStatus::Held {
        return Err(format!("return {} is {}, not held", rec.id, rec.status.as_str()));
    }
    rec.status = ReturnStatus::Queued;
    rec.reasons.clear();
    rec.flag(flag::RELEASED);
    Ok(vec![Task::WmsReturn { return_id: rec.id }])
}

// --- Shopify's return, as read by GraphQL --------------------------------------------------------

/// A Shopify return as `return(id:)` shows it (the parts channeld uses).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShopifyReturn {
    pub id: u64,
    pub name: String,
    /// `OPEN`, `CLOSED`, `CANCELED`, `DECLINED`, `REQUESTED`.
    pub status: String,
    pub created_at: String,
    pub order_id: u64,
    pub lines: Vec<ReturnLine>,
    /// Exchange line items: a return with any is left to the merchant for money.
    pub exchange_lines: usize,
    /// Reverse fulfillment order line items: fulfillment line item → its id.
    pub reverse_lines: Vec<ReverseLine>,
    /// The first reverse delivery's tracking: `(number, carrier)`.
    pub tracking: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReturnLine {
    pub id: u64,
    pub quantity: u32,
    pub processed: u32,
    pub unprocessed: u32,
    /// `returnReasonDefinition.name`, else the legacy enum (`WRONG_ITEM`).
    pub reason_name: Option<String>,
    pub reason_enum: Option<String>,
    pub note: String,
    /// `None` for an unverified return line item (no fulfillment line item behind it).
    pub fulfillment_line_id: Option<u64>,
    pub line_item_id: Option<u64>,
    pub sku: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReverseLine {
    pub id: u64,
    pub fulfillment_line_id: u64,
}

/// The rules of `[returns]` that shape a WMS return.
#[derive(Debug, Clone)]
pub struct ReturnRules {
    pub order_type: String,
    /// `returns.location`: one receiving location for every unit (empty: where each shipped from).
    pub location: String,
    pub wait_for_tracking: bool,
}

/// What a Shopify return becomes at the WMS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReturnPlan {
    pub wms: Vec<WmsReturn>,
    pub units: Vec<ReturnUnit>,
    pub skipped: Vec<SkippedUnit>,
}

/// Builds the WMS returns of `ret` (§9.7). `shipped_from` maps a fulfillment line item to the WMS
/// location code it shipped from (`None`: a Shopify location not in `[[locations]]`, with its id).
pub fn plan_wms(
    ret: &ShopifyReturn,
    order: Option<&OrderRecord>,
    shipped_from: &HashMap<u64, Result<String, u64>>,
    rules: &ReturnRules,
) -> ReturnPlan {
    let mut plan = ReturnPlan::default();
    let mut by_location: BTreeMap<String, Vec<ReturnUnit>> = BTreeMap::new();
    for line in &ret.lines {
        let skip = |reason: String| SkippedUnit { return_line_id: line.id, quantity: line.quantity, reason };
        let Some(fli) = line.fulfillment_line_id else {
            plan.skipped.push(skip("an unverified return line item (no fulfilled line behind it)".into()));
            continue;
        };
        let Some(sku) = sku_sent(order, line) else {
            plan.skipped.push(skip("its line was never sent to the WMS (a gift card or nothing to ship)".into()));
            continue;
        };
        let location = if rules.location.trim().is_empty() {
            match shipped_from.get(&fli) {
                Some(Ok(code)) => code.clone(),
                Some(Err(shopify_location)) => {
                    plan.skipped.push(skip(format!(
                        "fulfilled from Shopify location {shopify_location}, not in [[locations]]"
                    )));
                    continue;
                }
                None => {
                    plan.skipped.push(skip("no fulfillment of the order holds its line".into()));
                    continue;
                }
            }
        } else {
            rules.location.trim().to_string()
        };
        let reason = reason_text(line);
        for k in 1..=line.quantity {
            by_location.entry(location.clone()).or_default().push(ReturnUnit {
                item_code: format!("{}-{k}", line.id),
                return_line_id: line.id,
                fulfillment_line_id: fli,
                sku: sku.clone(),
                return_code: String::new(),
                location_code: location.clone(),
                reason: reason.clone(),
                qc: None,
                processed: false,
            });
        }
    }
    let several = by_location.len() > 1;
    let forward = order.map_or(ret.order_id, |o| o.id).to_string();
    for (location, mut units) in by_location {
        let code = if several { format!("{}-{location}", ret.id) } else { ret.id.to_string() };
        for u in &mut units {
            u.return_code = code.clone();
        }
        let body = CreateReturnOrder {
            forward_order_code: forward.clone(),
            return_order_code: code.clone(),
            location_code: location.clone(),
            return_order_time: ret.created_at.clone(),
            order_type: rules.order_type.clone(),
            order_items: units
                .iter()
                .map(|u| ReturnItem {
                    item_code: u.item_code.clone(),
                    channel_sku_code: u.sku.clone(),
                    reason: u.reason.clone(),
                })
                .collect(),
            awb_number: ret.tracking.as_ref().map(|t| t.0.clone()),
            transporter: ret.tracking.as_ref().map(|t| t.1.clone()),
        };
        let body = serde_json::to_string(&body).unwrap_or_default();
        plan.wms.push(WmsReturn { code, location_code: location, body, sent: false });
        plan.units.extend(units);
    }
    plan
}

/// The SKU a return line's units go under: the one sent at creation for its Shopify line (Increff
/// knows the order by those), else, for a return released by the operator, the line's current SKU.
fn sku_sent(order: Option<&OrderRecord>, line: &ReturnLine) -> Option<String> {
    let sent = order.and_then(|o| o.wms.as_ref());
    if let (Some(snapshot), Some(line_item)) = (sent, line.line_item_id) {
        if let Some(item) = snapshot.items.iter().find(|i| i.lines.iter().any(|(l, _)| *l == line_item)) {
            return Some(item.sku.clone());
        }
        if order.is_some_and(|o| o.may_be_at_wms()) {
            return None;
        }
    }
    line.sku.clone().filter(|s| !s.trim().is_empty())
}

/// §9.7 `reason`: the reason's name, else the legacy enum in lower-case words, then `: {note}`,
/// cut to 255 characters.
fn reason_text(line: &ReturnLine) -> String {
    let base = line
        .reason_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| line.reason_enum.as_ref().map(|e| e.to_lowercase().replace('_', " ")))
        .unwrap_or_default();
    let note = line.note.trim();
    let text = match (base.is_empty(), note.is_empty()) {
        (_, true) => base,
        (true, false) => note.to_string(),
        (false, false) => format!("{base}: {note}"),
    };
    text.chars().take(255).collect()
}

// --- the WMS's QC acknowledgement ---------------------------------------------------------------

/// Why an acknowledgement is refused as a whole (§9.5), by the status it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckRefusal {
    NotFound(String),
    Invalid(String),
    Conflict(String),
}

/// What an acceptable acknowledgement records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckOutcome {
    /// Units newly QC'd: (index in `units`, result).
    pub new: Vec<(usize, bool)>,
    /// Units named again with the result they already have.
    pub repeated: usize,
}

/// Checks an acknowledgement against the WMS return it names (`code`, in `rec`) before anything
/// is stored, and applies it to `rec` when acceptable: every unit recorded with its result, the
/// WMS return counted as sent. Returns what changed.
pub fn acknowledge(rec: &mut ReturnRecord, code: &str, ack: &ReturnAckIn) -> Result<AckOutcome, AckRefusal> {
    let Some(wms) = rec.wms.iter().find(|w| w.code == code) else {
        return Err(AckRefusal::NotFound(format!("returnOrderCode {code} was never sent by channeld")));
    };
    if ack.location_code.trim() != wms.location_code {
        return Err(AckRefusal::Invalid(format!(
            "locationCode {:?} is not {:?}, where return {code} was sent",
            ack.location_code.trim(),
            wms.location_code
        )));
    }
    let forward = rec.order_id.to_string();
    if ack.forward_order_code.trim() != forward {
        return Err(AckRefusal::Invalid(format!(
            "forwardOrderCode {:?} is not {forward:?}, the order of return {code}",
            ack.forward_order_code.trim()
        )));
    }
    if ack.order_items.is_empty() {
        return Err(AckRefusal::Invalid("orderItems is empty".into()));
    }
    let mut unknown = Vec::new();
    let mut results: Vec<(usize, bool)> = Vec::new();
    for item in &ack.order_items {
        let item_code = item.code();
        let Some(at) = rec.units.iter().position(|u| u.return_code == code && u.item_code == item_code) else {
            unknown.push(item_code.to_string());
            continue;
        };
        let unit = &rec.units[at];
        if item.channel_sku_code.trim() != unit.sku {
            return Err(AckRefusal::Invalid(format!(
                "item {item_code}: channelSkuCode {:?} is not {:?}, as sent",
                item.channel_sku_code.trim(),
                unit.sku
            )));
        }
        let pass = match item.qc_status.trim().to_ascii_uppercase().as_str() {
            "PASS" => true,
            "FAIL" => false,
            other => {
                return Err(AckRefusal::Invalid(format!("item {item_code}: qcStatus {other:?} is not PASS or FAIL")))
            }
        };
        if let Some(earlier) = results.iter().find(|(i, _)| *i == at) {
            if earlier.1 != pass {
                return Err(AckRefusal::Invalid(format!("item {item_code} is named twice with different results")));
            }
            continue;
        }
        if let Some(qc) = &unit.qc {
            if qc.pass != pass {
                let was = if qc.pass { "PASS" } else { "FAIL" };
                return Err(AckRefusal::Conflict(format!(
                    "item {item_code} was already acknowledged {was}; the first result is final"
                )));
            }
        }
        results.push((at, pass));
    }
    if !unknown.is_empty() {
        return Err(AckRefusal::NotFound(format!("not units of return {code}: {}", unknown.join(", "))));
    }
    let mut outcome = AckOutcome::default();
    let fresh: Vec<(usize, bool)> = results.into_iter().filter(|(i, _)| rec.units[*i].qc.is_none()).collect();
    outcome.repeated = ack.order_items.len() - fresh.len();
    if let Some(w) = rec.wms.iter_mut().find(|w| w.code == code) {
        // The WMS naming the return proves it arrived, whatever channeld recorded of the call.
        w.sent = true;
    }
    if !fresh.is_empty() {
        rec.acks += 1;
        for (at, pass) in &fresh {
            let item = ack.order_items.iter().find(|i| i.code() == rec.units[*at].item_code).expect("named above");
            rec.units[*at].qc = Some(Qc {
                pass: *pass,
                reason: item.qc_reason.clone().filter(|r| !r.trim().is_empty()),
                image_urls: item.image_urls.clone().unwrap_or_default(),
                ack: rec.acks,
            });
        }
        if fresh.iter().any(|(_, pass)| !pass) {
            rec.flag(flag::QC_FAIL);
        }
        if rec.is_rto() {
            // Nothing to execute on Shopify: a QC'd unit of an RTO is done with.
            for (at, _) in &fresh {
                rec.units[*at].processed = true;
            }
        }
        if rec.finished_on_shopify() {
            rec.flag(flag::QC_AFTER_CANCEL);
        }
    }
    outcome.new = fresh;
    rec.settle();
    Ok(outcome)
}

// --- processing on Shopify ----------------------------------------------------------------------

/// One return line item's part of a `returnProcess`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessLine {
    pub return_line_id: u64,
    pub quantity: u32,
    /// `(reverse fulfillment order line item, quantity, restock)`: restocked (PASS) or not (FAIL).
    /// Empty with `restock = false`.
    pub dispositions: Vec<(u64, u32, bool)>,
    /// PASS units of this line to refund.
    pub refund: u32,
}

/// What one processing step does on Shopify, decided on the return as re-read just before.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessPlan {
    pub lines: Vec<ProcessLine>,
    /// Units of the step that count as processed without a call: Shopify shows them processed
    /// already (a step cut short by a crash, or someone else).
    pub already: Vec<usize>,
    /// Units the call processes (indexes in `units`).
    pub units: Vec<usize>,
    /// Units of the step whose line no longer has them (removed from the return meanwhile).
    pub removed: Vec<usize>,
    /// Shopify shows more processed than channeld ever sent for a line.
    pub processed_outside: bool,
}

impl ProcessPlan {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Plans processing step `ack` of `rec` on the return as Shopify shows it now (`now`). A line gets
/// at most its QC'd units less what Shopify already processed, and never more than it has left.
/// `restock`: dispositions at all; `refund_units`: PASS units are refunded (the caller decides COD,
/// exchanges and configuration).
pub fn plan_process(
    rec: &ReturnRecord,
    ack: u32,
    now: &ShopifyReturn,
    restock: bool,
    refund_units: bool,
) -> ProcessPlan {
    let mut plan = ProcessPlan::default();
    let mut line_ids: Vec<u64> = rec.units.iter().map(|u| u.return_line_id).collect();
    line_ids.dedup();
    for line_id in line_ids {
        let of_line: Vec<usize> = (0..rec.units.len()).filter(|i| rec.units[*i].return_line_id == line_id).collect();
        let step: Vec<usize> = of_line.iter().copied().filter(|i| rec.units[*i].due(ack)).collect();
        if step.is_empty() {
            continue;
        }
        let Some(shopify) = now.lines.iter().find(|l| l.id == line_id) else {
            plan.removed.extend(step);
            continue;
        };
        let done_by_us = of_line.iter().filter(|i| rec.units[**i].processed).count() as u32;
        let qcd = done_by_us + step.len() as u32;
        let in_flight = rec.step_in_flight == Some(ack);
        if shopify.processed > qcd || (shopify.processed > done_by_us && !in_flight) {
            plan.processed_outside = true;
        }
        // Of this step's units, those Shopify already shows processed count as done.
        let already = shopify.processed.saturating_sub(done_by_us).min(step.len() as u32) as usize;
        plan.already.extend(&step[..already]);
        let rest = &step[already..];
        let room = shopify.unprocessed.min(shopify.quantity.saturating_sub(shopify.processed)) as usize;
        let (go, gone) = rest.split_at(rest.len().min(room));
        plan.removed.extend(gone);
        if go.is_empty() {
            continue;
        }
        let passed = go.iter().filter(|i| rec.units[**i].qc.as_ref().is_some_and(|q| q.pass)).count() as u32;
        let failed = go.len() as u32 - passed;
        let reverse = now.reverse_lines.iter().find(|r| Some(r.fulfillment_line_id) == shopify.fulfillment_line_id);
        let dispositions = match (restock, reverse) {
            (true, Some(r)) => [(r.id, passed, true), (r.id, failed, false)].into_iter().filter(|d| d.1 > 0).collect(),
            _ => Vec::new(),
        };
        plan.lines.push(ProcessLine {
            return_line_id: line_id,
            quantity: go.len() as u32,
            dispositions,
            refund: if refund_units { passed } else { 0 },
        });
        plan.units.extend(go);
    }
    plan
}

/// Whether the return can be closed on Shopify now (§9.8): nothing left unprocessed on any line,
/// no unit failed QC, every unit sent to the WMS processed, and Shopify still shows it open.
pub fn ready_to_close(rec: &ReturnRecord, now: &ShopifyReturn) -> bool {
    now.status == "OPEN"
        && now.lines.iter().all(|l| l.unprocessed == 0)
        && rec.skipped.is_empty()
        && rec.units.iter().all(|u| u.processed && u.qc.as_ref().is_some_and(|q| q.pass))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::model::{OrderStatus, SentItem, WmsSnapshot};
    use crate::flows::wms_order::ReturnAckItem;

    fn order() -> OrderRecord {
        let mut o = OrderRecord::new(450789469, "#1001".into(), 0);
        o.status = OrderStatus::Sent;
        o.wms_created = true;
        o.wms = Some(WmsSnapshot {
            create_body: String::new(),
            items: vec![
                SentItem {
                    sku: "IPOD2008GREEN".into(),
                    item_code: "466157049".into(),
                    quantity: 1,
                    lines: vec![(466157049, 1)],
                },
                SentItem {
                    sku: "IPOD2008RED".into(),
                    item_code: "518995019".into(),
                    quantity: 3,
                    lines: vec![(518995019, 2), (703073504, 1)],
                },
            ],
            on_hold: false,
            dispatch_by: String::new(),
            start_processing: String::new(),
            address_digest: String::new(),
            refunds_seen: 0,
            cod_amount: 0.0,
        });
        o
    }

    fn line(id: u64, qty: u32, fli: u64, line_item: u64) -> ReturnLine {
        ReturnLine {
            id,
            quantity: qty,
            processed: 0,
            unprocessed: qty,
            reason_name: Some("Size too small".into()),
            reason_enum: Some("SIZE_TOO_SMALL".into()),
            note: String::new(),
            fulfillment_line_id: Some(fli),
            line_item_id: Some(line_item),
            sku: Some("CURRENT-SKU".into()),
        }
    }

    fn shopify_return() -> ShopifyReturn {
        ShopifyReturn {
            id: 945000954,
            name: "#1001-R1".into(),
            status: "OPEN".into(),
            created_at: "2026-11-30T10:00:00Z".into(),
            order_id: 450789469,
            lines: vec![line(11, 2, 101, 518995019), line(12, 1, 102, 466157049)],
            exchange_lines: 0,
            reverse_lines: vec![
                ReverseLine { id: 901, fulfillment_line_id: 101 },
                ReverseLine { id: 902, fulfillment_line_id: 102 },
            ],
            tracking: Some(("AWB123".into(), "Delhivery".into())),
        }
    }

    fn rules() -> ReturnRules {
        ReturnRules { order_type: "CUSTOMER_RETURN".into(), location: String::new(), wait_for_tracking: false }
    }

    fn from(pairs: &[(u64, Result<&str, u64>)]) -> HashMap<u64, Result<String, u64>> {
        pairs.iter().map(|(k, v)| (*k, v.map(str::to_string))).collect()
    }

    fn planned() -> ReturnRecord {
        let plan =
            plan_wms(&shopify_return(), Some(&order()), &from(&[(101, Ok("WH-1")), (102, Ok("WH-1"))]), &rules());
        let mut rec = ReturnRecord::new(945000954, 450789469, ReturnStatus::Queued, 0);
        rec.wms = plan.wms;
        rec.units = plan.units;
        for w in &mut rec.wms {
            w.sent = true;
        }
        rec.settle();
        rec
    }

    fn ack(items: &[(&str, &str, &str)]) -> ReturnAckIn {
        ReturnAckIn {
            return_order_code: "945000954".into(),
            forward_order_code: "450789469".into(),
            location_code: "WH-1".into(),
            order_items: items
                .iter()
                .map(|(code, sku, qc)| ReturnAckItem {
                    item_code: code.to_string(),
                    return_item_code: String::new(),
                    channel_sku_code: sku.to_string(),
                    qc_status: qc.to_string(),
                    qc_reason: None,
                    image_urls: None,
                })
                .collect(),
        }
    }

    #[test]
    fn three_units_of_two_lines_make_one_wms_return_with_three_items() {
        let rec = planned();
        assert_eq!(rec.wms.len(), 1);
        let body: serde_json::Value = serde_json::from_str(&rec.wms[0].body).unwrap();
        assert_eq!(body["forwardOrderCode"], "450789469");
        assert_eq!(body["returnOrderCode"], "945000954");
        assert_eq!(body["locationCode"], "WH-1");
        assert_eq!(body["orderType"], "CUSTOMER_RETURN");
        assert_eq!(body["awbNumber"], "AWB123");
        assert_eq!(body["transporter"], "Delhivery");
        let items = body["orderItems"].as_array().unwrap();
        let codes: Vec<&str> = items.iter().map(|i| i["itemCode"].as_str().unwrap()).collect();
        assert_eq!(codes, ["11-1", "11-2", "12-1"]);
        // The SKU as sent at creation (a merged line's item), not the line's current one.
        assert_eq!(items[0]["channelSkuCode"], "IPOD2008RED");
        assert_eq!(items[2]["channelSkuCode"], "IPOD2008GREEN");
        assert_eq!(items[0]["reason"], "Size too small");
        assert_eq!(rec.status, ReturnStatus::Sent);
    }

    #[test]
    fn units_go_to_the_location_they_shipped_from_and_what_cannot_be_placed_is_listed() {
        let mut ret = shopify_return();
        ret.lines.push(ReturnLine { fulfillment_line_id: None, ..line(13, 1, 0, 0) });
        ret.lines.push(line(14, 1, 104, 999)); // a line never sent (a gift card)
        ret.lines.push(line(15, 1, 105, 466157049));
        ret.tracking = None;
        let shipped = from(&[(101, Ok("WH-1")), (102, Ok("WH-2")), (105, Err(77))]);
        let plan = plan_wms(&ret, Some(&order()), &shipped, &rules());
        let codes: Vec<(&str, &str)> = plan.wms.iter().map(|w| (w.code.as_str(), w.location_code.as_str())).collect();
        assert_eq!(codes, [("945000954-WH-1", "WH-1"), ("945000954-WH-2", "WH-2")]);
        let body: serde_json::Value = serde_json::from_str(&plan.wms[0].body).unwrap();
        assert!(body.get("awbNumber").is_none(), "no tracking, no awbNumber: {body}");
        let skipped: Vec<u64> = plan.skipped.iter().map(|s| s.return_line_id).collect();
        assert_eq!(skipped, [13, 14, 15]);
        assert!(plan.skipped[2].reason.contains("77"));
        // One receiving location for everything: one WMS return under the plain id.
        let one = ReturnRules { location: "RET-HUB".into(), ..rules() };
        let plan = plan_wms(&ret, Some(&order()), &shipped, &one);
        assert_eq!(plan.wms.len(), 1);
        assert_eq!((plan.wms[0].code.as_str(), plan.units.len()), ("945000954", 4));
    }

    #[test]
    fn reasons_fall_back_to_the_legacy_enum_and_carry_the_note_cut_to_255() {
        let mut l = line(1, 1, 1, 1);
        l.reason_name = None;
        l.reason_enum = Some("WRONG_ITEM".into());
        assert_eq!(reason_text(&l), "wrong item");
        l.note = "n".repeat(400);
        let text = reason_text(&l);
        assert!(text.starts_with("wrong item: nnn") && text.chars().count() == 255);
    }

    #[test]
    fn return_webhook_ids_are_read_from_every_documented_shape() {
        let approve = br#"{"id":123134564567890,"admin_graphql_api_id":"gid://shopify/Return/123134564567890","status":"open","order":{"id":4783296544821,"admin_graphql_api_id":"gid://shopify/Order/4783296544821"}}"#;
        assert_eq!(
            read_event(ReturnTopic::Approve, approve),
            Some(ReturnEvent { return_id: 123134564567890, order_id: Some(4783296544821) })
        );
        let update =
            br#"{"admin_graphql_api_id":"gid://shopify/Return/123134564567890","return_line_items":{"removals":[]}}"#;
        assert_eq!(
            read_event(ReturnTopic::Update, update),
            Some(ReturnEvent { return_id: 123134564567890, order_id: None })
        );
        let cancel = br#"{"id":123134564567890,"order_id":4783296544821,"status":"canceled"}"#;
        assert_eq!(read_event(ReturnTopic::Cancel, cancel).unwrap().order_id, Some(4783296544821));
        let delivery =
            br#"{"id":9080907654321,"return":{"admin_graphql_api_id":"gid://shopify/Return/123134564567890"}}"#;
        assert_eq!(read_event(ReturnTopic::Delivery, delivery).unwrap().return_id, 123134564567890);
        assert_eq!(read_event(ReturnTopic::Delivery, br#"{"id":9080907654321}"#), None);
        assert_eq!(read_event(ReturnTopic::Approve, b"{}"), None);
        assert_eq!(read_event(ReturnTopic::Approve, b"not json"), None);
    }

    #[test]
    fn a_return_of_an_order_never_sent_is_held_and_one_on_its_way_is_not() {
        assert!(held_because(None).unwrap().contains("unknown"));
        let mut o = order();
        assert_eq!(held_because(Some(&o)), None);
        o.wms_created = false;
        o.status = OrderStatus::Queued;
        assert_eq!(held_because(Some(&o)), None, "waits behind its creation");
        o.status = OrderStatus::Rejected;
        assert!(held_because(Some(&o)).unwrap().contains("rejected"));
        o.status = OrderStatus::Cancelled;
        assert!(held_because(Some(&o)).unwrap().contains("cancelled"));
    }

    #[test]
    fn an_acknowledgement_is_checked_whole_and_the_first_result_per_unit_is_final() {
        let mut rec = planned();
        let refused =
            |rec: &mut ReturnRecord, a: ReturnAckIn| acknowledge(rec, &a.return_order_code.clone(), &a).unwrap_err();
        let mut wrong_location = ack(&[("11-1", "IPOD2008RED", "PASS")]);
        wrong_location.location_code = "WH-9".into();
        assert!(matches!(refused(&mut rec, wrong_location), AckRefusal::Invalid(_)));
        let unknown =
            refused(&mut rec, ack(&[("11-1", "IPOD2008RED", "PASS"), ("99-1", "X", "PASS"), ("98-1", "X", "PASS")]));
        assert_eq!(unknown, AckRefusal::NotFound("not units of return 945000954: 99-1, 98-1".into()));
        assert!(matches!(refused(&mut rec, ack(&[("11-1", "OTHER", "PASS")])), AckRefusal::Invalid(_)));
        assert!(matches!(refused(&mut rec, ack(&[("11-1", "IPOD2008RED", "MAYBE")])), AckRefusal::Invalid(_)));
        assert_eq!(rec, planned(), "a refused call changes nothing");

        let a =
            ack(&[("11-1", "IPOD2008RED", "PASS"), ("11-2", "IPOD2008RED", "PASS"), ("12-1", "IPOD2008GREEN", "FAIL")]);
        let out = acknowledge(&mut rec, "945000954", &a).unwrap();
        assert_eq!((out.new.len(), out.repeated, rec.acks, rec.status), (3, 0, 1, ReturnStatus::Partial));
        assert!(rec.flagged(flag::QC_FAIL));
        let again = acknowledge(&mut rec, "945000954", &a).unwrap();
        assert_eq!((again.new.len(), again.repeated, rec.acks), (0, 3, 1), "a repeat changes nothing");
        let contradicting = refused(&mut rec, ack(&[("12-1", "IPOD2008GREEN", "PASS")]));
        assert!(matches!(contradicting, AckRefusal::Conflict(_)), "{contradicting:?}");
        let mut other = ack(&[("11-1", "IPOD2008RED", "PASS")]);
        other.return_order_code = "1".into();
        assert_eq!(
            refused(&mut rec, other),
            AckRefusal::NotFound("returnOrderCode 1 was never sent by channeld".into())
        );
    }

    #[test]
    fn a_step_restocks_passed_units_refunds_them_and_leaves_failed_ones() {
        let mut rec = planned();
        let a =
            ack(&[("11-1", "IPOD2008RED", "PASS"), ("11-2", "IPOD2008RED", "PASS"), ("12-1", "IPOD2008GREEN", "FAIL")]);
        acknowledge(&mut rec, "945000954", &a).unwrap();
        let plan = plan_process(&rec, 1, &shopify_return(), true, true);
        assert_eq!(
            plan.lines,
            vec![
                ProcessLine { return_line_id: 11, quantity: 2, dispositions: vec![(901, 2, true)], refund: 2 },
                ProcessLine { return_line_id: 12, quantity: 1, dispositions: vec![(902, 1, false)], refund: 0 },
            ]
        );
        assert_eq!((plan.units.len(), plan.already.len(), plan.processed_outside), (3, 0, false));
        let no_restock = plan_process(&rec, 1, &shopify_return(), false, false);
        assert!(no_restock.lines.iter().all(|l| l.dispositions.is_empty() && l.refund == 0));
    }

    #[test]
    fn a_step_shopify_already_shows_processed_is_done_without_a_second_call() {
        let mut rec = planned();
        acknowledge(&mut rec, "945000954", &ack(&[("11-1", "IPOD2008RED", "PASS"), ("11-2", "IPOD2008RED", "PASS")]))
            .unwrap();
        rec.step_in_flight = Some(1);
        let mut now = shopify_return();
        (now.lines[0].processed, now.lines[0].unprocessed) = (2, 0);
        let plan = plan_process(&rec, 1, &now, true, true);
        assert!(plan.is_empty());
        assert_eq!((plan.already.len(), plan.processed_outside), (2, false), "our own step, cut short");
        rec.step_in_flight = None;
        assert!(plan_process(&rec, 1, &now, true, true).processed_outside, "someone else processed them");
        // A unit removed from the return meanwhile is not processed.
        let mut fewer = shopify_return();
        (fewer.lines[0].quantity, fewer.lines[0].unprocessed) = (1, 1);
        let plan = plan_process(&rec, 1, &fewer, true, true);
        assert_eq!((plan.lines[0].quantity, plan.removed.len()), (1, 1));
    }

    #[test]
    fn a_partial_acknowledgement_processes_only_its_units_and_closing_waits_for_the_rest() {
        let mut rec = planned();
        acknowledge(&mut rec, "945000954", &ack(&[("11-1", "IPOD2008RED", "PASS")])).unwrap();
        let plan = plan_process(&rec, 1, &shopify_return(), true, true);
        assert_eq!(plan.lines.len(), 1);
        assert_eq!(plan.lines[0].quantity, 1);
        for i in plan.units {
            rec.units[i].processed = true;
        }
        rec.settle();
        assert_eq!(rec.status, ReturnStatus::Partial);
        let mut now = shopify_return();
        (now.lines[0].processed, now.lines[0].unprocessed) = (1, 1);
        assert!(!ready_to_close(&rec, &now));
        acknowledge(&mut rec, "945000954", &ack(&[("11-2", "IPOD2008RED", "PASS"), ("12-1", "IPOD2008GREEN", "PASS")]))
            .unwrap();
        let plan = plan_process(&rec, 2, &now, true, true);
        assert_eq!(plan.units.len(), 2);
        for i in plan.units {
            rec.units[i].processed = true;
        }
        rec.settle();
        assert_eq!(rec.status, ReturnStatus::Done);
        for l in &mut now.lines {
            (l.processed, l.unprocessed) = (l.quantity, 0);
        }
        assert!(ready_to_close(&rec, &now));
        now.status = "CLOSED".into();
        assert!(!ready_to_close(&rec, &now));
    }
}
