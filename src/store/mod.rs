//! The only code that touches sled and the journal. It owns the trees, the record codec, the
//! journal of inbound events and the acknowledgement boundary.
//!
//! Trees:
//! - `orders`: order id (u64 BE) → [`OrderRecord`](crate::flows::model::OrderRecord)
//! - `order_names`: Shopify order name (`#1001`) → order id, for `orders show #1001`; also the
//!   tombstones of orders removed by retention (`retention.rs`)
//! - `outbox`: order id (BE) ‖ seq (BE) → [`OutboxEntry`](crate::flows::model::OutboxEntry); the key
//!   order makes "the first entry of each order" a forward scan
//! - `outbox_queued`: queued at ‖ order id ‖ seq → nothing: the outbox in the order it was queued
//!   (`outbox list --since`)
//! - `webhook_ids`: topic ‖ 0 ‖ event id → when it was accepted (de-duplication, kept ≥ 7 days)
//! - `order_counts`, `personal`, `order_list`: indexes over `orders` written in the same
//!   transactions (see `order_index.rs`): orders per status, which orders still hold addresses
//!   (by age), and every order by first sight, overall and per status (for paged listings)
//! - `listings`, `inventory`: SKU ↔ inventory item, and desired/pushed quantities (see `inventory.rs`)
//! - `handovers`: order id (BE) → handover and whether the order was archived on Shopify
//! - `shipments`: order id (BE) ‖ shipment id (BE) → shipment (booking state, AWB, label,
//!   invoice); indexed by shipment id and by unfinished work in `shipment_index` (see `shipments.rs`)
//! - `returns`: Shopify return id (BE) → [`ReturnRecord`](crate::flows::returns::ReturnRecord),
//!   indexed by WMS return code, name and order in `return_index` (see `returns.rs`)
//! - `tracking`: order id (BE) ‖ shipment id (BE) →
//!   [`TrackingRecord`](crate::flows::tracking::TrackingRecord), a shipment's courier events and
//!   Shopify fulfillment; found by AWB and listed by status through `shipment_index` (see
//!   `tracking.rs`)
//! - `activity`: orders received and entering each status per hour, and a short log per order,
//!   for the operator console (see `activity.rs`)
//! - `overflow`: the chunks of orders, shipments, outbox entries, returns and tracking records too
//!   large to keep inline (`chunks.rs`: sled would put them in blob files it never syncs)
//! - `meta`: store format, first start, the last applied journal record, job statuses and other
//!   single values
//!
//! Raw webhook bodies are not in sled: they live in the journal (`journal/`), which retention
//! trims by whole segments.
//!
//! # Durability
//! An acknowledged inbound event is a journal record covered by `fdatasync` before it is applied
//! to sled, and applied before it is answered ([`Store::submit`], see `commit.rs`). Everything
//! else sled holds (outcomes of outbound calls, operator commands) is made durable by a checkpoint
//! — sled's flush followed by a real sync of its files — before anything depends on it
//! ([`Store::sync_state`]). After a crash or a power cut, the records sled had not made durable are
//! applied again ([`Store::replay`]).

mod activity;
mod chunks;
mod codec;
mod commit;
mod export;
mod fsio;
mod handovers;
mod inbound;
mod inventory;
mod journal;
mod order_index;
mod orders;
mod outbox;
mod retention;
mod returns;
mod shipments;
mod tracking;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;

