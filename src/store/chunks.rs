//! Values too large to keep inline: split into chunks in the `overflow` tree.
//!
//! sled 0.34 writes a node whose serialized form exceeds a quarter of a segment (about 128 KB with
//! its default 512 KB segments) to a file of its own under `blobs/`, and never syncs those files:
//! after a power cut the log can point at a blob that is not there, and sled cannot open the store
//! again. A leaf node holds up to 17 entries, so an order of 50 lines (about 10 KB encoded) would
//! already push its node over. Every value channeld stores is therefore kept at most
//! [`INLINE_MAX`] bytes: a larger one is stored as a small header under its own key, and its bytes
//! in `overflow` under `tag ‖ key ‖ chunk index`, written in the same transaction. Even 40 entries
//! of that size stay well under the blob limit.
//!
//! The header starts with [`MARK`], a byte no record's format version will reach, so a reader
//! tells the two apart before decoding.

use sled::transaction::{TransactionalTree, UnabortableTransactionError};
use sled::{IVec, Tree};

use super::Result;

/// The largest value stored inline, and the size of each chunk of a larger one.
pub const INLINE_MAX: usize = 3 * 1024;
/// First byte of a chunked value's header (format versions count up from 1).
const MARK: u8 = 0xFF;

/// Which tree a chunk belongs to (the first byte of its key in `overflow`).
pub const ORDERS: u8 = b'o';
pub const SHIPMENTS: u8 = b's';
pub const OUTBOX: u8 = b'x';
pub const RETURNS: u8 = b'r';
pub const TRACKING: u8 = b't';

fn chunk_key(tag: u8, key: &[u8], index: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 5);
    k.push(tag);
    k.extend_from_slice(key);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The number of chunks a stored value has (0 when inline).
fn chunks_of(stored: &[u8]) -> u32 {
    match stored {
        [MARK, n @ ..] if n.len() == 4 => u32::from_be_bytes(n.try_into().expect("4 bytes")),
        _ => 0,
    }
}

fn header(chunks: usize) -> Vec<u8> {
    let mut h = vec![MARK];
    h.extend_from_slice(&(chunks as u32).to_be_bytes());
    h
}

/// Stores `bytes` under `key` in a transaction: inline, or as a header plus chunks (dropping any
/// chunks an earlier, longer value left behind).
pub fn put(
    main: &TransactionalTree,
    overflow: &TransactionalTree,
    tag: u8,
    key: &[u8],
    bytes: &[u8],
) -> std::result::Result<(), UnabortableTransactionError> {
    let before = main.get(key)?.map_or(0, |v| chunks_of(&v));
    let after = if bytes.len() <= INLINE_MAX {
        main.insert(key, bytes)?;
        0
    } else {
        let parts: Vec<&[u8]> = bytes.chunks(INLINE_MAX).collect();
        for (i, part) in parts.iter().enumerate() {
            overflow.insert(chunk_key(tag, key, i as u32), *part)?;
        }
        main.insert(key, header(parts.len()))?;
        parts.len() as u32
    };
    for i in after..before {
        overflow.remove(chunk_key(tag, key, i))?;
    }
    Ok(())
}

/// Reads the value under `key` in a transaction, reassembled.
pub fn get(
    main: &TransactionalTree,
    overflow: &TransactionalTree,
    tag: u8,
    key: &[u8],
) -> std::result::Result<Option<Vec<u8>>, UnabortableTransactionError> {
    let Some(stored) = main.get(key)? else { return Ok(None) };
    let n = chunks_of(&stored);
    if n == 0 {
        return Ok(Some(stored.to_vec()));
    }
    let mut out = Vec::with_capacity(n as usize * INLINE_MAX);
    for i in 0..n {
        if let Some(part) = overflow.get(chunk_key(tag, key, i))? {
            out.extend_from_slice(&part);
        }
    }
    Ok(Some(out))
}

