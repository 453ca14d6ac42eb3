//! powerfs: an in-memory FUSE filesystem for power-loss tests. Every file keeps its current data
//! and its data as of its last `fsync`/`fdatasync`; every directory keeps its current entries and
//! its entries as of its last `fsync` on the directory. [`PowerFs::power_cut`] throws away all that
//! was not synced (file contents and sizes, created, unlinked and renamed names) and remounts, so
//! the key invariant is: after a power cut, the tree holds exactly what a sync covered, nothing
//! the kernel or the filesystem merely had in memory. Faults (failing writes or syncs, a full disk)
//! can be switched on and off while mounted. The daemon under test is a separate process using
//! the mountpoint; the filesystem itself is served from a thread of the test process.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

pub use fuser::Errno;
use fuser::{
    AccessFlags, BackgroundSession, Config, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use nix::sys::stat::SFlag;

/// No kernel caching of names or attributes: the kernel asks us every time, so what a test sees is
/// what this filesystem holds (the remount at a power cut is what really clears the kernel's state).
const TTL: Duration = Duration::ZERO;
const BLOCK_SIZE: u64 = 4096;
/// What statfs reports as the disk's size when no capacity fault is set.
const DEFAULT_CAPACITY: u64 = 1 << 30;
const MAX_NAME: usize = 255;
const ROOT: u64 = INodeNo::ROOT.0;

/// Faults to inject; all `None` (the default) means a healthy disk. Do not use `ENOSYS`: the kernel
/// would take it as "fsync not implemented" and stop asking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every write (and fallocate) fails with this.
    pub fail_writes: Option<Errno>,
    /// Every fsync, fdatasync and directory fsync fails with this, and marks nothing synced.
    pub fail_syncs: Option<Errno>,
    /// The disk's size: a write or fallocate that would take the bytes in use over it fails with
    /// `ENOSPC`. statfs reports it.
    pub capacity_bytes: Option<u64>,
    /// Every file fsync takes this long (a slow disk), holding up the filesystem meanwhile.
    pub slow_syncs: Option<Duration>,
}

/// Counts of requests that reached the filesystem, over the whole life of the `PowerFs` (power cuts
/// included). Syncs are counted when asked for, whether or not a fault made them fail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `fsync`/`fdatasync` on files.
    pub fsyncs: u64,
    /// `fsync` on directories.
    pub fsyncdirs: u64,
    /// FUSE write requests that succeeded (one `write(2)` larger than the kernel's request size
    /// arrives as several).
    pub writes: u64,
    /// Bytes those writes stored.
    pub bytes_written: u64,
}

/// A mounted powerfs. Dropping it unmounts.
pub struct PowerFs {
    state: Arc<Mutex<State>>,
    mountpoint: PathBuf,
    session: Option<BackgroundSession>,
    /// The mountpoint's directory when [`PowerFs::mount_temp`] made it; removed after unmounting.
    _dir: Option<tempfile::TempDir>,
}

impl PowerFs {
    /// Mounts an empty powerfs on `mountpoint` (an existing directory).
    pub fn mount(mountpoint: &Path) -> io::Result<PowerFs> {
        PowerFs::mount_at(mountpoint.to_path_buf(), None)
    }

    /// Mounts an empty powerfs on a fresh temporary directory, removed on drop.
    pub fn mount_temp() -> io::Result<PowerFs> {
        let dir = tempfile::Builder::new().prefix("powerfs-").tempdir()?;
        PowerFs::mount_at(dir.path().to_path_buf(), Some(dir))
    }

    fn mount_at(mountpoint: PathBuf, dir: Option<tempfile::TempDir>) -> io::Result<PowerFs> {
        let state = Arc::new(Mutex::new(State::new()));
        let mut fs = PowerFs { state, mountpoint, session: None, _dir: dir };
        fs.start_session()?;
        Ok(fs)
    }

    /// The mountpoint.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The power cut. Call it after killing (SIGKILL, and waited for) every process using the mount.
    /// Unmounts, reverts every file and directory to what was last synced, drops what is no longer
    /// reachable from the root, and mounts the result afresh at the same place. A file still held
    /// open across the cut belongs to the dead mount: its every use fails with `EIO`.
    pub fn power_cut(&mut self) -> io::Result<()> {
        self.stop_session()?;
        lock(&self.state).revert_to_synced();
        self.start_session()
    }

    /// A clean unmount and mount: nothing is lost, but the kernel forgets all it cached.
    pub fn remount(&mut self) -> io::Result<()> {
        self.stop_session()?;
        self.start_session()
    }