pub use activity::{hour_of, HourCounts, OrderEvent, HOUR_MS, KEEP_HOURS};
pub use codec::{CodecError, FORMAT_VERSION};
pub use commit::Health;
pub use export::{Imported, RawTrees};
pub use handovers::HandoverRecord;
pub use inbound::{Inbound, WmsCall};
pub use inventory::{JobStatus, ListingsChange};
pub use order_index::OrderCursor;
pub use orders::Ingested;
pub use outbox::{DueWork, OutboxCounts, Replay};
pub use returns::{ReturnChange, ReturnWrite};
pub use tracking::TrackingWrite;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store error: {0}")]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("the journal could not write: {0}")]
    JournalWrite(String),
    #[error("the store at {0} is in use by another channeld process")]
    Locked(PathBuf),
    #[error(
        "the store at {path} was written by a newer channeld (store format {found}, this build knows {FORMAT_VERSION}); \
         refusing to open it"
    )]
    NewerStore { path: PathBuf, found: u8 },
    #[error(
        "the state database at {path} cannot be opened ({detail}); the journal still holds every acknowledged \
         event: rebuild the state with `channeld store rebuild` (README \"Recovery\")"
    )]
    Unopenable { path: PathBuf, detail: String },
    #[error("could not make the store durable: {0}")]
    Checkpoint(String),
    #[error("the store has stopped")]
    Stopped,
    #[error("{0}")]
    NotFound(String),
}

/// A transaction that aborted on a record it could not encode or decode, or failed in sled.
impl From<sled::transaction::TransactionError<CodecError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<CodecError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => StoreError::Codec(e),
            sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

impl StoreError {
    pub(crate) fn io(e: std::io::Error) -> Self {
        StoreError::Sled(e.into())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// sled's cache bound.
    pub cache_capacity_mb: u64,
    /// Free space below which the journal refuses new records (0 = no check).
    pub min_free_mb: u64,
    /// Size at which the journal starts a new segment.
    pub journal_segment_bytes: u64,
}

impl OpenOptions {
    pub fn new(cache_capacity_mb: u64) -> Self {
        Self { cache_capacity_mb, min_free_mb: 0, journal_segment_bytes: journal::SEGMENT_BYTES }
    }
}

impl From<&crate::config::Storage> for OpenOptions {
    fn from(s: &crate::config::Storage) -> Self {
        Self {
            cache_capacity_mb: s.cache_capacity_mb,
            min_free_mb: s.min_free_mb,
            journal_segment_bytes: s.journal_segment_mb * 1_048_576,
        }
    }
}

/// A cheaply clonable handle on the open store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// sled's own directory (`{storage.path}/db`).
    sled_dir: PathBuf,
    orders: sled::Tree,
    order_names: sled::Tree,
    outbox: sled::Tree,
    /// The outbox's entries by when they were queued (see `outbox.rs`).
    outbox_queued: sled::Tree,
    webhook_ids: sled::Tree,
    order_counts: sled::Tree,
    personal: sled::Tree,
    /// Orders newest first, all and by status (`orders list` pages through it).
    order_list: sled::Tree,
    listings: sled::Tree,
    inventory: sled::Tree,
    handovers: sled::Tree,
    shipments: sled::Tree,
    shipment_index: sled::Tree,
    /// Returns, and their index by code, name and order (see `returns.rs`).
    returns: sled::Tree,
    return_index: sled::Tree,
    /// Shipments' tracking (see `tracking.rs`).
    tracking: sled::Tree,
    /// Chunks of values too large to keep inline (see `chunks.rs`).
    overflow: sled::Tree,
    /// Orders per hour and each order's log, for the console (see `activity.rs`).
    activity: sled::Tree,
    meta: sled::Tree,
    pipeline: commit::Pipeline,
    health: Health,
}

const META_FORMAT: &[u8] = b"store_format";
const META_FIRST_START: &[u8] = b"first_start_ms";
/// The newest journal record applied to sled (u64 BE).
const META_APPLIED: &[u8] = b"applied_seq";
/// Set once no order or shipment is stored inline above the chunk limit.
const META_CHUNKED: &[u8] = b"chunked";

impl Store {
    /// Opens (or creates) the store and starts its journal, applier and checkpoint threads. The
    /// caller then runs [`Store::replay`] before serving.
    pub fn open(path: &Path, cache_capacity_mb: u64) -> Result<Self> {
        Self::open_with(path, &OpenOptions::new(cache_capacity_mb))
    }

