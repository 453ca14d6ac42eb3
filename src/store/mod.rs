//! The only code that touches sled. It owns the trees, the record codec and the group commit.
//!
//! Trees:
//! - `orders`: order id (u64 BE) → [`OrderRecord`](crate::flows::model::OrderRecord)
//! - `order_names`: Shopify order name (`#1001`) → order id, for `orders show #1001`
//! - `outbox`: order id (BE) ‖ seq (BE) → [`OutboxEntry`](crate::flows::model::OutboxEntry); the key
//!   order makes "the first entry of each order" a forward scan
//! - `webhook_ids`: topic ‖ 0 ‖ event id → when it was accepted (de-duplication, kept ≥ 7 days)
//! - `raw_events`: received (ms, BE) ‖ order id (BE) ‖ seq (BE) → the raw webhook body, for support
//!   and export; keyed by time so pruning reads only what expired
//! - `order_counts`, `personal`: indexes over `orders` written in the same transactions (see
//!   `order_index.rs`): orders per status, and which orders still hold addresses, by age
//! - `listings`, `inventory`: SKU ↔ inventory item, and desired/pushed quantities (see `inventory.rs`)
//! - `handovers`: order id (BE) → handover and whether the order was archived on Shopify
//! - `shipments`: shipment id (BE) → shipment (booking state, AWB, label, invoice); indexed by
//!   order and by unfinished work in `shipment_index` (see `shipments.rs`)
//! - `meta`: store format, first start, job statuses and other single values
//!
//! # Durability
//! sled writes to its log in memory and flushes every 500 ms on its own; a crash loses what was not
//! flushed. Anything channeld acknowledges must therefore wait for [`Store::durable`], which joins
//! the next flush of a single flusher task: every request that wrote before that flush began is
//! woken by it (group commit), so a burst of webhooks costs one fsync, not one each.

mod codec;
mod export;
mod handovers;
mod inventory;
mod order_index;
mod orders;
mod outbox;
mod shipments;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub use codec::{CodecError, FORMAT_VERSION};
pub use handovers::HandoverRecord;
pub use inventory::{JobStatus, ListingsChange};
pub use orders::Ingested;
pub use outbox::{DueWork, Replay};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store error: {0}")]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("the store at {0} is in use by another channeld process")]
    Locked(PathBuf),
    #[error(
        "the store at {path} was written by a newer channeld (store format {found}, this build knows {FORMAT_VERSION}); \
         refusing to open it"
    )]
    NewerStore { path: PathBuf, found: u8 },
    #[error("could not flush the store to disk: {0}")]
    Flush(String),
    #[error("{0}")]
    NotFound(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

type CommitWaiter = oneshot::Sender<Result<(), String>>;

/// A cheaply clonable handle on the open store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    orders: sled::Tree,
    order_names: sled::Tree,
    outbox: sled::Tree,
    webhook_ids: sled::Tree,
    raw_events: sled::Tree,
    order_counts: sled::Tree,
    personal: sled::Tree,
    listings: sled::Tree,
    inventory: sled::Tree,
    handovers: sled::Tree,
    shipments: sled::Tree,
    shipment_index: sled::Tree,
    meta: sled::Tree,
    commit_tx: mpsc::UnboundedSender<CommitWaiter>,
}

const META_FORMAT: &[u8] = b"store_format";
const META_FIRST_START: &[u8] = b"first_start_ms";

