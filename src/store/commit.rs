//! The acknowledgement boundary: how an inbound event becomes durable, and how sled's state is.
//!
//! Three threads, none of them a tokio worker:
//! - the **journal writer** takes every submitted record waiting at that moment, appends them all
//!   and covers them with one `fdatasync` (group commit: concurrent requests share one sync);
//! - the **applier** then applies those synced records to sled, one at a time and in journal
//!   order, and answers each request with what its record did. So nothing in sled comes from a
//!   record that is not on stable storage, and the outbox only ever sees synced work;
//! - the **checkpointer** makes sled's own state durable: `flush` (which only calls
//!   `sync_file_range`) followed by a real `fdatasync` of sled's file and an `fsync` of its
//!   directory. It runs every few seconds (bounding a replay) and on demand for writes that are
//!   not journaled (outcomes of outbound calls, operator commands), again shared by every waiter.
//!
//! After a crash or a power cut, sled holds some prefix of what was applied; every journal record
//! past the sequence number it recorded is applied again at start-up ([`super::Store::replay`]).
//!
//! A sled failure (it stays failed in-process, e.g. after `ENOSPC` while writing its log) is
//! *fatal*: the store reports it and the daemon exits non-zero so that systemd restarts it, and the
//! replay brings it back. A journal failure is not: that batch is refused and the next one tries
//! again, so the daemon recovers by itself when the disk does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::journal::{Journal, Segment};
use super::{fsio, Inner, Store, StoreError};

/// What the applier runs for one record: given the store and the record's sequence number (or why
/// the record could not be made durable), it applies it and answers the request.
pub(super) type Apply = Box<dyn FnOnce(Result<(&Store, u64), StoreError>) + Send>;

/// Messages to the journal writer.
pub(super) enum ToWriter {
    Append {
        payload: Vec<u8>,
        apply: Apply,
    },
    /// Remove expired segments (retention), answering how many went.
    Prune {
        before_ms: i64,
        reply: oneshot::Sender<Result<usize, String>>,
    },
}

/// A request for a checkpoint, answered once one that started after it has finished.
pub(super) type CheckpointWaiter = oneshot::Sender<Result<(), String>>;

thread_local! {
    /// Set on the thread applying journal records (the applier, or a replay): what it writes is
    /// durable through the journal, whatever sled has synced.
    static APPLYING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is applying journal records.
pub(super) fn applying() -> bool {
    APPLYING.with(|a| a.get())
}

/// Runs `f` as the applier of journal records (see [`applying`]).
pub(super) fn as_applier<T>(f: impl FnOnce() -> T) -> T {
    let was = APPLYING.with(|a| a.replace(true));
    let out = f();
    APPLYING.with(|a| a.set(was));
    out
}

/// The most one batch carries, so a burst of large bodies does not make one huge write.
const MAX_BATCH_RECORDS: usize = 4096;
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Free space that counts as room again after a write failed for lack of it.
const ROOM_AFTER_FULL: u64 = 1024 * 1024;
/// How often sled's state is made durable when nothing asks sooner.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// How the store is doing, for `/readyz` and for the daemon's decision to restart.
#[derive(Debug)]
pub struct Health {
    /// Why the last journal write failed (and whether for lack of space); `None` once one
    /// succeeds again.
    journal_error: Mutex<Option<(String, bool)>>,
    /// Set once sled failed: the process must restart to recover.
    fatal: watch::Sender<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Self { journal_error: Mutex::new(None), fatal: watch::channel(None).0 }
    }
}

impl Health {
    /// Why the last journal write failed, and whether it was for lack of space.
    pub fn journal_error(&self) -> Option<(String, bool)> {
        self.journal_error.lock().ok().and_then(|e| e.clone())
    }

