//! The operations the HTTP handlers, the admin commands and the workers call. Handlers parse,
//! call one of these, and answer; the business rules they apply live in `flows`.
//!
//! Every inbound event that is acknowledged goes through the journal ([`Store::submit`]): its
//! kind's `apply_*` function changes the state once the record is on stable storage. A replay at
//! start-up ([`open`]) runs the very same function on each record the state had not made durable,
//! so a record is applied the same way whether it arrives now or after a power cut.
//!
//! - [`orders`]: Shopify webhooks, `orders retry`;
//! - [`wms`]: the `/wms/*` calls (inventory, seller cancellation, pack, handover, lookups);
//! - [`shipments`]: booking with the courier, labels and invoices;
//! - [`returns`]: the return webhooks, the WMS's QC acknowledgement, `returns release` / `retry`;
//! - [`tracking`]: the couriers' status webhooks.

pub mod orders;
pub mod returns;
pub mod shipments;
pub mod tracking;
pub mod wms;

use std::sync::Arc;

use crate::app::App;
use crate::config::Config;
use crate::store::{Inbound, Store, StoreError, WmsCall};

/// Why a service call did not do what was asked: a refusal the caller can act on, or a store
/// that cannot take it now.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Something named in the request is unknown.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or asks for what cannot be done.
    #[error("{0}")]
    Invalid(String),
    /// The request clashes with what is stored (a `shipmentId` another order already uses).
    #[error("{0}")]
    Conflict(String),
    /// Not now (a courier that cannot be reached, a booking in progress): ask again later. The
    /// message is meant for the caller and carries no internal detail.
    #[error("{0}")]
    Later(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds the application on an open store and applies every journal record the store had not
/// made durable (after a crash or a power cut), before anything is served.
pub fn open(cfg: Config, store: Store) -> anyhow::Result<Arc<App>> {
    let app = App::new(cfg, store)?;
    app.store.replay(|_, seq, event| apply_again(&app, seq, event))?;
    Ok(app)
}

/// Replaces every listing (already validated, including against Shopify), durably.
pub async fn replace_listings(
    app: &App,
    listings: Vec<crate::flows::listings::Listing>,
) -> Result<crate::store::ListingsChange, StoreError> {
    let event = Inbound::Listings { received_ms: crate::app::now_ms(), listings };
    app.store
        .submit(event, |store, _, event| match event {
            Inbound::Listings { listings, .. } => store.replace_listings(listings),
            _ => Err(StoreError::NotFound("not a listings record".into())),
        })
        .await
}

/// A journal record applied again by a replay: the same function the live request ran.
fn apply_again(app: &App, seq: u64, event: &Inbound) -> Result<(), StoreError> {
    match event {
        Inbound::Webhook { topic, event_key, received_ms, body } => {
            match crate::flows::returns::ReturnTopic::parse(topic) {
                Some(topic) => returns::apply_again(app, topic, event_key.as_deref(), body, *received_ms),
                None => orders::apply_again(app, event),
            }
        }
        Inbound::Wms { call: WmsCall::ReturnAck, received_ms, body } => {
            returns::apply_ack_again(app, body, *received_ms)
        }
        Inbound::Wms { call, received_ms, body } => wms::apply_again(app, *call, body, *received_ms),
        Inbound::Listings { listings, .. } => app.store.replace_listings(listings).map(drop),
        Inbound::Sending { .. } => orders::apply_sending(app, event),
        Inbound::Legacy { .. } => Ok(()),
        Inbound::Tracking { courier, received_ms, body } => {
            tracking::apply_again(app, seq, courier, body, *received_ms)
        }
    }
}