    pub fn open_with(path: &Path, opts: &OpenOptions) -> Result<Self> {
        fsio::create_private_dir(path).map_err(StoreError::io)?;
        let sled_dir = path.join("db");
        let data_file = sled_dir.join("db");
        let created = !data_file.exists();
        let held_data = std::fs::metadata(&data_file).is_ok_and(|m| m.len() > 0);
        let db = open_sled(path, &sled_dir, opts.cache_capacity_mb)?;
        // sled creates its directory and files with the umask's modes: make them private.
        fsio::restrict_tree(path).map_err(StoreError::io)?;
        if created {
            // sled syncs none of the files it creates, nor their directory entries.
            std::fs::File::open(sled_dir.join("conf")).and_then(|f| f.sync_all()).map_err(StoreError::io)?;
            fsio::sync_dir(&sled_dir.join("blobs")).map_err(StoreError::io)?;
            fsio::sync_dir(path).map_err(StoreError::io)?;
        }
        // Also covers the snapshot sled writes and renames into its directory when it opens.
        commit::sync_sled_files(&sled_dir).map_err(StoreError::io)?;
        match db.get(META_FORMAT)?.as_deref() {
            Some([v]) if *v > FORMAT_VERSION => {
                return Err(StoreError::NewerStore { path: path.to_path_buf(), found: *v });
            }
            // An older store: from now on it holds records an older build cannot read, so it says so.
            Some([v]) if *v < FORMAT_VERSION => {
                db.insert(META_FORMAT, &[FORMAT_VERSION])?;
            }
            Some(_) => {}
            None => {
                if held_data {
                    // sled opens a damaged log as an empty database rather than refusing it.
                    tracing::error!(
                        path = %sled_dir.display(),
                        "the state database held data but sled found none (its files were damaged): \
                         every event still in the journal is applied again"
                    );
                }
                db.insert(META_FORMAT, &[FORMAT_VERSION])?;
            }
        }
        let tree = |name: &str| db.open_tree(name);
        let meta = tree("meta")?;
        let applied = meta.get(META_APPLIED)?.and_then(|v| v.as_ref().try_into().ok()).map_or(0, u64::from_be_bytes);
        let journal_dir = path.join("journal");
        let mut journal =
            journal::Journal::open(&journal_dir, applied + 1)?.with_segment_bytes(opts.journal_segment_bytes);
        let inner = Inner {
            orders: tree("orders")?,
            order_names: tree("order_names")?,
            outbox: tree("outbox")?,
            outbox_queued: tree("outbox_queued")?,
            webhook_ids: tree("webhook_ids")?,
            order_counts: tree("order_counts")?,
            personal: tree("personal")?,
            order_list: tree("order_list")?,
            listings: tree("listings")?,
            inventory: tree("inventory")?,
            handovers: tree("handovers")?,
            shipments: tree("shipments")?,
            shipment_index: tree("shipment_index")?,
            returns: tree("returns")?,
            return_index: tree("return_index")?,
            tracking: tree("tracking")?,
            overflow: tree("overflow")?,
            activity: tree("activity")?,
            meta,
            pipeline: commit::Pipeline::new(&journal, journal_dir, applied, opts.min_free_mb * 1_048_576),
            health: Health::default(),
            sled_dir,
            db,
        };
        let store = Self { inner: Arc::new(inner) };
        store.upgrade(&mut journal)?;
        commit::start(&store.inner, journal).map_err(StoreError::io)?;
        Ok(store)
    }