    fn set_journal(&self, error: Option<&std::io::Error>) {
        let error = error.map(|e| (e.to_string(), e.kind() == std::io::ErrorKind::StorageFull));
        if let Ok(mut e) = self.journal_error.lock() {
            if e.is_some() != error.is_some() {
                match &error {
                    Some((why, _)) => {
                        tracing::error!(error = %why, "the journal cannot write: requests are refused with 503")
                    }
                    None => tracing::info!("the journal writes again"),
                }
            }
            *e = error;
        }
    }

    pub fn fatal(&self) -> Option<String> {
        self.fatal.borrow().clone()
    }

    pub(super) fn set_fatal(&self, why: String) {
        self.fatal.send_if_modified(|f| {
            if f.is_some() {
                return false;
            }
            tracing::error!(error = %why, "the store has failed and cannot recover in this process");
            *f = Some(why);
            true
        });
    }

    /// Resolves once the store has failed fatally.
    pub fn failed(&self) -> watch::Receiver<Option<String>> {
        self.fatal.subscribe()
    }
}

/// The channels to the threads and the sequence numbers they share.
pub(super) struct Pipeline {
    pub writer_tx: Mutex<Option<Sender<ToWriter>>>,
    pub checkpoint_tx: Mutex<Option<Sender<CheckpointWaiter>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// The newest record applied to sled (in memory; sled has it under `applied_seq`).
    pub applied_seq: AtomicU64,
    /// The newest applied record covered by a finished checkpoint.
    pub durable_seq: AtomicU64,
    /// Outbox entries queued (or put back in line) by writes that are not journaled, so far, and
    /// how many of them the last finished checkpoint covers: the outbox only needs a checkpoint
    /// before sending when the first is ahead.
    pub unjournaled_outbox: AtomicU64,
    pub synced_outbox: AtomicU64,
    /// Such writes begun and not yet counted (see `Store::sync_outbox`).
    pub outbox_writes_in_progress: AtomicU64,
    /// The journal's segments as the writer last left them (readers open them on their own).
    pub segments: Mutex<Vec<Segment>>,
    pub journal_dir: PathBuf,
    /// Free space the journal leaves on the disk (sled needs room to write its own log).
    pub min_free_bytes: u64,
}

impl Pipeline {
    pub fn new(journal: &Journal, journal_dir: PathBuf, applied_seq: u64, min_free_bytes: u64) -> Self {
        Self {
            writer_tx: Mutex::new(None),
            checkpoint_tx: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            applied_seq: AtomicU64::new(applied_seq),
            durable_seq: AtomicU64::new(applied_seq),
            unjournaled_outbox: AtomicU64::new(0),
            synced_outbox: AtomicU64::new(0),
            outbox_writes_in_progress: AtomicU64::new(0),
            segments: Mutex::new(journal.segments().to_vec()),
            journal_dir,
            min_free_bytes,
        }
    }
}

/// Starts the three threads for an open store.
pub(super) fn start(inner: &Arc<Inner>, journal: Journal) -> std::io::Result<()> {
    let (writer_tx, writer_rx) = mpsc::channel();
    let (apply_tx, apply_rx) = mpsc::channel();
    let (checkpoint_tx, checkpoint_rx) = mpsc::channel();
    let weak = Arc::downgrade(inner);
    let threads = vec![
        spawn("channeld-journal", {
            let weak = weak.clone();
            move || writer_loop(journal, writer_rx, apply_tx, weak)
        })?,
        spawn("channeld-apply", {
            let weak = weak.clone();
            move || applier_loop(apply_rx, weak)
        })?,
        spawn("channeld-checkpoint", move || checkpointer_loop(checkpoint_rx, weak))?,
    ];
    let p = &inner.pipeline;
    *p.writer_tx.lock().expect("fresh mutex") = Some(writer_tx);
    *p.checkpoint_tx.lock().expect("fresh mutex") = Some(checkpoint_tx);
    *p.threads.lock().expect("fresh mutex") = threads;
    Ok(())
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(name.to_string()).spawn(f)
}