    /// Replaces the faults in force; `Faults::default()` heals the disk.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state).faults = faults;
    }

    /// What has reached the filesystem so far.
    pub fn stats(&self) -> Stats {
        lock(&self.state).stats
    }

    fn start_session(&mut self) -> io::Result<()> {
        let epoch = lock(&self.state).epoch;
        let fs = Session { state: Arc::clone(&self.state), epoch };
        let session = fuser::spawn_mount(fs, &self.mountpoint, &mount_config()).map_err(|e| {
            let hint = "powerfs needs /dev/fuse and either root or fusermount3";
            io::Error::new(e.kind(), format!("mounting powerfs at {}: {e} ({hint})", self.mountpoint.display()))
        })?;
        self.session = Some(session);
        Ok(())
    }

    /// Fences the running session first (from here on it can change nothing: that instant is the
    /// cut), then unmounts it. If something still holds a file open the unmount is refused; the
    /// mount is then detached instead, and its session lingers, fenced, until the last file closes.
    fn stop_session(&mut self) -> io::Result<()> {
        lock(&self.state).epoch += 1;
        let Some(session) = self.session.take() else { return Ok(()) };
        match session.umount_and_join() {
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH)?;
                Ok(())
            }
            other => other,
        }
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        if let Err(e) = self.stop_session() {
            eprintln!("powerfs: unmounting {}: {e}", self.mountpoint.display());
        }
    }
}

/// Plain write-through FUSE: fuser asks for no writeback cache, so every `write(2)` reaches us
/// before it returns and `sync_file_range(2)` has nothing to send. `default_permissions` lets the
/// kernel check modes as a disk filesystem would.
fn mount_config() -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("powerfs".to_string()),
        MountOption::Subtype("powerfs".to_string()),
        MountOption::DefaultPermissions,
    ];
    config
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic in a request handler must not wedge the test that owns the mount.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

enum Node {
    File {
        data: Vec<u8>,
        synced: Vec<u8>,
    },
    Dir {
        entries: BTreeMap<OsString, u64>,
        synced: BTreeMap<OsString, u64>,
        parent: u64,
    },
    /// FIFOs, sockets and device nodes: nothing but a name, so only their directory entry matters.
    Special {
        kind: FileType,
        rdev: u32,
    },
}

impl Node {
    fn kind(&self) -> FileType {
        match self {
            Node::File { .. } => FileType::RegularFile,
            Node::Dir { .. } => FileType::Directory,
            Node::Special { kind, .. } => *kind,
        }
    }

    fn revert(&mut self) {
        match self {
            Node::File { data, synced } => data.clone_from(synced),
            Node::Dir { entries, synced, .. } => entries.clone_from(synced),
            Node::Special { .. } => {}
        }
    }
}

struct Inode {
    node: Node,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Names in current directories that point here (directories count theirs on demand).
    links: u32,
}

impl Inode {
    fn new(node: Node, perm: u16, uid: u32, gid: u32) -> Inode {
        let now = SystemTime::now();
        Inode { node, perm, uid, gid, atime: now, mtime: now, ctime: now, links: 1 }
    }

    fn len(&self) -> u64 {
        match &self.node {
            Node::File { data, .. } => data.len() as u64,
            _ => 0,
        }
    }

    fn touch(&mut self) {
        let now = SystemTime::now();
        self.mtime = now;
        self.ctime = now;
    }
}

/// Everything the filesystem holds, shared by the test's handle and the serving thread.
struct State {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    /// Bumped when a session is stopped; a session serving an older epoch is dead.
    epoch: u64,
    faults: Faults,
    stats: Stats,
}

type Res<T> = Result<T, Errno>;

impl State {
    fn new() -> State {
        let root = Node::Dir { entries: BTreeMap::new(), synced: BTreeMap::new(), parent: ROOT };
        let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        let inodes = HashMap::from([(ROOT, Inode::new(root, 0o755, uid, gid))]);
        State { inodes, next_ino: ROOT + 1, epoch: 0, faults: Faults::default(), stats: Stats::default() }
    }