    /// Writes the inbound `event` to the journal, waits until it is on stable storage, then has the
    /// applier thread run `apply` on it (in journal order) and returns what that returned. Nothing
    /// of the event reaches sled before it is synced. `apply` must also be what a replay of this
    /// record does (see [`Store::replay`]), so callers build both from one function.
    pub async fn submit<T: Send + 'static>(
        &self,
        event: Inbound,
        apply: impl FnOnce(&Store, u64, &Inbound) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let payload = codec::encode(&event)?;
        let (tx, rx) = oneshot::channel();
        let job: commit::Apply = Box::new(move |ctx| {
            let result = ctx.and_then(|(store, seq)| {
                let r = apply(store, seq, &event);
                if let Err(StoreError::Sled(e)) = &r {
                    store.inner.health.set_fatal(format!("sled failed while applying record {seq}: {e}"));
                }
                r
            });
            let _ = tx.send(result);
        });
        self.to_writer(commit::ToWriter::Append { payload, apply: job })?;
        rx.await.map_err(|_| StoreError::Stopped)?
    }

    fn to_writer(&self, message: commit::ToWriter) -> Result<()> {
        let writer = self.inner.pipeline.writer_tx.lock().map_err(|_| StoreError::Stopped)?;
        writer.as_ref().ok_or(StoreError::Stopped)?.send(message).map_err(|_| StoreError::Stopped)
    }

    /// Journals raw bodies restored from an export (kept for support, never applied), waiting until
    /// they are synced. Blocks: run it on a blocking thread.
    fn append_legacy(&self, events: Vec<Inbound>) -> Result<()> {
        let mut waiting = Vec::with_capacity(events.len());
        for event in events {
            let (tx, rx) = oneshot::channel();
            let job: commit::Apply = Box::new(move |ctx| {
                let _ = tx.send(ctx.map(drop));
            });
            self.to_writer(commit::ToWriter::Append { payload: codec::encode(&event)?, apply: job })?;
            waiting.push(rx);
        }
        for rx in waiting {
            rx.blocking_recv().map_err(|_| StoreError::Stopped)??;
        }
        Ok(())
    }

    /// Runs `f` on a blocking thread: sled calls never run on a tokio worker.
    pub async fn call<T: Send + 'static>(&self, f: impl FnOnce(&Store) -> Result<T> + Send + 'static) -> Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(|_| StoreError::Stopped)?
    }

    /// Resolves once everything written to sled before the call is durable: a checkpoint that began
    /// after the call has finished (group commit: concurrent callers share one).
    pub async fn sync_state(&self) -> Result<()> {
        let rx = self.request_checkpoint()?;
        rx.await.map_err(|_| StoreError::Stopped)?.map_err(StoreError::Checkpoint)
    }

    /// Before sending outbox work: a checkpoint if any outbox entry may have become due through a
    /// write that is not journaled (a follow-up of a delivered call, the next entry of an order
    /// whose call was just recorded as done, an operator's replay, reconciliation) and is not yet
    /// covered by one; entries from journaled events are durable already. Call it after reading
    /// the due work: a write that work saw has committed, so a checkpoint begun now covers it, and
    /// it is either counted already or still in progress.
    pub async fn sync_outbox(&self) -> Result<()> {
        let p = &self.inner.pipeline;
        let in_progress = p.outbox_writes_in_progress.load(Ordering::SeqCst) > 0;
        if in_progress || p.unjournaled_outbox.load(Ordering::SeqCst) > p.synced_outbox.load(Ordering::SeqCst) {
            self.sync_state().await?;
        }
        Ok(())
    }

    /// Marks the start of a write that may make outbox work due without a journal record (see
    /// [`Store::sync_outbox`]); the returned guard says how much it queued once it has committed.
    fn outbox_write(&self) -> OutboxWrite<'_> {
        let pipeline = (!commit::applying()).then_some(&self.inner.pipeline);
        if let Some(p) = pipeline {
            p.outbox_writes_in_progress.fetch_add(1, Ordering::SeqCst);
        }
        OutboxWrite { pipeline }
    }

    /// [`Store::sync_state`] for threads outside the async runtime (the CLI, `spawn_blocking`).
    pub fn sync_state_blocking(&self) -> Result<()> {
        let rx = self.request_checkpoint()?;
        rx.blocking_recv().map_err(|_| StoreError::Stopped)?.map_err(StoreError::Checkpoint)
    }

    fn request_checkpoint(&self) -> Result<oneshot::Receiver<Result<(), String>>> {
        let (tx, rx) = oneshot::channel();
        let sender = self.inner.pipeline.checkpoint_tx.lock().map_err(|_| StoreError::Stopped)?;
        sender.as_ref().ok_or(StoreError::Stopped)?.send(tx).map_err(|_| StoreError::Stopped)?;
        Ok(rx)
    }

    /// Applies every journal record past the one sled last recorded as applied, in order, with
    /// the same function live records get; then makes the result durable. Run at start-up, before
    /// anything is served. Returns how many records were applied.
    pub fn replay(&self, mut apply: impl FnMut(&Store, u64, &Inbound) -> Result<()>) -> Result<usize> {
        let from = self.inner.pipeline.applied_seq.load(Ordering::Acquire) + 1;
        let segments = self.journal_segments();
        let (mut applied, mut last) = (0usize, None);
        let read = commit::as_applier(|| {
            journal::read_from(&segments, from, |seq, payload| {
                let event: Inbound = codec::decode(&payload)?;
                apply(self, seq, &event)?;
                applied += 1;
                last = Some(seq);
                if applied % 10_000 == 0 {
                    self.note_applied(seq)?;
                    tracing::info!(applied, "replaying the journal");
                }
                Ok(())
            })
        });
        read?;
        if let Some(seq) = last {
            self.note_applied(seq)?;
            tracing::info!(records = applied, "replayed journal records the state had not made durable");
        }
        // Whatever sled holds now (after `kill -9` its unsynced writes are still in the page
        // cache) is made durable before anything is sent on its strength.
        commit::checkpoint(&self.inner)?;
        Ok(applied)
    }

    /// Records that every journal record up to `seq` is applied.
    fn note_applied(&self, seq: u64) -> Result<()> {
        self.inner.meta.insert(META_APPLIED, &seq.to_be_bytes())?;
        self.inner.pipeline.applied_seq.fetch_max(seq, Ordering::AcqRel);
        Ok(())
    }

    fn journal_segments(&self) -> Vec<journal::Segment> {
        self.inner.pipeline.segments.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Every journal record from the oldest kept, in order (export and support).
    pub fn each_inbound(&self, mut each: impl FnMut(u64, Inbound) -> Result<()>) -> Result<()> {
        journal::read_from(&self.journal_segments(), 0, |seq, payload| each(seq, codec::decode(&payload)?))
    }

    /// How the store is doing (journal write failures, a fatal sled failure).
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// Whether the store can take writes now, and why not: it has not failed, the disk has the
    /// room the journal leaves, and the last journal write did not fail (a failure for lack of
    /// space clears as soon as there is room again; any other one when a write succeeds).
    pub fn can_write(&self) -> std::result::Result<(), String> {
        let health = &self.inner.health;
        if let Some(why) = health.fatal() {
            return Err(why);
        }
        let pipeline = &self.inner.pipeline;
        pipeline.room_to_write().map_err(|e| e.to_string())?;
        match health.journal_error() {
            Some((why, false)) => Err(why),
            // The disk was full at the last write: taken as room again only once there is some
            // (even with `storage.min_free_mb = 0`, when the check above checks nothing).
            Some((why, true)) if !pipeline.has_room_after_full() => Err(why),
            _ => Ok(()),
        }
    }

    /// Stops taking records, applies and syncs everything taken, and stops the threads. Other
    /// handles then get [`StoreError::Stopped`] from `submit` and `sync_state`.
    pub fn close(&self) -> Result<()> {
        let p = &self.inner.pipeline;
        p.stop_intake();
        let result = commit::checkpoint(&self.inner);
        p.stop_checkpoints();
        result
    }

    /// The time of the store's first start (unix ms), recorded on first call: the default
    /// `orders.since`.
    /// The journal keeps a copy, so a state rebuilt from the journal keeps its `orders.since`.
    pub fn first_start_ms(&self, now_ms: i64) -> Result<i64> {
        let copy = self.inner.pipeline.journal_dir.join("first-start");
        let kept = std::fs::read_to_string(&copy).ok().and_then(|t| t.trim().parse::<i64>().ok());
        let candidate = kept.unwrap_or(now_ms);
        let prev = self.inner.meta.compare_and_swap(META_FIRST_START, None::<&[u8]>, Some(&candidate.to_be_bytes()))?;
        let first = match prev {
            Ok(()) => candidate,
            Err(cas) => {
                cas.current.as_deref().and_then(|b| b.try_into().ok()).map(i64::from_be_bytes).unwrap_or(candidate)
            }
        };
        if kept != Some(first) {
            fsio::write_synced(&copy, first.to_string().as_bytes()).map_err(StoreError::io)?;
        }
        Ok(first)
    }

    /// Removes webhook ids accepted before `ids_before_ms`, journal segments of raw payloads
    /// received before `payloads_before_ms`, the addresses kept in finished orders last changed
    /// before then, and finished orders themselves (with their shipments and handover) last changed
    /// before then. Reads only what is due. Returns how many entries went. Blocks: call it from a
    /// blocking thread.
    /// With `archive` (`handover.archive`) a handed-over order is finished once archived.
    pub fn prune(&self, ids_before_ms: i64, payloads_before_ms: i64, archive: bool) -> Result<usize> {
        let mut removed = 0;
        for item in self.inner.webhook_ids.iter() {
            let (k, v) = item?;
            if codec::decode::<i64>(&v).map_or(true, |at| at < ids_before_ms) {
                self.inner.webhook_ids.remove(k)?;
                removed += 1;
            }
        }
        removed += self.prune_journal(payloads_before_ms)?;
        removed += self.prune_personal(payloads_before_ms)?;
        removed += self.prune_finished(payloads_before_ms, archive)?;
        removed += self.prune_tombstones(now_ms())?;
        removed += self.prune_returns(payloads_before_ms)?;
        // History, not records: not counted among what retention removed.
        self.prune_activity(now_ms() - activity::KEEP_HOURS * 3_600_000)?;
        Ok(removed)
    }

    fn prune_journal(&self, before_ms: i64) -> Result<usize> {
        let (reply, rx) = oneshot::channel();
        self.to_writer(commit::ToWriter::Prune { before_ms, reply })?;
        rx.blocking_recv().map_err(|_| StoreError::Stopped)?.map_err(StoreError::JournalWrite)
    }

    /// Brings a store written by an earlier channeld to the current layout, once: raw payloads
    /// leave sled for the journal (oldest first, each segment dated by its first record, so
    /// retention trims them as if they had always been there), the order and shipment indexes
    /// are built, and large records are split into chunks.
    fn upgrade(&self, journal: &mut journal::Journal) -> Result<()> {
        let i = &self.inner;
        for legacy in ["payloads", "raw_events"] {
            if i.db.tree_names().iter().any(|n| n.as_ref() == legacy.as_bytes()) {
                self.move_payloads_to_journal(legacy, journal)?;
            }
        }
        self.index_orders()?;
        self.index_order_list()?;
        self.index_shipments()?;
        self.index_awbs()?;
        self.index_outbox_queue()?;
        if i.meta.get(META_CHUNKED)?.is_none() {
            let n = chunks::rechunk(&i.orders, &i.overflow, chunks::ORDERS)?
                + chunks::rechunk(&i.shipments, &i.overflow, chunks::SHIPMENTS)?;
            if n > 0 {
                tracing::info!(records = n, "stored large records in chunks (once)");
            }
            i.meta.insert(META_CHUNKED, &[1])?;
            commit::checkpoint(i)?;
        }
        Ok(())
    }

    fn move_payloads_to_journal(&self, tree: &str, journal: &mut journal::Journal) -> Result<()> {
        let i = &self.inner;
        let legacy = i.db.open_tree(tree)?;
        if !legacy.is_empty() {
            tracing::info!(
                tree,
                bodies = legacy.len(),
                "moving raw webhook bodies out of sled into the journal (once)"
            );
        }
        let mut events: Vec<Inbound> = Vec::new();
        for item in legacy.iter() {
            let e: orders::RawEvent = codec::decode(&item?.1)?;
            events.push(Inbound::Legacy { topic: e.topic, received_ms: e.received_ms, body: e.body });
        }
        // `payloads` was keyed by order, `raw_events` by time: append oldest first either way.
        events.sort_by_key(Inbound::received_ms);
        for chunk in events.chunks(1000) {
            let payloads = chunk.iter().map(codec::encode).collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let at = chunk.first().map_or(0, Inbound::received_ms);
            let first = journal.append(&refs, at).map_err(StoreError::io)?;
            self.note_applied(first + chunk.len() as u64 - 1)?;
        }
        i.db.drop_tree(tree)?;
        commit::checkpoint(i)?;
        if let Ok(mut s) = i.pipeline.segments.lock() {
            *s = journal.segments().to_vec();
        }
        Ok(())
    }

    /// Bytes the database and the journal take on disk.
    pub fn size_on_disk(&self) -> u64 {
        let journal: u64 =
            self.journal_segments().iter().filter_map(|s| std::fs::metadata(&s.path).ok()).map(|m| m.len()).sum();
        self.inner.db.size_on_disk().unwrap_or(0) + journal
    }
}