fn writer_loop(mut journal: Journal, rx: Receiver<ToWriter>, apply_tx: Sender<Vec<(u64, Apply)>>, store: Weak<Inner>) {
    let mut pending = None;
    loop {
        let first = match pending.take() {
            Some(m) => m,
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        let (payload, apply) = match first {
            ToWriter::Append { payload, apply } => (payload, apply),
            ToWriter::Prune { before_ms, reply } => {
                let applied = store.upgrade().map_or(0, |i| i.pipeline.durable_seq.load(Ordering::Acquire));
                let _ = reply.send(journal.remove_expired(before_ms, applied).map_err(|e| e.to_string()));
                publish_segments(&journal, &store);
                continue;
            }
        };
        let (mut payloads, mut applies, mut bytes) = (vec![payload], vec![apply], 0usize);
        while payloads.len() < MAX_BATCH_RECORDS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(ToWriter::Append { payload, apply }) => {
                    bytes += payload.len();
                    payloads.push(payload);
                    applies.push(apply);
                }
                Ok(other) => {
                    pending = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let segments_before = journal.segments().len();
        let written = room_to_write(&store).and_then(|()| {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            journal.append(&refs, super::now_ms())
        });
        if journal.segments().len() != segments_before {
            publish_segments(&journal, &store);
        }
        if let Some(inner) = store.upgrade() {
            inner.health.set_journal(written.as_ref().err());
        }
        match written {
            Ok(first_seq) => {
                let batch = applies.into_iter().enumerate().map(|(i, a)| (first_seq + i as u64, a)).collect();
                if let Err(mpsc::SendError(batch)) = apply_tx.send(batch) {
                    for (_, a) in batch {
                        a(Err(StoreError::Stopped));
                    }
                }
            }
            Err(e) => {
                let why = e.to_string();
                for a in applies {
                    a(Err(StoreError::JournalWrite(why.clone())));
                }
            }
        }
    }
}

fn publish_segments(journal: &Journal, store: &Weak<Inner>) {
    if let Some(inner) = store.upgrade() {
        if let Ok(mut s) = inner.pipeline.segments.lock() {
            *s = journal.segments().to_vec();
        }
    }
}

/// Refuses a batch while the disk is nearly full: the journal would fill it, and then sled, which
/// cannot recover from a failed write in-process, could not write its own log.
fn room_to_write(store: &Weak<Inner>) -> std::io::Result<()> {
    let Some(inner) = store.upgrade() else { return Err(std::io::Error::other("the store is closed")) };
    inner.pipeline.room_to_write()
}

impl Pipeline {
    /// After a write failed for lack of space: whether the disk has room again, at least
    /// [`ROOM_AFTER_FULL`] or the free space the journal leaves, whichever is more.
    pub fn has_room_after_full(&self) -> bool {
        fs2::available_space(&self.journal_dir).is_ok_and(|free| free >= self.min_free_bytes.max(ROOM_AFTER_FULL))
    }

    /// Whether the disk has the free space the journal leaves (see [`room_to_write`]).
    pub fn room_to_write(&self) -> std::io::Result<()> {
        let p = self;
        if p.min_free_bytes == 0 {
            return Ok(());
        }
        let free = fs2::available_space(&p.journal_dir)?;
        if free < p.min_free_bytes {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "only {} MB free on the store's disk (storage.min_free_mb = {})",
                    free / 1_048_576,
                    p.min_free_bytes / 1_048_576
                ),
            ));
        }
        Ok(())
    }
}

