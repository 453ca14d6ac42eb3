//! The `shipments` commands (CONTRACT.md §10.5) as the admin socket and the CLI run them, and the
//! views they print: a shipment with its tracking timeline (every courier event, applied or not,
//! and why) and the Shopify fulfillment events made of it; and an order's shipments with their last
//! status for `orders show`.

use serde::{Deserialize, Serialize};

use super::{time, to_json, Page, Response};
use crate::app::App;
use crate::flows::shipment::{ShipmentRecord, ShipmentState};
use crate::flows::tracking::{status_name, Courier, ShipmentStatus, StepState, TimelineEntry, TrackingRecord};
use crate::store::StoreError;

/// A shipment as `shipments list` / `shipments show` print it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipmentView {
    pub shipment_id: u64,
    pub order_id: u64,
    pub order_name: String,
    pub courier: String,
    pub awb: String,
    pub transporter: String,
    pub location_code: String,
    pub units: u32,
    /// The booking: `booking`, `booked`, or `failed: {why}`.
    pub booking: String,
    /// The tracking status (`None` until booked).
    pub status: Option<ShipmentStatus>,
    /// The last event applied, in words.
    pub last_event: Option<String>,
    pub fulfillment_id: Option<String>,
    pub ndr_attempts: u32,
    pub ndr_reason: String,
    pub flags: Vec<String>,
    /// The courier's label, when it sent one.
    #[serde(default)]
    pub label_url: String,
    /// The invoice: the courier's (Shiprocket), else the one the pack call sent.
    #[serde(default)]
    pub invoice_url: String,
    /// Every event received, oldest first (`show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<EventView>,
    /// Older events no longer kept.
    #[serde(default)]
    pub dropped: u32,
    /// The Shopify fulfillment events made of them (`show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shopify_events: Vec<ShopifyEventView>,
    /// When the pack call created it.
    #[serde(default)]
    pub created: String,
    pub changed: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventView {
    pub received: String,
    pub code: u32,
    pub description: String,
    pub status: String,
    pub location: String,
    /// As the courier sent it.
    pub timestamp: String,
    /// `applied`, `duplicate`, `stale` or `ignored`.
    pub outcome: String,
    pub note: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ndr_reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShopifyEventView {
    pub status: String,
    pub happened_at: String,
    pub message: String,
    pub city: String,
    /// `queued`, `in flight`, `done`, or `dropped: {why}`.
    pub state: String,
}

impl ShipmentView {
    /// The tracking status, else the booking's state.
    pub fn status_text(&self) -> String {
        self.status.map_or_else(|| self.booking.clone(), |st| st.as_str().to_string())
    }
}

/// An order's shipment in `orders show`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipmentSummary {
    pub shipment_id: u64,
    pub courier: String,
    pub awb: String,
    /// The tracking status, else the booking's state.
    pub status: String,
    pub last_event: Option<String>,
    pub flags: Vec<String>,
}

pub(super) fn list(app: &App, status: Option<ShipmentStatus>, before: Option<&str>, limit: usize) -> Response {
    let before = match before {
        Some(c) => Some(super::parse_pair(c).ok_or_else(|| format!("--before {c:?} is not a page cursor"))?),
        None => None,
    };
    let err = |e: StoreError| e.to_string();
    let rows = app.store.shipments_page(status, before, limit + 1).map_err(err)?;
    let page = Page::of(rows, limit, |s| format!("{}:{}", s.order_id, s.shipment_id));
    let items = page.items.iter().map(|s| read_view(app, s, false)).collect::<Result<Vec<_>, _>>().map_err(err)?;
    to_json(&Page { items, next: page.next })
}

pub(super) fn show(app: &App, which: &str) -> Response {
    let s = find(app, which)?;
    to_json(&read_view(app, &s, true).map_err(|e| e.to_string())?)
}

/// A shipment's view with its tracking record; the status entry is read only for a shipment that
/// has no record yet (the record's status is the entry's: they are written together).
fn read_view(app: &App, s: &ShipmentRecord, whole: bool) -> Result<ShipmentView, StoreError> {
    let tracking = app.store.tracking(s.order_id, s.shipment_id)?;
    let status = match &tracking {
        Some(t) => Some(t.status),
        None => app.store.shipment_status(s.order_id, s.shipment_id)?,
    };
    Ok(view(s, status, tracking.as_ref(), whole))
}