/// A write in progress that may make outbox work due without a journal record: counted as in
/// progress until dropped, and as unjournaled outbox work once [`OutboxWrite::made_due`] says it
/// committed some. The count of writes in progress closes the gap between a commit and its count
/// (the worker may read the entry in between).
struct OutboxWrite<'a> {
    pipeline: Option<&'a commit::Pipeline>,
}

impl OutboxWrite<'_> {
    /// The write committed and made `n` entries due (or put them back in line).
    fn made_due(self, n: usize) {
        if let (Some(p), true) = (self.pipeline, n > 0) {
            p.unjournaled_outbox.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for OutboxWrite<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.pipeline {
            p.outbox_writes_in_progress.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Opens sled, turning its failures — including the panics sled 0.34 raises on some damaged
/// files — into errors that say what to do.
fn open_sled(store: &Path, sled_dir: &Path, cache_capacity_mb: u64) -> Result<sled::Db> {
    let config = sled::Config::new().path(sled_dir).cache_capacity(cache_capacity_mb.max(1) * 1024 * 1024);
    let opened = quietly(|| config.open());
    let unopenable = |detail: String| StoreError::Unopenable { path: sled_dir.to_path_buf(), detail };
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(io))) if io.to_string().contains("lock") => Err(StoreError::Locked(store.to_path_buf())),
        Ok(Err(e @ (sled::Error::Corruption { .. } | sled::Error::Unsupported(_)))) => Err(unopenable(e.to_string())),
        Ok(Err(e)) => Err(StoreError::Sled(e)),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "sled panicked".into());
            Err(unopenable(format!("sled panicked: {why}")))
        }
    }
}

