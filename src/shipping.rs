//! Booking shipments with the configured courier, and fetching labels and invoices.
//!
//! A pack call stores the shipment (state `Booking`) before anything else, then the booking runs
//! in its own task: the HTTP handler waits for it at most `shipping.answer_within_seconds` (Increff
//! gives up at 45 s) and otherwise answers "in progress"; the booking finishes in the background and
//! the repeated call gets its result. After a crash, shipments still `Booking` are booked again at
//! start: Clickpost recognises its reference number (status 323) and Shiprocket's AWB assignment
//! is read back, so nothing is booked twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};

use crate::app::{now_ms, App};
use crate::config::{Location, Provider};
use crate::courier::clickpost::ClickpostClient;
use crate::courier::shiprocket::ShiprocketClient;
use crate::flows::model::Task;
use crate::flows::shipment::{clickpost_request, ShipmentRecord, ShipmentState};
use crate::remote::CallError;

/// How a booking ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Booked {
    Done(Box<ShipmentRecord>),
    /// The courier refused: its message goes back to the WMS.
    Refused(String),
    /// Not now (courier down, throttled, still processing): the WMS should call again.
    Later(String),
}

/// The couriers and the bookings under way.
pub struct Shipping {
    pub clickpost: ClickpostClient,
    pub shiprocket: ShiprocketClient,
    running: Mutex<HashMap<u64, watch::Receiver<Option<Booked>>>>,
    /// Held by a pack call while it checks the order's shipments and records its own.
    pub recording: tokio::sync::Mutex<()>,
}

impl Shipping {
    pub fn new(cfg: &crate::config::Config) -> anyhow::Result<Self> {
        Ok(Self {
            clickpost: ClickpostClient::new(&cfg.clickpost)?,
            shiprocket: ShiprocketClient::new(&cfg.shiprocket)?,
            running: Mutex::new(HashMap::new()),
            recording: tokio::sync::Mutex::new(()),
        })
    }
}

/// Starts the booking of a stored shipment (or joins the one under way) and waits for it at most
/// `wait`. `None` when it is still running.
pub async fn book(app: &Arc<App>, shipment_id: u64, wait: Duration) -> Option<Booked> {
    let mut rx = {
        let mut running = app.shipping.running.lock().await;
        match running.get(&shipment_id) {
            Some(rx) => rx.clone(),
            None => {
                let (tx, rx) = watch::channel(None);
                running.insert(shipment_id, rx.clone());
                let app = app.clone();
                tokio::spawn(async move {
                    let outcome = run(&app, shipment_id).await;
                    app.shipping.running.lock().await.remove(&shipment_id);
                    let _ = tx.send(Some(outcome));
                });
                rx
            }
        }
    };
    let waited = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
    match waited {
        Ok(Ok(outcome)) => outcome.clone(),
        _ => None,
    }
}

async fn run(app: &App, shipment_id: u64) -> Booked {
    let outcome = match try_book(app, shipment_id).await {
        Ok(s) => Booked::Done(Box::new(s)),
        Err(CallError::Refused { message }) => Booked::Refused(message),
        Err(e) => Booked::Later(e.to_string()),
    };
    if let Booked::Refused(message) = &outcome {
        tracing::warn!(shipment = shipment_id, reason = %message, "courier refused the booking");
        if let Ok(Some(mut s)) = app.store.shipment(shipment_id) {
            s.state = ShipmentState::Failed(message.clone());
            s.updated_ms = now_ms();
            let _ = app.store.save_shipment(&s, &[], now_ms());
        }
    }
    let _ = app.store.durable().await;
    outcome
}

