//! How one run of an outbox entry ended ([`Step`]): what `deliver` records for it. Its own module
//! so that the per-domain runners (`returns`, `tracking`) and `deliver`, which dispatches to them,
//! all name it without importing each other.

use crate::flows::model::{OrderRecord, Task};
use crate::remote::CallError;

/// The end of one run of an entry.
pub(super) enum Step {
    /// Delivered: apply this to the order and remove the entry.
    Done(fn(&mut OrderRecord)),
    /// Delivered, and this work follows (queued behind the order's other calls).
    DoneThen(Vec<Task>),
    /// Nothing to send any more (the reason is logged); the entry is removed.
    Dropped(String),
    /// The order is rejected at delivery time (e.g. routed to an unmapped location).
    Reject(String),
    /// The WMS refused the creation: the entry is dead-lettered (replayable) and the order
    /// rejected with the WMS's message, in one write.
    Refused {
        error: CallError,
        effect: Box<dyn Fn(&mut OrderRecord) + Send>,
    },
    Failed(CallError),
}

/// A store that could not be read or written: tried again later (not counted against the entry).
impl From<crate::store::StoreError> for Step {
    fn from(e: crate::store::StoreError) -> Self {
        Step::Failed(CallError::transient(e.to_string()))
    }
}