thread_local! {
    /// Set while a panic on this thread is expected and reported another way (see [`quietly`]).
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic without the panic hook printing it: sled 0.34 panics on some damaged
/// files, and the operator should read what to do, not a backtrace notice. Panics elsewhere, and
/// on other threads, are printed as before.
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET_PANICS.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(false));
    result
}

/// Cuts `text` to at most `max` bytes (on a character boundary), marking the cut: error texts from
/// other services are kept, but never so large that a record outgrows sled's inline limit.
fn cut_text(text: &mut String, max: usize) {
    if text.len() > max {
        let mut at = max.saturating_sub(3);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push_str("...");
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
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
            s.sync_state().await.unwrap();
            s.close().unwrap();
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

    #[test]
    fn a_panic_caught_quietly_comes_back_as_an_error_and_leaves_the_hook_as_it_was() {
        let caught = quietly(|| -> u8 { panic!("tried to serialize Uninitialized") });
        let why = caught.unwrap_err();
        assert_eq!(why.downcast_ref::<&str>(), Some(&"tried to serialize Uninitialized"));
        assert!(!QUIET_PANICS.with(std::cell::Cell::get), "only the call itself is quiet");
        assert_eq!(quietly(|| 5).unwrap(), 5);
    }

    #[tokio::test]
    async fn first_start_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 8).unwrap();
        assert_eq!(s.first_start_ms(100).unwrap(), 100);
        assert_eq!(s.first_start_ms(200).unwrap(), 100);
    }
}
