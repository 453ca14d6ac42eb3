//! The outbox's tracking call (CONTRACT.md §10.3): one `fulfillmentEventCreate` per planned step
//! of a shipment, on the fulfillment channeld created for it. Never twice, although Shopify takes
//! no idempotency key for it:
//! - the step is stored before anything is sent (it is what the outbox entry names), and marked
//!   in flight durably just before its call;
//! - a step found in flight (its answer lost to a timeout or a crash) reads the fulfillment's
//!   events first, and an event already there with its status and time counts as this step.
//!
//! A shipment fulfilled before channeld kept fulfillment ids gets its id from the order's
//! fulfillments (matched by tracking number), read once and kept for every shipment of the order.

use std::sync::Arc;

use super::step::Step;
use crate::app::{now_ms, App};
use crate::flows::tracking::{ShopifyStep, StepState, TrackingRecord};
use crate::remote::CallError;
use crate::store::StoreError;

/// Sends step `step` of the shipment's tracking record, unless it is done.
pub(super) async fn fulfillment_event(app: &Arc<App>, order_id: u64, shipment_id: u64, step: u32) -> Step {
    let rec = match app.store.call(move |s| s.tracking(order_id, shipment_id)).await {
        Ok(Some(rec)) => rec,
        Ok(None) => return Step::Dropped(format!("shipment {shipment_id} has no tracking record")),
        Err(e) => return Step::from(e),
    };
    let Some(planned) = rec.shopify.get(step as usize).cloned() else {
        return Step::Dropped(format!("shipment {shipment_id} has no fulfillment event {step}"));
    };
    match &planned.state {
        StepState::Done => return Step::Done(|_| {}),
        StepState::Dropped(why) => return Step::Dropped(why.clone()),
        StepState::Queued | StepState::InFlight => {}
    }
    if !app.cfg.tracking.shopify_events {
        let why = "tracking.shopify_events = false: no fulfillment events are sent".to_string();
        return match mark(app, &rec, step, StepState::Dropped(why.clone())).await {
            Ok(()) => Step::Dropped(why),
            Err(e) => Step::from(e),
        };
    }
    let fulfillment = match rec.fulfillment_id.clone() {
        Some(id) => id,
        None => match find_fulfillment(app, &rec).await {
            Ok(id) => id,
            Err(step) => return step,
        },
    };
    if planned.state == StepState::InFlight {
        match app.shopify.fulfillment_events(&fulfillment).await {
            Ok(Some(events)) if already_there(&events, &planned) => {
                tracing::info!(order = order_id, shipment = shipment_id, status = %planned.status, "the fulfillment event was already on Shopify: not sent again");
                return finish(app, &rec, step).await;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Step::Failed(CallError::Refused {
                    message: format!("Shopify does not know fulfillment {fulfillment}"),
                })
            }
            Err(e) => return Step::Failed(e),
        }
    } else {
        // Durably in flight before the call: a call cut short is looked for before another.
        let marked = mark(app, &rec, step, StepState::InFlight).await;
        if let Err(e) = marked {
            return Step::from(e);
        }
        if let Err(e) = app.store.sync_state().await {
            return Step::from(e);
        }
    }
    match app.shopify.create_fulfillment_event(&fulfillment, &planned).await {
        Ok(()) => finish(app, &rec, step).await,
        Err(e) => Step::Failed(e),
    }
}

/// Records the step done.
async fn finish(app: &App, rec: &TrackingRecord, step: u32) -> Step {
    match mark(app, rec, step, StepState::Done).await {
        Ok(()) => Step::Done(|_| {}),
        Err(e) => Step::from(e),
    }
}

async fn mark(app: &App, rec: &TrackingRecord, step: u32, state: StepState) -> Result<(), StoreError> {
    let (order_id, shipment_id) = (rec.order_id, rec.shipment_id);
    app.store
        .call(move |s| {
            s.update_tracking(order_id, shipment_id, now_ms(), |r| {
                if let Some(planned) = r.shopify.get_mut(step as usize) {
                    planned.state = state.clone();
                }
            })
        })
        .await
        .map(drop)
}

/// Whether Shopify shows an event with the step's status that happened at the step's time (as an
/// instant, to the second: Shopify may not keep the milliseconds sent).
fn already_there(events: &[(String, String)], step: &ShopifyStep) -> bool {
    let second = |t: &str| crate::flows::parse_time(t).map(|t| t.timestamp());
    let at = second(&step.happened_at);
    at.is_some() && events.iter().any(|(status, happened)| *status == step.status && second(happened) == at)
}

/// The fulfillment of a shipment fulfilled before channeld kept its id: the order's fulfillments
/// are read once, and every shipment of the order whose AWB one of them carries keeps its id.
async fn find_fulfillment(app: &App, rec: &TrackingRecord) -> Result<String, Step> {
    let (order_id, shipment_id, awb) = (rec.order_id, rec.shipment_id, rec.awb.clone());
    let fulfillments = match app.shopify.order_fulfillments(order_id).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(Step::Failed(CallError::Refused { message: format!("Shopify does not know order {order_id}") }))
        }
        Err(e) => return Err(Step::Failed(e)),
    };
    let shipments = app.store.call(move |s| s.order_shipments(order_id)).await.map_err(Step::from)?;
    let mut found = None;
    for s in shipments.into_iter().filter(|s| !s.awb.is_empty()) {
        let Some((id, _)) = fulfillments.iter().find(|(_, numbers)| numbers.contains(&s.awb)) else { continue };
        if s.shipment_id == shipment_id {
            found = Some(id.clone());
        }
        let id = id.clone();
        app.store.call(move |store| store.note_fulfillment(&s, &id, now_ms())).await.map_err(Step::from)?;
    }
    found.ok_or_else(|| {
        Step::Failed(CallError::Refused {
            message: format!(
                "no fulfillment of order {order_id} on Shopify carries AWB {awb}: channeld sends fulfillment events only \
                 to the fulfillments it made"
            ),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_on_shopify_is_this_step_when_status_and_instant_agree_to_the_second() {
        let step = ShopifyStep {
            status: "ATTEMPTED_DELIVERY".into(),
            happened_at: "2016-07-12T11:42:36.710Z".into(),
            message: String::new(),
            city: String::new(),
            state: StepState::InFlight,
        };
        let on = |s: &str, t: &str| vec![(s.to_string(), t.to_string())];
        assert!(already_there(&on("ATTEMPTED_DELIVERY", "2016-07-12T11:42:36Z"), &step));
        assert!(already_there(&on("ATTEMPTED_DELIVERY", "2016-07-12T17:12:36.710+05:30"), &step));
        assert!(!already_there(&on("ATTEMPTED_DELIVERY", "2016-07-12T11:42:37Z"), &step));
        assert!(!already_there(&on("DELIVERED", "2016-07-12T11:42:36Z"), &step));
    }
}