/// The shipment an operator names: the WMS's `shipmentId`, else an AWB.
fn find(app: &App, which: &str) -> Result<ShipmentRecord, String> {
    let which = which.trim();
    let err = |e: StoreError| e.to_string();
    if let Ok(id) = which.parse::<u64>() {
        let orders = app.store.shipment_orders(id).map_err(err)?;
        if orders.len() > 1 {
            let list: Vec<String> = orders.iter().map(u64::to_string).collect();
            return Err(format!("shipment id {id} belongs to orders {}: name it by its AWB", list.join(", ")));
        }
        if let Some(order) = orders.first() {
            if let Some(s) = app.store.shipment(*order, id).map_err(err)? {
                return Ok(s);
            }
        }
    }
    for courier in Courier::ALL {
        if let Some((order, id)) = app.store.shipment_by_awb(courier.as_str(), which).map_err(err)? {
            if let Some(s) = app.store.shipment(order, id).map_err(err)? {
                return Ok(s);
            }
        }
    }
    Err(format!("no shipment {which} is stored (a WMS shipmentId or an AWB)"))
}

/// An order's shipments, summed up (a shipment whose tracking cannot be read shows its booking).
pub(super) fn summaries(app: &App, shipments: &[ShipmentRecord]) -> Vec<ShipmentSummary> {
    shipments
        .iter()
        .map(|s| {
            let v = read_view(app, s, false).unwrap_or_else(|_| view(s, None, None, false));
            ShipmentSummary {
                status: v.status_text(),
                shipment_id: v.shipment_id,
                courier: v.courier,
                awb: v.awb,
                last_event: v.last_event,
                flags: v.flags,
            }
        })
        .collect()
}

fn booking(s: &ShipmentRecord) -> String {
    match &s.state {
        ShipmentState::Booking => "booking".into(),
        ShipmentState::Booked => "booked".into(),
        ShipmentState::Failed(why) => format!("failed: {why}"),
    }
}

fn event_words(e: &TimelineEntry) -> String {
    let what = status_name(e.code, &e.description);
    let place = if e.location.is_empty() { String::new() } else { format!(" ({})", e.location) };
    format!("{what} at {}{place}", e.timestamp)
}

fn view(s: &ShipmentRecord, status: Option<ShipmentStatus>, t: Option<&TrackingRecord>, whole: bool) -> ShipmentView {
    let timeline =
        if whole { t.map(|t| t.timeline.iter().map(event_view).collect()).unwrap_or_default() } else { vec![] };
    let shopify_events =
        if whole { t.map(|t| t.shopify.iter().map(step_view).collect()).unwrap_or_default() } else { vec![] };
    ShipmentView {
        shipment_id: s.shipment_id,
        order_id: s.order_id,
        order_name: s.order_name.clone(),
        courier: s.provider.clone(),
        awb: s.awb.clone(),
        transporter: s.transporter.clone(),
        location_code: s.location_code.clone(),
        units: s.lines.iter().map(|l| l.quantity).sum(),
        booking: booking(s),
        status: t.map(|t| t.status).or(status),
        last_event: t.and_then(TrackingRecord::last_applied).map(event_words),
        fulfillment_id: t.and_then(|t| t.fulfillment_id.clone()),
        ndr_attempts: t.map_or(0, |t| t.ndr_attempts),
        ndr_reason: t.map(|t| t.ndr_reason.clone()).unwrap_or_default(),
        flags: t.map(|t| t.flags.clone()).unwrap_or_default(),
        label_url: s.label_url.clone(),
        invoice_url: match (&s.invoice_url, &s.invoice) {
            (url, _) if !url.is_empty() => url.clone(),
            (_, Some(i)) => i.url.clone(),
            _ => String::new(),
        },
        timeline,
        dropped: t.map_or(0, |t| t.dropped),
        shopify_events,
        created: time(s.created_ms),
        changed: time(t.map_or(s.updated_ms, |t| t.changed_ms.max(s.updated_ms))),
    }
}

fn event_view(e: &TimelineEntry) -> EventView {
    EventView {
        received: time(e.received_ms),
        code: e.code,
        description: e.description.clone(),
        status: e.status.clone(),
        location: e.location.clone(),
        timestamp: e.timestamp.clone(),
        outcome: e.outcome.as_str().into(),
        note: e.note.clone(),
        ndr_reason: e.ndr_reason.clone(),
    }
}

fn step_view(s: &crate::flows::tracking::ShopifyStep) -> ShopifyEventView {
    ShopifyEventView {
        status: s.status.clone(),
        happened_at: s.happened_at.clone(),
        message: s.message.clone(),
        city: s.city.clone(),
        state: match &s.state {
            StepState::Queued => "queued".into(),
            StepState::InFlight => "in flight".into(),
            StepState::Done => "done".into(),
            StepState::Dropped(why) => format!("dropped: {why}"),
        },
    }
}