    fn inode(&self, ino: u64) -> Res<&Inode> {
        self.inodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn inode_mut(&mut self, ino: u64) -> Res<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn entries(&self, dir: u64) -> Res<&BTreeMap<OsString, u64>> {
        match &self.inode(dir)?.node {
            Node::Dir { entries, .. } => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Res<&mut BTreeMap<OsString, u64>> {
        match &mut self.inode_mut(dir)?.node {
            Node::Dir { entries, .. } => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn file_data_mut(&mut self, ino: u64) -> Res<&mut Vec<u8>> {
        match &mut self.inode_mut(ino)?.node {
            Node::File { data, .. } => Ok(data),
            Node::Dir { .. } => Err(Errno::EISDIR),
            Node::Special { .. } => Err(Errno::EINVAL),
        }
    }

    fn child(&self, dir: u64, name: &OsStr) -> Res<u64> {
        self.entries(dir)?.get(name).copied().ok_or(Errno::ENOENT)
    }

    fn is_dir(&self, ino: u64) -> bool {
        self.inodes.get(&ino).is_some_and(|i| matches!(i.node, Node::Dir { .. }))
    }

    fn attr(&self, ino: u64) -> Res<FileAttr> {
        let inode = self.inode(ino)?;
        let (nlink, rdev) = match &inode.node {
            Node::Dir { entries, .. } => (2 + entries.values().filter(|c| self.is_dir(**c)).count() as u32, 0),
            Node::File { .. } => (inode.links, 0),
            Node::Special { rdev, .. } => (inode.links, *rdev),
        };
        let size = inode.len();
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: inode.atime,
            mtime: inode.mtime,
            ctime: inode.ctime,
            crtime: inode.ctime,
            kind: inode.node.kind(),
            perm: inode.perm,
            nlink,
            uid: inode.uid,
            gid: inode.gid,
            rdev,
            blksize: BLOCK_SIZE as u32,
            flags: 0,
        })
    }

    /// Bytes held by linked files; an unlinked file's space is free at once, even if still open.
    fn used_bytes(&self) -> u64 {
        self.inodes.values().filter(|i| i.links > 0).map(Inode::len).sum()
    }

    /// Refuses growing `ino` to `new_len` bytes if that would overfill the disk.
    fn check_space(&self, ino: u64, new_len: u64) -> Res<()> {
        let Some(capacity) = self.faults.capacity_bytes else { return Ok(()) };
        let inode = self.inode(ino)?;
        if inode.links == 0 || new_len <= inode.len() {
            return Ok(());
        }
        if self.used_bytes() + (new_len - inode.len()) > capacity {
            return Err(Errno::ENOSPC);
        }
        Ok(())
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Res<FileAttr> {
        self.attr(self.child(parent, name)?)
    }

    /// Links a new inode under `parent`. Its synced state is empty, and its name is not in the
    /// parent's synced entries: both need their own sync to survive a cut.
    fn create(&mut self, parent: u64, name: &OsStr, node: Node, mode: u32, req: &Request) -> Res<FileAttr> {
        if name.len() > MAX_NAME {
            return Err(Errno::ENAMETOOLONG);
        }
        if self.entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let perm = (mode & 0o7777) as u16;
        self.inodes.insert(ino, Inode::new(node, perm, req.uid(), req.gid()));
        self.entries_mut(parent)?.insert(name.to_os_string(), ino);
        self.inode_mut(parent)?.touch();
        self.attr(ino)
    }

    fn set_size(&mut self, ino: u64, size: u64) -> Res<()> {
        let data = self.file_data_mut(ino)?;
        data.resize(usize::try_from(size).map_err(|_| Errno::EFBIG)?, 0);
        self.inode_mut(ino)?.touch();
        Ok(())
    }

    fn set_times(&mut self, ino: u64, atime: Option<TimeOrNow>, mtime: Option<TimeOrNow>) -> Res<()> {
        let resolve = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => SystemTime::now(),
        };
        let inode = self.inode_mut(ino)?;
        if let Some(t) = atime {
            inode.atime = resolve(t);
        }
        if let Some(t) = mtime {
            inode.mtime = resolve(t);
        }
        inode.ctime = SystemTime::now();
        Ok(())
    }

    fn set_owner(&mut self, ino: u64, mode: Option<u32>, uid: Option<u32>, gid: Option<u32>) -> Res<()> {
        let inode = self.inode_mut(ino)?;
        if let Some(mode) = mode {
            inode.perm = (mode & 0o7777) as u16;
        }
        inode.uid = uid.unwrap_or(inode.uid);
        inode.gid = gid.unwrap_or(inode.gid);
        inode.ctime = SystemTime::now();
        Ok(())
    }

    fn read(&mut self, ino: u64, offset: u64, size: u32) -> Res<Vec<u8>> {
        let inode = self.inode_mut(ino)?;
        inode.atime = SystemTime::now();
        let Node::File { data, .. } = &inode.node else { return Err(Errno::EISDIR) };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let end = start.saturating_add(size as usize).min(data.len());
        Ok(data[start..end].to_vec())
    }

    /// Stores `bytes` at `offset`, zero-filling any gap past the end, unless a fault refuses it.
    /// A refused write stores nothing.
    fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Res<u32> {
        if let Some(errno) = self.faults.fail_writes {
            return Err(errno);
        }
        let start = usize::try_from(offset).map_err(|_| Errno::EFBIG)?;
        let end = start.checked_add(bytes.len()).ok_or(Errno::EFBIG)?;
        self.check_space(ino, end as u64)?;
        let data = self.file_data_mut(ino)?;
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(bytes);
        self.inode_mut(ino)?.touch();
        self.stats.writes += 1;
        self.stats.bytes_written += bytes.len() as u64;
        Ok(bytes.len() as u32)
    }

    /// Only mode 0 (allocate, extending the size); the allocation is the zero fill.
    fn fallocate(&mut self, ino: u64, offset: u64, length: u64, mode: i32) -> Res<()> {
        if mode != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if let Some(errno) = self.faults.fail_writes {
            return Err(errno);
        }
        let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
        self.check_space(ino, end)?;
        let len = self.inode(ino)?.len();
        if end > len {
            self.set_size(ino, end)?;
        }
        Ok(())
    }

    /// A file's sync: data and size both, whether the caller asked for fsync or fdatasync.
    fn fsync(&mut self, ino: u64) -> Res<()> {
        self.stats.fsyncs += 1;
        if let Some(errno) = self.faults.fail_syncs {
            return Err(errno);
        }
        if let Node::File { data, synced } = &mut self.inode_mut(ino)?.node {
            synced.clone_from(data);
        }
        Ok(())
    }

    /// A directory's sync: its names as they are now (not its children's contents).
    fn fsyncdir(&mut self, ino: u64) -> Res<()> {
        self.stats.fsyncdirs += 1;
        if let Some(errno) = self.faults.fail_syncs {
            return Err(errno);
        }
        if let Node::Dir { entries, synced, .. } = &mut self.inode_mut(ino)?.node {
            synced.clone_from(entries);
        }
        Ok(())
    }

    /// `.`, `..` and the names, in name order.
    fn list(&self, dir: u64) -> Res<Vec<(u64, FileType, OsString)>> {
        let Node::Dir { entries, parent, .. } = &self.inode(dir)?.node else { return Err(Errno::ENOTDIR) };
        let mut list = vec![(dir, FileType::Directory, ".".into()), (*parent, FileType::Directory, "..".into())];
        for (name, ino) in entries {
            list.push((*ino, self.inode(*ino)?.node.kind(), name.clone()));
        }
        Ok(list)
    }

    /// Removes a name; the inode stays (it may be open, or come back at a cut).
    fn unlink(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Res<()> {
        let ino = self.child(parent, name)?;
        match (want_dir, self.is_dir(ino)) {
            (false, true) => return Err(Errno::EISDIR),
            (true, false) => return Err(Errno::ENOTDIR),
            (true, true) if !self.entries(ino)?.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        self.remove_name(parent, name)
    }

    fn remove_name(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        let ino = self.entries_mut(parent)?.remove(name).ok_or(Errno::ENOENT)?;
        self.inode_mut(parent)?.touch();
        let inode = self.inode_mut(ino)?;
        inode.links = inode.links.saturating_sub(1);
        inode.ctime = SystemTime::now();
        Ok(())
    }

    fn rename(&mut self, from: (u64, &OsStr), to: (u64, &OsStr), flags: RenameFlags) -> Res<()> {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let ino = self.child(from.0, from.1)?;
        if to.1.len() > MAX_NAME {
            return Err(Errno::ENAMETOOLONG);
        }
        if let Some(&target) = self.entries(to.0)?.get(to.1) {
            if target == ino {
                return Ok(());
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            self.unlink(to.0, to.1, self.is_dir(ino))?;
        }
        self.entries_mut(from.0)?.remove(from.1);
        self.entries_mut(to.0)?.insert(to.1.to_os_string(), ino);
        self.inode_mut(from.0)?.touch();
        self.inode_mut(to.0)?.touch();
        let inode = self.inode_mut(ino)?;
        inode.ctime = SystemTime::now();
        if let Node::Dir { parent, .. } = &mut inode.node {
            *parent = to.0;
        }
        Ok(())
    }

    /// (total, free) in blocks.
    fn statfs(&self) -> (u64, u64) {
        let capacity = self.faults.capacity_bytes.unwrap_or(DEFAULT_CAPACITY);
        (capacity / BLOCK_SIZE, capacity.saturating_sub(self.used_bytes()) / BLOCK_SIZE)
    }

    /// The power cut on the data: every node back to its synced state, then only what the synced
    /// names still reach from the root is kept.
    fn revert_to_synced(&mut self) {
        for inode in self.inodes.values_mut() {
            inode.node.revert();
        }
        let links = self.relink_from_root();
        self.inodes.retain(|ino, _| links.contains_key(ino));
        for (ino, inode) in &mut self.inodes {
            inode.links = links[ino];
        }
    }

    /// Walks the tree from the root, setting each directory's parent and counting each inode's
    /// names. Per-directory syncs can leave one directory named in two places (a move synced in the
    /// target only) or even in a cycle; as a fsck would, the first name found (breadth first) wins
    /// and the others are dropped. A file named twice simply has two links.
    fn relink_from_root(&mut self) -> HashMap<u64, u32> {
        let mut links = HashMap::from([(ROOT, 1)]);
        let mut queue = VecDeque::from([ROOT]);
        let mut seen_dirs = HashSet::from([ROOT]);
        while let Some(dir) = queue.pop_front() {
            let names: Vec<(OsString, u64)> =
                self.entries(dir).into_iter().flatten().map(|(n, i)| (n.clone(), *i)).collect();
            for (name, child) in names {
                if self.is_dir(child) {
                    if !seen_dirs.insert(child) {
                        self.drop_synced_name(dir, &name);
                        continue;
                    }
                    self.set_parent(child, dir);
                    queue.push_back(child);
                }
                *links.entry(child).or_insert(0) += 1;
            }
        }
        links
    }

    fn drop_synced_name(&mut self, dir: u64, name: &OsStr) {
        if let Some(Inode { node: Node::Dir { entries, synced, .. }, .. }) = self.inodes.get_mut(&dir) {
            entries.remove(name);
            synced.remove(name);
        }
    }

    fn set_parent(&mut self, dir: u64, new_parent: u64) {
        if let Some(Inode { node: Node::Dir { parent, .. }, .. }) = self.inodes.get_mut(&dir) {
            *parent = new_parent;
        }
    }
}

/// The node a mknod's mode asks for.
fn special_node(mode: u32, rdev: u32) -> Res<Node> {
    let kind = match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => return Ok(Node::File { data: Vec::new(), synced: Vec::new() }),
        SFlag::S_IFIFO => FileType::NamedPipe,
        SFlag::S_IFSOCK => FileType::Socket,
        SFlag::S_IFCHR => FileType::CharDevice,
        SFlag::S_IFBLK => FileType::BlockDevice,
        _ => return Err(Errno::EINVAL),
    };
    Ok(Node::Special { kind, rdev })
}

/// One mounted session's view of the shared state: what fuser serves. Once its epoch is over
/// (the session was stopped) every request fails with `EIO`, so a straggler from a dead mount can
/// never touch the state after the cut.
struct Session {
    state: Arc<Mutex<State>>,
    epoch: u64,
}

impl Session {
    fn with<T>(&self, op: impl FnOnce(&mut State) -> Res<T>) -> Res<T> {
        let mut state = lock(&self.state);
        if state.epoch != self.epoch {
            return Err(Errno::EIO);
        }
        op(&mut state)
    }
}

fn reply_empty(reply: ReplyEmpty, res: Res<()>) {
    match res {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn reply_entry(reply: ReplyEntry, res: Res<FileAttr>) {
    match res {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn reply_attr(reply: ReplyAttr, res: Res<FileAttr>) {
    match res {
        Ok(attr) => reply.attr(&TTL, &attr),
        Err(e) => reply.error(e),
    }
}

/// Opens keep no per-handle state. No `FOPEN_KEEP_CACHE`: the kernel drops its cached pages of
/// a file at every open.
fn reply_open(reply: ReplyOpen, res: Res<()>) {
    match res {
        Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for Session {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply_entry(reply, self.with(|s| s.lookup(parent.0, name)));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply_attr(reply, self.with(|s| s.attr(ino.0)));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let res = self.with(|s| {
            if let Some(size) = size {
                s.set_size(ino.0, size)?;
            }
            s.set_owner(ino.0, mode, uid, gid)?;
            if atime.is_some() || mtime.is_some() {
                s.set_times(ino.0, atime, mtime)?;
            }
            s.attr(ino.0)
        });
        reply_attr(reply, res);
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let res = self.with(|s| s.create(parent.0, name, special_node(mode, rdev)?, mode & !umask, req));
        reply_entry(reply, res);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let res = self.with(|s| {
            let dir = Node::Dir { entries: BTreeMap::new(), synced: BTreeMap::new(), parent: parent.0 };
            s.create(parent.0, name, dir, mode & !umask, req)
        });
        reply_entry(reply, res);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.with(|s| s.unlink(parent.0, name, false)));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.with(|s| s.unlink(parent.0, name, true)));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.with(|s| s.rename((parent.0, name), (newparent.0, newname), flags)));
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply_open(reply, self.with(|s| s.inode(ino.0).map(drop)));
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.with(|s| s.read(ino.0, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with(|s| s.write(ino.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // close(2) persists nothing; only a dead mount makes it fail.
        reply_empty(reply, self.with(|_| Ok(())));
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        if let Ok(Some(pause)) = self.with(|s| Ok(s.faults.slow_syncs)) {
            std::thread::sleep(pause);
        }
        reply_empty(reply, self.with(|s| s.fsync(ino.0)));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply_open(reply, self.with(|s| s.entries(ino.0).map(drop)));
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let list = match self.with(|s| s.list(ino.0)) {
            Ok(list) => list,
            Err(e) => return reply.error(e),
        };
        // An entry's offset is where the next readdir resumes: its index plus one.
        for (i, (child, kind, name)) in list.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply_empty(reply, self.with(|s| s.fsyncdir(ino.0)));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.with(|s| Ok(s.statfs())) {
            Ok((blocks, free)) => {
                reply.statfs(blocks, free, free, u64::from(u32::MAX), u64::from(u32::MAX), 4096, MAX_NAME as u32, 4096)
            }
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // The kernel checks modes itself (default_permissions); this only says the inode exists.
        reply_empty(reply, self.with(|s| s.inode(ino.0).map(drop)));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let res = self.with(|s| {
            let file = Node::File { data: Vec::new(), synced: Vec::new() };
            s.create(parent.0, name, file, mode & !umask, req)
        });
        match res {
            Ok(attr) => reply.created(&TTL, &attr, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.with(|s| s.fallocate(ino.0, offset, length, mode)));
    }
}

// Self-tests: each rule above, on the real mount, through plain std file I/O.

fn mounted() -> PowerFs {
    PowerFs::mount_temp().unwrap_or_else(|e| panic!("/dev/fuse exists, so powerfs must mount: {e}"))
}

/// fsync on the directory itself: the only thing that makes its names survive a cut.
fn sync_dir(dir: &Path) {
    File::open(dir).and_then(|d| d.sync_all()).unwrap_or_else(|e| panic!("fsync {}: {e}", dir.display()));
}

/// Creates (or replaces) `path` with `bytes`, fsyncs the file, and its directory if `name_too`.
fn write_synced(path: &Path, bytes: &[u8], name_too: bool) {
    let mut f = File::create(path).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
    if name_too {
        sync_dir(path.parent().unwrap());
    }
}

/// The file's content, or `None` if it does not exist.
fn content(path: &Path) -> Option<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn a_cut_keeps_the_synced_content_and_size_only() {
    let mut fs = mounted();
    let (full, data) = (fs.path().join("fsynced"), fs.path().join("fdatasynced"));
    let mut f = File::create(&full).unwrap();
    let mut d = File::create(&data).unwrap();
    sync_dir(fs.path());
    f.write_all(b"hello").unwrap();
    f.sync_all().unwrap();
    d.write_all(b"data").unwrap();
    d.sync_data().unwrap();
    f.write_all(b", and more that is never synced").unwrap();
    d.set_len(1).unwrap();
    drop((f, d));
    fs.power_cut().unwrap();
    assert_eq!(content(&full).as_deref(), Some(&b"hello"[..]));
    assert_eq!(fs::metadata(&full).unwrap().len(), 5);
    assert_eq!(content(&data).as_deref(), Some(&b"data"[..]), "fdatasync counts as a full sync of data and size");
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn a_new_file_survives_only_if_its_directory_was_synced() {
    let mut fs = mounted();
    let (synced, empty, nameless) = (fs.path().join("synced"), fs.path().join("empty"), fs.path().join("nameless"));
    write_synced(&synced, b"both synced", false);
    File::create(&empty).unwrap().write_all(b"name synced, data not").unwrap();
    sync_dir(fs.path());
    write_synced(&nameless, b"data synced, name not", false);
    fs.power_cut().unwrap();
    assert_eq!(content(&synced).as_deref(), Some(&b"both synced"[..]));
    assert_eq!(content(&empty).as_deref(), Some(&b""[..]), "a new file's synced content starts empty");
    assert_eq!(content(&nameless), None, "fsync of a file does not sync its name");
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn an_unlink_not_covered_by_a_directory_sync_is_undone() {
    let mut fs = mounted();
    let (back, gone) = (fs.path().join("back"), fs.path().join("gone"));
    write_synced(&back, b"synced", false);
    write_synced(&gone, b"synced", true);
    OpenOptions::new().append(true).open(&back).unwrap().write_all(b" then unsynced").unwrap();
    fs::remove_file(&gone).unwrap();
    sync_dir(fs.path());
    fs::remove_file(&back).unwrap();
    fs.power_cut().unwrap();
    assert_eq!(content(&back).as_deref(), Some(&b"synced"[..]), "comes back with its synced content");
    assert_eq!(content(&gone), None);
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn a_rename_lasts_only_once_its_directory_is_synced() {
    let mut fs = mounted();
    let (old, new) = (fs.path().join("old"), fs.path().join("new"));
    write_synced(&old, b"A", true);
    fs::rename(&old, &new).unwrap();
    fs.power_cut().unwrap();
    assert_eq!((content(&old).as_deref(), content(&new)), (Some(&b"A"[..]), None), "unsynced rename undone");
    fs::rename(&old, &new).unwrap();
    sync_dir(fs.path());
    fs.power_cut().unwrap();
    assert_eq!((content(&old), content(&new).as_deref()), (None, Some(&b"A"[..])), "synced rename kept");
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn a_rename_over_a_file_brings_the_old_target_back_if_not_synced() {
    let mut fs = mounted();
    let (tmp, target) = (fs.path().join("target.tmp"), fs.path().join("target"));
    write_synced(&target, b"old", false);
    write_synced(&tmp, b"new", true);
    fs::rename(&tmp, &target).unwrap();
    assert_eq!(content(&target).as_deref(), Some(&b"new"[..]));
    fs.power_cut().unwrap();
    assert_eq!((content(&tmp).as_deref(), content(&target).as_deref()), (Some(&b"new"[..]), Some(&b"old"[..])));
    fs::rename(&tmp, &target).unwrap();
    sync_dir(fs.path());
    fs.power_cut().unwrap();
    assert_eq!((content(&tmp), content(&target).as_deref()), (None, Some(&b"new"[..])));
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn a_move_between_directories_needs_both_synced() {
    let mut fs = mounted();
    let (from, to) = (fs.path().join("from"), fs.path().join("to"));
    fs::create_dir(&from).unwrap();
    fs::create_dir(&to).unwrap();
    sync_dir(fs.path());
    write_synced(&from.join("f"), b"F", true);
    fs::rename(from.join("f"), to.join("f")).unwrap();
    sync_dir(&to);
    fs.power_cut().unwrap();
    // Each directory's names are its own: only the target's sync happened, so both names are back.
    assert_eq!((content(&from.join("f")), content(&to.join("f"))), (Some(b"F".to_vec()), Some(b"F".to_vec())));
    fs::remove_file(from.join("f")).unwrap();
    sync_dir(&from);
    fs.power_cut().unwrap();
    assert_eq!((content(&from.join("f")), content(&to.join("f"))), (None, Some(b"F".to_vec())));
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn nested_directories_survive_only_if_every_level_is_synced() {
    let mut fs = mounted();
    let (a, b) = (fs.path().join("a"), fs.path().join("a/b"));
    let file = b.join("f");
    fs::create_dir_all(&b).unwrap();
    write_synced(&file, b"deep", true);
    sync_dir(&a);
    fs.power_cut().unwrap();
    assert!(!a.exists(), "the root's own names were never synced");

    fs::create_dir_all(&b).unwrap();
    write_synced(&file, b"deep", true);
    sync_dir(fs.path());
    fs.power_cut().unwrap();
    assert!(a.is_dir() && !b.exists(), "a's names were never synced");

    fs::create_dir_all(&b).unwrap();
    write_synced(&file, b"deep", true);
    sync_dir(&a);
    fs.power_cut().unwrap();
    assert_eq!(content(&file).as_deref(), Some(&b"deep"[..]));
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn sync_file_range_makes_nothing_durable() {
    let mut fs = mounted();
    let path = fs.path().join("ranged");
    File::create(&path).unwrap();
    sync_dir(fs.path());
    let before = fs.stats();
    // std has no sync_file_range(2) and unsafe code is forbidden here: python3 calls it via ctypes.
    let script = "import ctypes, os, sys\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        fd = os.open(sys.argv[1], os.O_WRONLY)\n\
        os.write(fd, b'written, then sync_file_range')\n\
        flags = 1 | 2 | 4  # WAIT_BEFORE | WRITE | WAIT_AFTER\n\
        if libc.sync_file_range(fd, ctypes.c_int64(0), ctypes.c_int64(0), ctypes.c_uint(flags)) != 0:\n\
        \x20   sys.exit('sync_file_range: ' + os.strerror(ctypes.get_errno()))\n";
    let out = Command::new("python3").arg("-c").arg(script).arg(&path).output();
    let out = out.unwrap_or_else(|e| panic!("this test needs python3 for sync_file_range(2): {e}"));
    assert!(out.status.success(), "python3: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(content(&path).as_deref(), Some(&b"written, then sync_file_range"[..]), "written through");
    assert_eq!((fs.stats().fsyncs, fs.stats().fsyncdirs), (before.fsyncs, before.fsyncdirs), "no sync reached us");
    fs.power_cut().unwrap();
    assert_eq!(content(&path).as_deref(), Some(&b""[..]));
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn injected_write_errors_last_until_cleared() {
    let fs = mounted();
    let path = fs.path().join("f");
    let mut f = File::create(&path).unwrap();
    for fault in [Errno::EIO, Errno::ENOSPC] {
        fs.set_faults(Faults { fail_writes: Some(fault), ..Faults::default() });
        let e = f.write_all(b"refused").unwrap_err();
        assert_eq!(errno(&e), Some(fault.code()));
    }
    assert_eq!(content(&path).as_deref(), Some(&b""[..]), "a refused write stores nothing");
    fs.set_faults(Faults::default());
    f.write_all(b"accepted").unwrap();
    assert_eq!(content(&path).as_deref(), Some(&b"accepted"[..]));
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn a_full_disk_refuses_writes_and_statfs_shows_it() {
    let fs = mounted();
    let capacity = 256 * 1024;
    fs.set_faults(Faults { capacity_bytes: Some(capacity), ..Faults::default() });
    let mut f = File::create(fs.path().join("f")).unwrap();
    f.write_all(&[1; 200 * 1024]).unwrap();
    let vfs = nix::sys::statvfs::statvfs(fs.path()).unwrap();
    assert_eq!(vfs.blocks() * vfs.fragment_size(), capacity);
    assert_eq!(vfs.blocks_available() * vfs.fragment_size(), 56 * 1024);
    let e = f.write_all(&[2; 100 * 1024]).unwrap_err();
    assert_eq!(errno(&e), Some(nix::libc::ENOSPC));
    let no_room = nix::fcntl::fallocate(&f, nix::fcntl::FallocateFlags::empty(), 0, 300 * 1024);
    assert_eq!(no_room, Err(nix::errno::Errno::ENOSPC));
    // The refused write may have stored its first pages (the kernel splits a large write): what
    // is left of the capacity is still fallocate's to take.
    assert!(f.metadata().unwrap().len() <= capacity);
    nix::fcntl::fallocate(&f, nix::fcntl::FallocateFlags::empty(), 0, capacity as i64).unwrap();
    assert_eq!(f.metadata().unwrap().len(), capacity, "fallocate mode 0 extends the file");
    fs::remove_file(fs.path().join("f")).unwrap();
    let mut g = File::create(fs.path().join("g")).unwrap();
    g.write_all(&[3; 200 * 1024]).unwrap();
    fs.set_faults(Faults::default());
    g.write_all(&[4; 100 * 1024]).unwrap();
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn a_failed_sync_marks_nothing_synced() {
    let mut fs = mounted();
    let (path, unnamed) = (fs.path().join("f"), fs.path().join("unnamed"));
    let mut f = File::create(&path).unwrap();
    sync_dir(fs.path());
    File::create(&unnamed).unwrap();
    f.write_all(b"data").unwrap();
    fs.set_faults(Faults { fail_syncs: Some(Errno::EIO), ..Faults::default() });
    assert_eq!(errno(&f.sync_all().unwrap_err()), Some(nix::libc::EIO));
    assert_eq!(errno(&f.sync_data().unwrap_err()), Some(nix::libc::EIO));
    assert_eq!(errno(&File::open(fs.path()).unwrap().sync_all().unwrap_err()), Some(nix::libc::EIO));
    drop(f);
    fs.set_faults(Faults::default());
    fs.power_cut().unwrap();
    assert_eq!((content(&path).as_deref(), content(&unnamed)), (Some(&b""[..]), None));

    write_synced(&path, b"data", false);
    fs.power_cut().unwrap();
    assert_eq!(content(&path).as_deref(), Some(&b"data"[..]), "syncs work again once cleared");
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn stats_count_syncs_and_written_bytes() {
    let fs = mounted();
    let start = fs.stats();
    write_synced(&fs.path().join("f"), &[7; 1000], true);
    let now = fs.stats();
    assert_eq!(now.fsyncs - start.fsyncs, 1);
    assert_eq!(now.fsyncdirs - start.fsyncdirs, 1);
    assert_eq!(now.bytes_written - start.bytes_written, 1000);
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn writes_past_the_end_zero_fill_and_big_writes_arrive_in_pieces() {
    let mut fs = mounted();
    let (sparse, big) = (fs.path().join("sparse"), fs.path().join("big"));
    let f = File::create(&sparse).unwrap();
    f.write_all_at(b"x", 10).unwrap();
    f.sync_all().unwrap();
    let payload: Vec<u8> = (0..3 * 1024 * 1024 + 123).map(|i| (i % 251) as u8).collect();
    let before = fs.stats();
    write_synced(&big, &payload, true);
    let after = fs.stats();
    assert_eq!(after.bytes_written - before.bytes_written, payload.len() as u64);
    assert!(after.writes - before.writes > 1, "the kernel splits a 3 MiB write(2) into several requests");
    fs.power_cut().unwrap();
    assert_eq!(content(&sparse), Some([&[0; 10][..], b"x"].concat()));
    assert!(content(&big) == Some(payload), "big file intact");
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn flock_works_on_the_mount() {
    use nix::fcntl::{Flock, FlockArg};
    let fs = mounted();
    let path = fs.path().join("lock");
    let held = Flock::lock(File::create(&path).unwrap(), FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e).unwrap();
    let (_, e) = Flock::lock(File::open(&path).unwrap(), FlockArg::LockExclusiveNonblock).unwrap_err();
    assert_eq!(e, nix::errno::Errno::EWOULDBLOCK, "a second exclusive flock is refused");
    drop(held);
    Flock::lock(File::open(&path).unwrap(), FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e).unwrap();
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn a_clean_remount_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut fs = PowerFs::mount(dir.path()).unwrap();
    fs::create_dir(fs.path().join("d")).unwrap();
    fs::write(fs.path().join("d/f"), b"never synced").unwrap();
    fs.remount().unwrap();
    assert_eq!(content(&fs.path().join("d/f")).as_deref(), Some(&b"never synced"[..]));
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn a_file_held_open_across_a_cut_is_dead() {
    let mut fs = mounted();
    let path = fs.path().join("f");
    write_synced(&path, b"synced", true);
    let mut stale = OpenOptions::new().append(true).open(&path).unwrap();
    fs.power_cut().unwrap();
    assert_eq!(errno(&stale.write_all(b"too late").unwrap_err()), Some(nix::libc::EIO));
    assert_eq!(errno(&stale.sync_all().unwrap_err()), Some(nix::libc::EIO));
    drop(stale);
    assert_eq!(content(&path).as_deref(), Some(&b"synced"[..]));
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn attributes_and_special_files_work() {
    let fs = mounted();
    let path = fs.path().join("f");
    let f = File::create(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    f.set_modified(when).unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.modified().unwrap()), (0o640, when));
    nix::unistd::mkfifo(&fs.path().join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(fs::symlink_metadata(fs.path().join("fifo")).unwrap().file_type().is_fifo());
    let mut names: Vec<_> = fs::read_dir(fs.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["f", "fifo"]);
}

#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn a_sled_database_reopens_after_a_clean_remount() {
    let mut fs = mounted();
    let path = fs.path().join("store");
    let db = sled::open(&path).unwrap();
    for i in 0u32..500 {
        db.insert(i.to_be_bytes(), vec![i as u8; 100]).unwrap();
    }
    db.flush().unwrap();
    drop(db);
    fs.remount().unwrap();
    let db = sled::open(&path).unwrap();
    assert_eq!(db.len(), 500);
    assert_eq!(db.get(7u32.to_be_bytes()).unwrap().as_deref(), Some(&[7; 100][..]));
}

/// What the daemon's power-loss tests rest on: sled 0.34's `flush()` writes with sync_file_range(2)
/// only, so on its own it makes nothing durable here (nor on a real disk's metadata); only sled's
/// periodic flusher thread (every `flush_every_ms`, 500 ms by default) and its `Drop` fsync.
#[test]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
fn a_sled_flush_sends_no_fsync() {
    let fs = mounted();
    let db = sled::Config::new().path(fs.path().join("store")).flush_every_ms(None).open().unwrap();
    let before = fs.stats();
    db.insert(b"key", b"value").unwrap();
    db.flush().unwrap();
    let after = fs.stats();
    assert!(after.bytes_written > before.bytes_written, "flush wrote");
    assert_eq!((after.fsyncs, after.fsyncdirs), (before.fsyncs, before.fsyncdirs), "but synced nothing");
}
