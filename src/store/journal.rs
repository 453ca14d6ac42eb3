//! The journal: channeld's own write-ahead log of every inbound event it acknowledges.
//!
//! sled 0.34 never fsyncs on `flush` (it calls `sync_file_range`), so the journal, not sled, is what
//! an acknowledgement rests on. It is a directory of segment files, `{first seq}-{created ms}.wal`,
//! each a short header followed by frames:
//!
//! ```text
//! len: u32 LE | crc32: u32 LE (of seq ‖ payload) | seq: u64 LE | payload (len bytes)
//! ```
//!
//! Invariants:
//! - a frame is only ever appended, by one writer, and a batch of frames is covered by one
//!   `fdatasync` before anyone is told it is stored; a new segment is synced and so is the
//!   directory entry naming it, before a frame in it counts;
//! - sequence numbers strictly increase across the whole journal (gaps are allowed: a batch whose
//!   write failed gives up its numbers), so a reader can tell a torn tail from lost data;
//! - a failed write or sync cuts the segment back to its last synced length before the next batch,
//!   so what follows never sits behind garbage; if even that fails the segment is abandoned and
//!   the next batch opens a new one;
//! - segments are removed whole, oldest first, once every record in them is older than the
//!   retention and applied to a durable state (see [`Journal::remove_expired`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Written at the start of every segment: the format of what follows.
const MAGIC: &[u8; 8] = b"CHJRNL1\n";
const FRAME_HEADER: usize = 16;
/// A frame larger than this is not a frame but garbage (the largest body is `max_body_bytes`).
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    /// The sequence number its first record has or will have.
    pub first_seq: u64,
    /// When it was created (unix ms): every record in the previous segment is older than this.
    pub created_ms: i64,
}

impl Segment {
    fn name(first_seq: u64, created_ms: i64) -> String {
        format!("{first_seq:020}-{:013}.wal", created_ms.max(0))
    }

    fn parse(path: PathBuf) -> Option<Self> {
        let stem = path.file_name()?.to_str()?.strip_suffix(".wal")?;
        let (seq, created) = stem.split_once('-')?;
        Some(Self { first_seq: seq.parse().ok()?, created_ms: created.parse().ok()?, path })
    }
}

/// What is wrong with a journal that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal I/O at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "journal segment {path} is damaged at byte {offset} and the records after it are not found elsewhere: \
         the disk lost data; see README \"Recovery\""
    )]
    Damaged { path: PathBuf, offset: u64 },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { path: path.to_path_buf(), source }
}

/// The default size at which a new segment starts (`storage.journal_segment_mb`).
pub const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// The writer's view: the segments, the one being appended to, and the next sequence number.
pub struct Journal {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// The open tail segment; `None` after a failure that could not be cut back.
    active: Option<File>,
    /// Bytes of the active segment covered by a sync.
    synced_len: u64,
    next_seq: u64,
    max_segment_bytes: u64,
    max_segment_age_ms: i64,
}

impl Journal {
    /// Opens the journal in `dir` (created if missing), cutting a torn tail off its last segment. The
    /// first segment is only created by the first append (so its name carries that record's time).
    /// `min_next_seq` is one past the newest record the state is known to hold, so numbering never
    /// goes back even if the journal was lost.
    pub fn open(dir: &Path, min_next_seq: u64) -> Result<Self, JournalError> {
        super::fsio::create_private_dir(dir).map_err(io_at(dir))?;
        let mut segments = list(dir)?;
        let mut next_seq = min_next_seq.max(1);
        let mut synced_len = 0;
        let mut active = None;
        if segments.last().is_some_and(|last| header_lost(&last.path)) {
            // Created, but its header never reached the disk: it holds nothing.
            let last = segments.pop().expect("checked above");
            std::fs::remove_file(&last.path).map_err(io_at(&last.path))?;
            super::fsio::sync_dir(dir).map_err(io_at(dir))?;
            next_seq = next_seq.max(last.first_seq);
        }
        if let Some(last) = segments.last() {
            let scan = scan(&last.path, last.first_seq)?;
            if scan.valid_len < scan.file_len {
                tracing::warn!(segment = %last.path.display(), at = scan.valid_len, "journal: cutting off a torn tail");
                let f = OpenOptions::new().write(true).open(&last.path).map_err(io_at(&last.path))?;
                f.set_len(scan.valid_len).and_then(|()| f.sync_data()).map_err(io_at(&last.path))?;
            }
            next_seq = next_seq.max(scan.last_seq.map_or(last.first_seq, |s| s + 1));
            synced_len = scan.valid_len;
            active = Some(OpenOptions::new().append(true).open(&last.path).map_err(io_at(&last.path))?);
        }
        let mut journal = Self {
            dir: dir.to_path_buf(),
            segments: Vec::new(),
            active,
            synced_len,
            next_seq,
            max_segment_bytes: SEGMENT_BYTES,
            max_segment_age_ms: 86_400_000,
        };
        journal.segments.append(&mut segments);
        Ok(journal)
    }

