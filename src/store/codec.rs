//! The record codec: every stored value is one format-version byte followed by bincode 2
//! (standard configuration) of the record.
//!
//! # Evolving a record
//! Never change a stored struct in place. Add the new shape as a new struct, raise
//! [`FORMAT_VERSION`], and teach [`decode`] to read the old byte by decoding the old struct and
//! converting it. A newer binary therefore reads an older store; an older binary meets a byte it
//! does not know and refuses with [`CodecError::Newer`] instead of misreading.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The version written on every record by this build.
///
/// - 1: the first format.
/// - 2: returns (their records, and outbox tasks added at the end of `Task`). Every version-1
///   record reads the same under version 2; an older build meets the new byte and refuses.
/// - 3: tracking (its records, a journal record added at the end of `Inbound`, an outbox task at
///   the end of `Task`). Every earlier record reads the same under version 3.
pub const FORMAT_VERSION: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(
        "a stored record has format version {found}, newer than this channeld understands ({FORMAT_VERSION}); \
         run the channeld version that wrote this store (or newer)"
    )]
    Newer { found: u8 },
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("a record could not be encoded: {0}")]
    Encode(String),
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(128);
    out.push(FORMAT_VERSION);
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((1..=FORMAT_VERSION, rest)) => bincode::serde::decode_from_slice(rest, bincode::config::standard())
            .map(|(v, _)| v)
            .map_err(|e| CodecError::Corrupt(e.to_string())),
        Some((&v, _)) if v > FORMAT_VERSION => Err(CodecError::Newer { found: v }),
        Some((&v, _)) => Err(CodecError::Corrupt(format!("unknown format version {v}"))),
        None => Err(CodecError::Corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::model::{OrderRecord, OutboxEntry, Task};

    #[test]
    fn round_trip_with_version_byte() {
        let rec = OrderRecord::new(42, "#1042".into(), 7);
        let bytes = encode(&rec).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<OrderRecord>(&bytes).unwrap(), rec);
        let e = OutboxEntry::new(1, 42, Task::WmsUpdate { body: "{}".into() }, 3);
        assert_eq!(decode::<OutboxEntry>(&encode(&e).unwrap()).unwrap(), e);
    }

    #[test]
    fn newer_record_is_refused_clearly() {
        let mut bytes = encode(&OrderRecord::new(1, String::new(), 0)).unwrap();
        bytes[0] = FORMAT_VERSION + 1;
        let err = decode::<OrderRecord>(&bytes).unwrap_err();
        assert!(matches!(err, CodecError::Newer { .. }));
        assert!(err.to_string().contains("newer than this channeld"));
        assert!(matches!(decode::<OrderRecord>(&[]), Err(CodecError::Corrupt(_))));
    }
}