impl Store {
    /// Opens (or creates) the store. Must be called inside a tokio runtime: it starts the flusher.
    pub fn open(path: &Path, cache_capacity_mb: u64) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| StoreError::Sled(e.into()))?;
        let db = sled::Config::new()
            .path(path.join("db"))
            .cache_capacity(cache_capacity_mb.max(1) * 1024 * 1024)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.to_string().contains("lock") => StoreError::Locked(path.to_path_buf()),
                e => StoreError::Sled(e),
            })?;
        match db.get(META_FORMAT)?.as_deref() {
            Some([v]) if *v > FORMAT_VERSION => {
                return Err(StoreError::NewerStore { path: path.to_path_buf(), found: *v });
            }
            Some(_) => {}
            None => {
                db.insert(META_FORMAT, &[FORMAT_VERSION])?;
            }
        }
        let (commit_tx, commit_rx) = mpsc::unbounded_channel();
        tokio::spawn(flusher_loop(db.clone(), commit_rx));
        let tree = |name: &str| db.open_tree(name);
        let inner = Inner {
            orders: tree("orders")?,
            order_names: tree("order_names")?,
            outbox: tree("outbox")?,
            webhook_ids: tree("webhook_ids")?,
            raw_events: tree("raw_events")?,
            order_counts: tree("order_counts")?,
            personal: tree("personal")?,
            listings: tree("listings")?,
            inventory: tree("inventory")?,
            handovers: tree("handovers")?,
            shipments: tree("shipments")?,
            shipment_index: tree("shipment_index")?,
            meta: tree("meta")?,
            db,
            commit_tx,
        };
        let store = Self { inner: Arc::new(inner) };
        store.upgrade()?;
        Ok(store)
    }

    /// Resolves once everything written before the call is on disk (group commit).
    pub async fn durable(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.inner.commit_tx.send(tx).map_err(|_| StoreError::Flush("the flusher has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Flush("the flusher has stopped".into()))?.map_err(StoreError::Flush)
    }

    /// Flushes synchronously (shutdown, CLI commands that wrote).
    pub fn flush(&self) -> Result<()> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// The time of the store's first start (unix ms), recorded on first call: the default
    /// `orders.since`.
    pub fn first_start_ms(&self, now_ms: i64) -> Result<i64> {
        let prev = self.inner.meta.compare_and_swap(META_FIRST_START, None::<&[u8]>, Some(&now_ms.to_be_bytes()))?;
        Ok(match prev {
            Ok(()) => now_ms,
            Err(cas) => {
                cas.current.as_deref().and_then(|b| b.try_into().ok()).map(i64::from_be_bytes).unwrap_or(now_ms)
            }
        })
    }

    /// Removes webhook ids accepted before `ids_before_ms`, raw payloads received before
    /// `payloads_before_ms`, and the addresses kept in finished orders last changed before then.
    /// Reads only what is due (payloads and addresses through their age-ordered keys). Returns how
    /// many entries went.
    pub fn prune(&self, ids_before_ms: i64, payloads_before_ms: i64) -> Result<usize> {
        let mut removed = 0;
        for item in self.inner.webhook_ids.iter() {
            let (k, v) = item?;
            if codec::decode::<i64>(&v).map_or(true, |at| at < ids_before_ms) {
                self.inner.webhook_ids.remove(k)?;
                removed += 1;
            }
        }
        for item in self.inner.raw_events.range(..be(payloads_before_ms.max(0) as u64).as_slice()) {
            self.inner.raw_events.remove(item?.0)?;
            removed += 1;
        }
        removed += self.prune_personal(payloads_before_ms)?;
        Ok(removed)
    }

    /// Brings a store written by an earlier channeld to the current layout, once: raw payloads
    /// move from `payloads` (keyed by order) to `raw_events` (keyed by time), and the order and
    /// shipment indexes are built.
    fn upgrade(&self) -> Result<()> {
        let i = &self.inner;
        if i.db.tree_names().iter().any(|n| n.as_ref() == b"payloads") {
            let legacy = i.db.open_tree("payloads")?;
            for item in legacy.iter() {
                let (k, v) = item?;
                let e: orders::RawEvent = codec::decode(&v)?;
                let (order, seq) = split_pair(&k).unwrap_or_default();
                i.raw_events.insert(orders::raw_event_key(e.received_ms, order, seq), v)?;
            }
            i.db.flush()?;
            i.db.drop_tree("payloads")?;
        }
        self.index_orders()?;
        self.index_shipments()
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}

async fn flusher_loop(db: sled::Db, mut rx: mpsc::UnboundedReceiver<CommitWaiter>) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let db = db.clone();
        let result = match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        metrics::counter!("channeld_store_flushes_total").increment(1);
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

fn be(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn pair_key(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

fn split_pair(k: &[u8]) -> Option<(u64, u64)> {
    let a = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
    let b = u64::from_be_bytes(k.get(8..16)?.try_into().ok()?);
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_a_newer_store_and_a_second_opener() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), 8).unwrap();
            assert!(matches!(Store::open(dir.path(), 8), Err(StoreError::Locked(_))));
            s.inner.db.insert(META_FORMAT, &[FORMAT_VERSION + 1]).unwrap();
            s.durable().await.unwrap();
        }
        // Give sled's background threads a moment to release the lock.
        let mut last = None;
        for _ in 0..50 {
            match Store::open(dir.path(), 8) {
                Err(StoreError::Locked(_)) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                other => {
                    last = Some(other);
                    break;
                }
            }
        }
        let err = last.expect("store stayed locked").err().expect("newer store must be refused");
        assert!(err.to_string().contains("newer channeld"), "{err}");
    }

    #[tokio::test]
    async fn first_start_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 8).unwrap();
        assert_eq!(s.first_start_ms(100).unwrap(), 100);
        assert_eq!(s.first_start_ms(200).unwrap(), 100);
    }
}