/// Removes the value under `key` and its chunks, in a transaction.
pub fn remove(
    main: &TransactionalTree,
    overflow: &TransactionalTree,
    tag: u8,
    key: &[u8],
) -> std::result::Result<(), UnabortableTransactionError> {
    if let Some(old) = main.remove(key)? {
        for i in 0..chunks_of(&old) {
            overflow.remove(chunk_key(tag, key, i))?;
        }
    }
    Ok(())
}

/// Rewrites every value of `main` stored inline but larger than [`INLINE_MAX`] (a store written
/// before chunks existed) as chunks. Returns how many it rewrote.
pub fn rechunk(main: &Tree, overflow: &Tree, tag: u8) -> Result<usize> {
    use sled::transaction::{ConflictableTransactionError, Transactional};
    let mut rewritten = 0;
    for item in main.iter() {
        let (key, stored) = item?;
        if stored.len() <= INLINE_MAX || chunks_of(&stored) > 0 {
            continue;
        }
        (main, overflow)
            .transaction(|(m, o)| Ok::<_, ConflictableTransactionError>(put(m, o, tag, &key, &stored)?))
            .map_err(|e| match e {
                sled::transaction::TransactionError::Abort(e) | sled::transaction::TransactionError::Storage(e) => e,
            })?;
        rewritten += 1;
    }
    Ok(rewritten)
}

/// The whole value of an entry read outside a transaction (a plain `get` or an iteration): inline
/// values as they are; a chunked one is read again with its chunks in one transaction, so a
/// concurrent write never hands back half of each.
pub fn resolve(main: &Tree, overflow: &Tree, tag: u8, key: &[u8], stored: IVec) -> Result<Option<Vec<u8>>> {
    use sled::transaction::Transactional;
    if chunks_of(&stored) == 0 {
        return Ok(Some(stored.to_vec()));
    }
    let read = (main, overflow)
        .transaction(|(m, o)| Ok::<_, sled::transaction::ConflictableTransactionError>(get(m, o, tag, key)?));
    read.map_err(|e| match e {
        sled::transaction::TransactionError::Abort(e) | sled::transaction::TransactionError::Storage(e) => e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sled::transaction::{ConflictableTransactionError, Transactional};

    #[test]
    fn large_values_go_to_chunks_and_come_back_whole() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (main, overflow) = (db.open_tree("main").unwrap(), db.open_tree("overflow").unwrap());
        let write = |bytes: Vec<u8>| {
            (&main, &overflow)
                .transaction(|(m, o)| Ok::<_, ConflictableTransactionError>(put(m, o, ORDERS, b"k", &bytes)?))
                .unwrap()
        };
        let read = || resolve(&main, &overflow, ORDERS, b"k", main.get(b"k").unwrap().unwrap()).unwrap().unwrap();
        let big: Vec<u8> = (0..10 * INLINE_MAX + 7).map(|i| (i % 251) as u8).collect();
        write(big.clone());
        assert_eq!(read(), big);
        assert_eq!(overflow.len(), 11);
        assert!(main.get(b"k").unwrap().unwrap().len() <= 5, "only a header stays inline");
        // Shrinking drops the chunks it no longer needs; going inline drops them all.
        write(big[..2 * INLINE_MAX].to_vec());
        assert_eq!((read(), overflow.len()), (big[..2 * INLINE_MAX].to_vec(), 2));
        write(vec![1, 2, 3]);
        assert_eq!((read(), overflow.len()), (vec![1, 2, 3], 0));
        // A store from before chunks kept large values inline: rewritten once, read the same.
        main.insert(b"k", big.clone()).unwrap();
        assert_eq!(rechunk(&main, &overflow, ORDERS).unwrap(), 1);
        assert_eq!((read(), overflow.len()), (big.clone(), 11));
        assert_eq!(rechunk(&main, &overflow, ORDERS).unwrap(), 0);
        (&main, &overflow)
            .transaction(|(m, o)| Ok::<_, ConflictableTransactionError>(remove(m, o, ORDERS, b"k")?))
            .unwrap();
        assert!(main.is_empty() && overflow.is_empty(), "a removed value takes its chunks along");
    }
}
