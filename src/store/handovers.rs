//! Handovers: `handovers` tree, order id (BE) → [`HandoverRecord`]. The archive job closes each
//! handed-over order on Shopify once and records that it did.

use serde::{Deserialize, Serialize};

use super::{be, codec, Result, Store};

/// The most shipment codes one order's handover keeps (each at most
/// [`MAX_CODE_CHARS`](crate::flows::handover::MAX_CODE_CHARS)): the order is handed over either
/// way, and the record stays far below the size sled would put in a blob file.
const MAX_SHIPMENT_CODES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoverRecord {
    pub order_id: u64,
    pub location_code: String,
    pub shipment_codes: Vec<String>,
    pub first_ms: i64,
    /// When Shopify closed (archived) the order; `None` while pending (or `handover.archive = false`).
    pub archived_ms: Option<i64>,
    pub last_error: Option<String>,
}

impl Store {
    /// Records a handover; repeating one changes nothing but adds a shipment code it did not have.
    pub fn record_handover(&self, order_id: u64, location_code: &str, shipment_code: &str, now_ms: i64) -> Result<()> {
        let mut failure = None;
        self.inner.handovers.fetch_and_update(be(order_id), |old| {
            let mut rec = old.and_then(|v| codec::decode::<HandoverRecord>(v).ok()).unwrap_or(HandoverRecord {
                order_id,
                location_code: location_code.to_string(),
                shipment_codes: Vec::new(),
                first_ms: now_ms,
                archived_ms: None,
                last_error: None,
            });
            let known = rec.shipment_codes.iter().any(|c| c == shipment_code);
            if !shipment_code.is_empty() && !known && rec.shipment_codes.len() < MAX_SHIPMENT_CODES {
                rec.shipment_codes.push(shipment_code.to_string());
            }
            match codec::encode(&rec) {
                Ok(b) => Some(b),
                Err(e) => {
                    failure = Some(e);
                    old.map(<[u8]>::to_vec)
                }
            }
        })?;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The handover of one order, if any.
    pub fn handover(&self, order_id: u64) -> Result<Option<HandoverRecord>> {
        match self.inner.handovers.get(be(order_id))? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    pub fn handovers(&self) -> Result<Vec<HandoverRecord>> {
        self.inner.handovers.iter().map(|item| Ok(codec::decode(&item?.1)?)).collect()
    }

    /// Records the outcome of archiving one order.
    pub fn set_archive_outcome(&self, order_id: u64, outcome: std::result::Result<i64, String>) -> Result<()> {
        self.inner.handovers.fetch_and_update(be(order_id), |old| {
            let old = old?;
            let Ok(mut rec) = codec::decode::<HandoverRecord>(old) else { return Some(old.to_vec()) };
            match &outcome {
                Ok(at) => {
                    rec.archived_ms = Some(*at);
                    rec.last_error = None;
                }
                Err(e) => {
                    let mut e = e.clone();
                    super::cut_text(&mut e, 1000);
                    rec.last_error = Some(e);
                }
            }
            Some(codec::encode(&rec).unwrap_or_else(|_| old.to_vec()))
        })?;
        Ok(())
    }
}