    /// Segments of at most `bytes` (`storage.journal_segment_mb`).
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.max_segment_bytes = bytes.max(1);
        self
    }

    /// Smaller segments (tests of rotation and retention).
    #[cfg(test)]
    pub fn with_limits(mut self, max_bytes: u64, max_age_ms: i64) -> Self {
        self.max_segment_bytes = max_bytes;
        self.max_segment_age_ms = max_age_ms;
        self
    }

    #[cfg(test)]
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Appends `payloads` as consecutive records and syncs them. Returns the first one's sequence
    /// number. On failure nothing of the batch counts (its numbers are skipped).
    pub fn append(&mut self, payloads: &[&[u8]], now_ms: i64) -> io::Result<u64> {
        let first = self.next_seq;
        self.next_seq += payloads.len() as u64;
        let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.len() + FRAME_HEADER).sum());
        for (i, p) in payloads.iter().enumerate() {
            frame(&mut buf, first + i as u64, p);
        }
        let result = self.write_synced(&buf, first, now_ms);
        if result.is_err() {
            self.cut_back();
        }
        result.map(|()| first)
    }

    fn write_synced(&mut self, buf: &[u8], first_seq: u64, now_ms: i64) -> io::Result<()> {
        if self.needs_rotation(buf.len() as u64, now_ms) {
            self.rotate_at(first_seq, now_ms)?;
        }
        let f = self.active.as_mut().ok_or_else(|| io::Error::other("no journal segment is open"))?;
        f.write_all(buf)?;
        f.sync_data()?;
        self.synced_len += buf.len() as u64;
        Ok(())
    }

    fn needs_rotation(&self, adding: u64, now_ms: i64) -> bool {
        let Some(last) = self.segments.last() else { return true };
        if self.active.is_none() {
            return true;
        }
        let has_records = self.synced_len > MAGIC.len() as u64;
        has_records
            && (self.synced_len + adding > self.max_segment_bytes
                || now_ms - last.created_ms >= self.max_segment_age_ms)
    }

    /// After a failed write or sync: drop whatever of the batch reached the file, so the next batch
    /// follows the last synced record. If the file cannot even be cut, abandon it.
    fn cut_back(&mut self) {
        let Some(f) = self.active.as_ref() else { return };
        if let Err(e) = f.set_len(self.synced_len).and_then(|()| f.sync_data()) {
            tracing::warn!(error = %e, "journal: could not cut a failed write back; the next batch opens a new segment");
            self.active = None;
        }
    }

    /// Starts a new segment whose first record will be `first_seq`: created, its header synced,
    /// and its directory entry synced before anything is written to it.
    fn rotate_at(&mut self, first_seq: u64, now_ms: i64) -> io::Result<()> {
        let path = self.dir.join(Segment::name(first_seq, now_ms));
        let mut f = OpenOptions::new().create_new(true).append(true).mode(0o600).open(&path)?;
        f.write_all(MAGIC)?;
        f.sync_data()?;
        super::fsio::sync_dir(&self.dir)?;
        self.segments.push(Segment { path, first_seq, created_ms: now_ms });
        self.active = Some(f);
        self.synced_len = MAGIC.len() as u64;
        Ok(())
    }

    /// Deletes the oldest segments whose every record was written before `before_ms` and is at or
    /// below `applied_seq` (so a replay never needs them). The segment being written is kept.
    /// Returns how many segments went.
    pub fn remove_expired(&mut self, before_ms: i64, applied_seq: u64) -> io::Result<usize> {
        let mut removed = 0;
        while self.segments.len() > 1 {
            let next = &self.segments[1];
            if next.created_ms >= before_ms || next.first_seq.saturating_sub(1) > applied_seq {
                break;
            }
            std::fs::remove_file(&self.segments[0].path)?;
            self.segments.remove(0);
            removed += 1;
        }
        if removed > 0 {
            super::fsio::sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

fn frame(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(payload);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// The segments in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<Segment>, JournalError> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let path = entry.map_err(io_at(dir))?.path();
        if let Some(s) = Segment::parse(path) {
            segments.push(s);
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// Whether a segment's header is missing or wrong (a power cut right after creating it).
fn header_lost(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    !File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok_and(|()| &magic == MAGIC)
}

/// What reading a segment found.
struct Scan {
    valid_len: u64,
    file_len: u64,
    last_seq: Option<u64>,
}

fn scan(path: &Path, first_seq: u64) -> Result<Scan, JournalError> {
    let mut reader = SegmentReader::open(path, first_seq)?;
    let mut last_seq = None;
    while let Some((seq, _)) = reader.next_record()? {
        last_seq = Some(seq);
    }
    Ok(Scan { valid_len: reader.offset, file_len: reader.file_len, last_seq })
}

/// Reads the records of one segment in order, stopping at its end or at the first frame that is
/// incomplete or fails its checksum (a torn tail).
pub struct SegmentReader {
    path: PathBuf,
    file: io::BufReader<File>,
    offset: u64,
    file_len: u64,
    last_seq: u64,
}

impl SegmentReader {
    pub fn open(path: &Path, first_seq: u64) -> Result<Self, JournalError> {
        let file = File::open(path).map_err(io_at(path))?;
        let file_len = file.metadata().map_err(io_at(path))?.len();
        let mut reader =
            Self { path: path.to_path_buf(), file: io::BufReader::new(file), offset: 0, file_len, last_seq: 0 };
        let mut magic = [0u8; 8];
        if reader.read_exact_or_end(&mut magic)? && &magic == MAGIC {
            reader.offset = MAGIC.len() as u64;
            reader.last_seq = first_seq.saturating_sub(1);
        }
        Ok(reader)
    }

    /// Reads `buf` whole; `false` at a clean or torn end of file.
    fn read_exact_or_end(&mut self, buf: &mut [u8]) -> Result<bool, JournalError> {
        match self.file.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(JournalError::Io { path: self.path.clone(), source: e }),
        }
    }

    /// The next record, or `None` at the end (clean or torn: [`Self::torn`] tells which).
    pub fn next_record(&mut self) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        if self.offset == 0 {
            return Ok(None);
        }
        let mut header = [0u8; FRAME_HEADER];
        if !self.read_exact_or_end(&mut header)? {
            return Ok(None);
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
        if len > MAX_PAYLOAD || seq <= self.last_seq && self.last_seq != 0 {
            return Ok(None);
        }
        let mut payload = vec![0u8; len];
        if !self.read_exact_or_end(&mut payload)? {
            return Ok(None);
        }
        let mut check = crc32fast::Hasher::new();
        check.update(&seq.to_le_bytes());
        check.update(&payload);
        if check.finalize() != crc {
            return Ok(None);
        }
        self.offset += (FRAME_HEADER + len) as u64;
        self.last_seq = seq;
        Ok(Some((seq, payload)))
    }

    /// Whether bytes remain after the last good record (a torn or damaged tail).
    pub fn torn(&self) -> bool {
        self.offset < self.file_len
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// Every record with a sequence number of at least `from_seq`, oldest first, across `segments`.
/// A damaged tail is accepted only where the next segment carries on, or at the journal's end.
pub fn read_from(
    segments: &[Segment],
    from_seq: u64,
    mut each: impl FnMut(u64, Vec<u8>) -> Result<(), super::StoreError>,
) -> Result<(), super::StoreError> {
    let start = segments.iter().rposition(|s| s.first_seq <= from_seq).unwrap_or(0);
    for (i, segment) in segments.iter().enumerate().skip(start) {
        let mut reader = SegmentReader::open(&segment.path, segment.first_seq)?;
        while let Some((seq, payload)) = reader.next_record()? {
            if seq >= from_seq {
                each(seq, payload)?;
            }
        }
        let last = i + 1 == segments.len();
        if reader.torn() && !last {
            tracing::warn!(segment = %segment.path.display(), at = reader.offset(), "journal: a segment ends in a torn write; the next one carries on");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(dir: &Path, from: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        read_from(&list(dir).unwrap(), from, |s, p| {
            out.push((s, p));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn appends_are_read_back_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 1).unwrap().with_limits(64, i64::MAX);
        assert_eq!(j.append(&[b"one", b"two"], 0).unwrap(), 1);
        assert_eq!(j.append(&[&[7u8; 100]], 0).unwrap(), 3);
        assert_eq!(j.append(&[b"four"], 0).unwrap(), 4);
        assert!(j.segments().len() >= 2, "64-byte segments rotate");
        let got = records(dir.path(), 1);
        assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(got[1].1, b"two");
        assert_eq!(records(dir.path(), 3).len(), 2);
        drop(j);
        let j = Journal::open(dir.path(), 1).unwrap();
        assert_eq!(j.next_seq(), 5);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_numbering_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 1).unwrap();
        j.append(&[b"kept"], 0).unwrap();
        let path = j.segments()[0].path.clone();
        drop(j);
        // Half a frame, as a power cut in the middle of a write leaves it.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        let mut half = Vec::new();
        frame(&mut half, 2, b"lost in the cut");
        f.write_all(&half[..half.len() / 2]).unwrap();
        let j = Journal::open(dir.path(), 1).unwrap();
        assert_eq!(j.next_seq(), 2);
        assert_eq!(records(dir.path(), 1), vec![(1, b"kept".to_vec())]);
        // A frame with a bad checksum is a torn tail too.
        drop(j);
        let mut bad = Vec::new();
        frame(&mut bad, 2, b"flipped");
        *bad.last_mut().unwrap() ^= 1;
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&bad).unwrap();
        let mut j = Journal::open(dir.path(), 1).unwrap();
        assert_eq!(j.append(&[b"next"], 0).unwrap(), 2);
        assert_eq!(records(dir.path(), 1).len(), 2);
    }

    #[test]
    fn numbering_never_goes_below_what_the_state_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 40).unwrap();
        assert_eq!(j.append(&[b"x"], 0).unwrap(), 40);
    }

    #[test]
    fn expired_segments_go_whole_once_applied_and_the_newest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400_000;
        let mut j = Journal::open(dir.path(), 1).unwrap().with_limits(u64::MAX, day);
        j.append(&[b"day 0"], 0).unwrap();
        j.append(&[b"day 1"], day).unwrap();
        j.append(&[b"day 2"], 2 * day).unwrap();
        assert_eq!(j.segments().len(), 3);
        // Not applied yet: nothing goes, however old.
        assert_eq!(j.remove_expired(10 * day, 0).unwrap(), 0);
        // Records of day 0 are all older than day 1's segment: it goes once day 1 is past retention.
        assert_eq!(j.remove_expired(day + 1, 3).unwrap(), 1);
        assert_eq!(records(dir.path(), 1).iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(j.remove_expired(10 * day, 3).unwrap(), 1);
        assert_eq!(j.segments().len(), 1, "the segment being written is kept");
    }
}
