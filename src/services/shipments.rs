//! Booking shipments with the configured courier, and fetching labels and invoices.
//!
//! A pack call records the shipment (state `Booking`) durably before anything else, then the
//! booking runs in its own task: the caller waits for it at most `shipping.answer_within_seconds`
//! (Increff gives up at 45 s) and otherwise answers "in progress"; the booking finishes in the
//! background and the repeated call gets its result. A booking's outcome is made durable before it
//! is answered. After a crash, shipments still `Booking` are booked again at start: Clickpost
//! recognises its reference number (status 323) and Shiprocket's AWB assignment is read back, so
//! nothing is booked twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::app::{now_ms, App};
use crate::config::{Location, Provider};
use crate::courier::clickpost::Booking;
use crate::flows::model::Task;
use crate::flows::shipment::{clickpost_request, transporter, Booked, ShipmentRecord, ShipmentState};
use crate::remote::CallError;
use crate::store::StoreError;

/// Starts the booking of a stored shipment (or joins the one under way) and waits for it at most
/// `wait`. `None` when it is still running. Bookings under way are known by shipment id: no two
/// orders' shipments share one (a pack call reusing another order's id is refused).
pub async fn book(app: &Arc<App>, order_id: u64, shipment_id: u64, wait: Duration) -> Option<Booked> {
    let mut rx = {
        let mut running = app.bookings.lock().await;
        match running.get(&shipment_id) {
            Some(rx) => rx.clone(),
            None => {
                let (tx, rx) = watch::channel(None);
                running.insert(shipment_id, rx.clone());
                let app = app.clone();
                tokio::spawn(async move {
                    let outcome = run(&app, order_id, shipment_id).await;
                    app.bookings.lock().await.remove(&shipment_id);
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

/// Books every shipment a stop or a crash left `Booking` (at start-up).
pub async fn resume_bookings(app: &Arc<App>) -> Result<(), StoreError> {
    for s in app.store.call(|s| s.shipments_booking()).await? {
        tracing::info!(shipment = s.shipment_id, "resuming an interrupted booking");
        let app = app.clone();
        tokio::spawn(async move { book(&app, s.order_id, s.shipment_id, Duration::ZERO).await });
    }
    Ok(())
}

async fn run(app: &App, order_id: u64, shipment_id: u64) -> Booked {
    let outcome = match try_book(app, order_id, shipment_id).await {
        Ok(s) => Booked::Done(Box::new(s)),
        Err(CallError::Refused { message }) => Booked::Refused(message),
        Err(e) => Booked::Later(e.to_string()),
    };
    if let Booked::Later(why) = &outcome {
        // The WMS hears only "try again" (no internal text leaves the daemon); the operator reads
        // the cause here, without credentials (the clients strip URLs and scrub secrets).
        tracing::warn!(shipment = shipment_id, error = %why, "the courier could not book the shipment now; the WMS's next pack call tries again");
    }
    if let Booked::Refused(message) = &outcome {
        tracing::warn!(shipment = shipment_id, reason = %message, "courier refused the booking");
        let why = message.clone();
        let recorded = app
            .store
            .call(move |store| {
                let Some(mut s) = store.shipment(order_id, shipment_id)? else { return Ok(()) };
                s.state = ShipmentState::Failed(why);
                s.updated_ms = now_ms();
                store.save_shipment(&s, &[], now_ms())
            })
            .await;
        if let Err(e) = recorded.and(app.store.sync_state().await) {
            tracing::warn!(shipment = shipment_id, error = %e, "could not record the courier's refusal");
        }
    }
    outcome
}

async fn try_book(app: &App, order_id: u64, shipment_id: u64) -> Result<ShipmentRecord, CallError> {
    let store_err = |e: StoreError| CallError::transient(e.to_string());
    let (s, rec) = app
        .store
        .call(move |store| Ok((store.shipment(order_id, shipment_id)?, store.order(order_id)?)))
        .await
        .map_err(store_err)?;
    let mut s = s.ok_or_else(|| CallError::Refused { message: format!("shipment {shipment_id} is not stored") })?;
    if s.state == ShipmentState::Booked {
        return Ok(s);
    }
    let rec = rec.ok_or_else(|| CallError::Refused { message: format!("order {} is not stored", s.order_id) })?;
    let follow_ups = match app.cfg.shipping.provider {
        Provider::Clickpost => {
            let pickup = pickup_location(app, &s.location_code);
            let c = &app.cfg.clickpost;
            let body = clickpost_request(&s, &rec, &pickup, c.courier_partner, &c.account_code);
            let b = app.couriers.clickpost.create_order(&body, &s.reference()).await?;
            let transporter = clickpost_transporter(app, &b, &s.transporter).await;
            (s.awb, s.transporter, s.label_url) = (b.waybill, transporter, b.label_url);
            // Clickpost does not tell Shopify: channeld acknowledges with a fulfillment.
            vec![Task::ShopifyFulfill { shipment_id }]
        }
        Provider::Shiprocket => {
            let sr = &app.couriers.shiprocket;
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
    let saved = s.clone();
    let queued = !follow_ups.is_empty();
    app.store.call(move |store| store.save_shipment(&saved, &follow_ups, now_ms())).await.map_err(store_err)?;
    app.store.sync_state().await.map_err(store_err)?;
    if queued {
        app.outbox_wake.notify_one();
    }
    tracing::info!(shipment = shipment_id, order = s.order_id, awb = %s.awb, "shipment booked");
    Ok(s)
}

/// The transporter of a Clickpost booking ([`transporter`]): the name Clickpost gave, remembered
/// for its courier partner; else the one stored at the shipment's first booking; else the one
/// learned for that courier partner from an earlier booking.
async fn clickpost_transporter(app: &App, b: &Booking, stored: &str) -> String {
    let (partner, name) = (b.courier_id, b.courier.clone());
    let store = &app.store;
    let learned = match partner {
        Some(id) if !name.trim().is_empty() => {
            if let Err(e) = store.call(move |s| s.learn_courier_name("clickpost", id, &name)).await {
                tracing::warn!(error = %e, "could not remember a courier partner's name");
            }
            None
        }
        Some(id) if stored.trim().is_empty() => {
            store.call(move |s| s.courier_name("clickpost", id)).await.ok().flatten()
        }
        _ => None,
    };
    let chosen = transporter(&b.courier, stored, learned);
    if chosen.is_empty() {
        tracing::warn!(awb = %b.waybill, partner = ?b.courier_id, "Clickpost named no courier for this booking and none is known");
    }
    chosen
}

/// The pickup details of the shipment's location (by WMS location code), else the first location.
fn pickup_location(app: &App, code: &str) -> Location {
    let locs = &app.cfg.locations;
    locs.iter().find(|l| l.wms_location_code == code).or_else(|| locs.first()).cloned().unwrap_or_else(|| {
        toml::from_str("shopify_location_id = 0\nwms_location_code = \"\"").expect("a constant location parses")
    })
}

async fn persist_shiprocket_token(app: &App) {
    if let Some((token, at)) = app.couriers.shiprocket.token_snapshot().await {
        let token = token.expose().to_string();
        if let Err(e) = app.store.call(move |s| s.set_courier_token("shiprocket", &token, at)).await {
            tracing::warn!(error = %e, "could not keep the Shiprocket token");
        }
    }
}

/// The label-retrieval job: labels (and Shiprocket invoices) not available at booking time.
pub async fn retrieve_labels(app: &App) -> anyhow::Result<String> {
    let (mut fetched, mut missing) = (0, 0);
    let unfinished = app.store.call(|s| s.unfinished_shipments()).await?;
    for mut s in unfinished.into_iter().filter(|s| s.state == ShipmentState::Booked) {
        let shiprocket = s.provider == "shiprocket";
        let needs_label = s.label_url.is_empty();
        let needs_invoice = shiprocket && s.invoice_url.is_empty();
        if !needs_label && !needs_invoice {
            continue;
        }
        if needs_label {
            let label = if shiprocket {
                app.couriers.shiprocket.generate_label(&s.courier_shipment_id).await
            } else {
                app.couriers.clickpost.fetch_label(&s.awb).await
            };
            s.label_url = label.ok().flatten().unwrap_or_default();
        }
        if needs_invoice {
            s.invoice_url =
                app.couriers.shiprocket.print_invoice(&s.courier_order_id).await.ok().flatten().unwrap_or_default();
        }
        if s.label_url.is_empty() || (shiprocket && s.invoice_url.is_empty()) {
            missing += 1;
        } else {
            fetched += 1;
        }
        s.updated_ms = now_ms();
        app.store.call(move |store| store.save_shipment(&s, &[], now_ms())).await?;
    }
    app.store.sync_state().await?;
    Ok(format!("{fetched} shipment(s) completed, {missing} still waiting for the courier"))
}