async fn try_book(app: &App, shipment_id: u64) -> Result<ShipmentRecord, CallError> {
    let store_err = |e: crate::store::StoreError| CallError::transient(e.to_string());
    let mut s = app
        .store
        .shipment(shipment_id)
        .map_err(store_err)?
        .ok_or_else(|| CallError::Refused { message: format!("shipment {shipment_id} is not stored") })?;
    if s.state == ShipmentState::Booked {
        return Ok(s);
    }
    let rec = app
        .store
        .order(s.order_id)
        .map_err(store_err)?
        .ok_or_else(|| CallError::Refused { message: format!("order {} is not stored", s.order_id) })?;
    let follow_ups = match app.cfg.shipping.provider {
        Provider::Clickpost => {
            let pickup = pickup_location(app, &s.location_code);
            let c = &app.cfg.clickpost;
            let body = clickpost_request(&s, &rec, &pickup, c.courier_partner, &c.account_code);
            let b = app.shipping.clickpost.create_order(&body, &s.reference()).await?;
            (s.awb, s.transporter, s.label_url) = (b.waybill, b.courier, b.label_url);
            // Clickpost does not tell Shopify: channeld acknowledges with a fulfillment.
            vec![Task::ShopifyFulfill { shipment_id }]
        }
        Provider::Shiprocket => {
            let sr = &app.shipping.shiprocket;
            let order = sr.find_order(&s.order_name, s.order_id).await?;
            let (awb, courier) = sr.assign_awb(&order, &s.order_name, s.order_id).await?;
            (s.awb, s.transporter) = (awb, courier);
            (s.courier_order_id, s.courier_shipment_id) = (order.order_id.clone(), order.shipment_id.clone());
            // Label and invoice may not be ready yet: the label-retrieval job fetches what is missing.
            s.label_url = sr.generate_label(&order.shipment_id).await.ok().flatten().unwrap_or_default();
            s.invoice_url = sr.print_invoice(&order.order_id).await.ok().flatten().unwrap_or_default();
            persist_shiprocket_token(app).await;
            Vec::new()
        }
        Provider::None => {
            return Err(CallError::Refused { message: "shipping.provider = none: channeld books no shipments".into() })
        }
    };
    s.state = ShipmentState::Booked;
    s.updated_ms = now_ms();
    app.store.save_shipment(&s, &follow_ups, now_ms()).map_err(store_err)?;
    app.store.durable().await.map_err(store_err)?;
    if !follow_ups.is_empty() {
        app.outbox_wake.notify_one();
    }
    tracing::info!(shipment = shipment_id, order = s.order_id, awb = %s.awb, "shipment booked");
    Ok(s)
}

/// The pickup details of the shipment's location (by WMS location code), else the first location.
fn pickup_location(app: &App, code: &str) -> Location {
    let locs = &app.cfg.locations;
    locs.iter().find(|l| l.wms_location_code == code).or_else(|| locs.first()).cloned().unwrap_or_else(|| {
        toml::from_str("shopify_location_id = 0\nwms_location_code = \"\"").expect("a constant location parses")
    })
}

async fn persist_shiprocket_token(app: &App) {
    if let Some((token, at)) = app.shipping.shiprocket.token_snapshot().await {
        if let Err(e) = app.store.set_courier_token("shiprocket", token.expose(), at) {
            tracing::warn!(error = %e, "could not keep the Shiprocket token");
        }
    }
}

/// The label-retrieval job: labels (and Shiprocket invoices) not available at booking time.
pub async fn retrieve_labels(app: &App) -> anyhow::Result<String> {
    let (mut fetched, mut missing) = (0, 0);
    for mut s in app.store.unfinished_shipments()?.into_iter().filter(|s| s.state == ShipmentState::Booked) {
        let shiprocket = s.provider == "shiprocket";
        let needs_label = s.label_url.is_empty();
        let needs_invoice = shiprocket && s.invoice_url.is_empty();
        if !needs_label && !needs_invoice {
            continue;
        }
        if needs_label {
            let label = if shiprocket {
                app.shipping.shiprocket.generate_label(&s.courier_shipment_id).await
            } else {
                app.shipping.clickpost.fetch_label(&s.awb).await
            };
            s.label_url = label.ok().flatten().unwrap_or_default();
        }
        if needs_invoice {
            s.invoice_url =
                app.shipping.shiprocket.print_invoice(&s.courier_order_id).await.ok().flatten().unwrap_or_default();
        }
        if s.label_url.is_empty() || (shiprocket && s.invoice_url.is_empty()) {
            missing += 1;
        } else {
            fetched += 1;
        }
        s.updated_ms = now_ms();
        app.store.save_shipment(&s, &[], now_ms())?;
    }
    app.store.flush()?;
    Ok(format!("{fetched} shipment(s) completed, {missing} still waiting for the courier"))
}