fn applier_loop(rx: Receiver<Vec<(u64, Apply)>>, store: Weak<Inner>) {
    APPLYING.with(|a| a.set(true));
    while let Ok(batch) = rx.recv() {
        let Some(inner) = store.upgrade() else {
            for (_, a) in batch {
                a(Err(StoreError::Stopped));
            }
            continue;
        };
        let store = Store { inner };
        let last = batch.last().map_or(0, |(seq, _)| *seq);
        for (seq, apply) in batch {
            // A panic here is a bug in one record's rules: that request fails, the daemon restarts
            // (the record is replayed then), and no other request hangs.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| apply(Ok((&store, seq))))).is_err() {
                store.inner.health.set_fatal(format!("applying journal record {seq} panicked"));
            }
        }
        if let Err(e) = store.note_applied(last) {
            store.inner.health.set_fatal(format!("could not record the applied sequence number: {e}"));
        }
    }
}

fn checkpointer_loop(rx: Receiver<CheckpointWaiter>, store: Weak<Inner>) {
    let mut checkpointed = None;
    loop {
        let mut waiters = Vec::new();
        match rx.recv_timeout(CHECKPOINT_EVERY) {
            Ok(w) => waiters.push(w),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        waiters.extend(rx.try_iter());
        let Some(inner) = store.upgrade() else { return };
        let applied = inner.pipeline.applied_seq.load(Ordering::Acquire);
        if waiters.is_empty() && checkpointed == Some(applied) {
            continue;
        }
        let result = checkpoint(&inner).map_err(|e| e.to_string());
        match &result {
            Ok(()) => checkpointed = Some(applied),
            Err(e) => inner.health.set_fatal(format!("checkpoint failed: {e}")),
        }
        metrics::counter!("channeld_store_checkpoints_total").increment(1);
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

/// Makes everything sled holds now durable: its log written out, then really synced, and its
/// directory synced (sled renames a snapshot into it when it opens).
pub(super) fn checkpoint(inner: &Inner) -> Result<(), StoreError> {
    let p = &inner.pipeline;
    let applied = p.applied_seq.load(Ordering::Acquire);
    let outbox = p.unjournaled_outbox.load(Ordering::SeqCst);
    inner.db.flush()?;
    sync_sled_files(&inner.sled_dir).map_err(StoreError::io)?;
    p.durable_seq.fetch_max(applied, Ordering::AcqRel);
    p.synced_outbox.fetch_max(outbox, Ordering::AcqRel);
    Ok(())
}

/// `fdatasync` of sled's data file and `fsync` of its directory. sled keeps a value too large for
/// its log in a file under `blobs/` and never syncs it: channeld keeps every value small enough
/// that none is made, and says so loudly if one appears.
pub(super) fn sync_sled_files(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir.join("db"))?.sync_data()?;
    fsio::sync_dir(dir)?;
    let blobs = dir.join("blobs");
    if std::fs::read_dir(&blobs).is_ok_and(|mut d| d.next().is_some()) {
        tracing::warn!(
            "sled wrote a blob file (a value over its inline limit); syncing it, but this is a bug in channeld"
        );
        for entry in std::fs::read_dir(&blobs)? {
            std::fs::File::open(entry?.path())?.sync_all()?;
        }
        fsio::sync_dir(&blobs)?;
    }
    Ok(())
}

impl Pipeline {
    /// Stops taking records and waits until the writer and the applier have finished everything
    /// taken so far.
    pub fn stop_intake(&self) {
        drop(self.writer_tx.lock().ok().and_then(|mut t| t.take()));
        let intake: Vec<_> = self
            .threads
            .lock()
            .map(|mut t| {
                let n = t.len().min(2);
                t.drain(..n).collect()
            })
            .unwrap_or_default();
        for t in intake {
            let _ = t.join();
        }
    }

    /// Stops the checkpointer (after [`Pipeline::stop_intake`] and a last checkpoint).
    pub fn stop_checkpoints(&self) {
        drop(self.checkpoint_tx.lock().ok().and_then(|mut t| t.take()));
        let rest: Vec<_> = self.threads.lock().map(|mut t| t.drain(..).collect()).unwrap_or_default();
        for t in rest {
            let _ = t.join();
        }
    }
}
