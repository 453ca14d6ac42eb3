//! The few file-system calls durability needs beyond `std`: syncing a directory (so a file created,
//! renamed or removed in it survives a power cut), and keeping the store private: its directories
//! 0700 and its files 0600 whatever the umask (they hold names and addresses). The one exception
//! is the admin socket, 0660 by contract (`admin::socket`), which [`restrict_tree`] leaves alone.

use std::fs::{DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Makes the directory entries of `dir` durable (`fsync` on the directory itself).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (and missing parents) readable by its owner only, whatever the umask, and syncs
/// the parent of every directory it created. An existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    // The umask may have taken bits away, never added them; set exactly 0700.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Gives every directory under `root` mode 0700 and every file 0600 (sockets and symbolic links
/// are left alone; `root` itself too: its mode is the operator's, checked by `serve`). sled
/// creates its files with the process's umask; this runs after it did. An entry this user may not
/// change (another user's file, say one an operator exported there as root) is named in a warning
/// rather than stopping the store.
pub fn restrict_tree(root: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let mode = if kind.is_dir() {
            match restrict_tree(&entry.path()) {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => warn_not_private(&entry.path(), 0o700),
                walked => walked?,
            }
            0o700
        } else if kind.is_file() {
            0o600
        } else {
            continue;
        };
        if entry.metadata()?.permissions().mode() & 0o777 != mode {
            match std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode)) {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => warn_not_private(&entry.path(), mode),
                changed => changed?,
            }
        }
    }
    Ok(())
}

fn warn_not_private(path: &Path, mode: u32) {
    tracing::warn!(path = %path.display(), "could not make this entry of the store private (another user's?): chmod {mode:o} it");
}

/// Replaces `path` with `bytes` so that a power cut leaves either the old file or the new one:
/// written to a temporary file (mode 0600), synced, renamed over, and the directory synced.
pub fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_tree_left_open_by_a_permissive_umask_is_made_private_but_sockets_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("db/blobs");
        std::fs::create_dir_all(&dir).unwrap();
        let file = root.path().join("db/conf");
        std::fs::write(&file, b"x").unwrap();
        let socket = root.path().join("admin.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        for (p, m) in [(&dir, 0o777), (&root.path().join("db"), 0o755), (&file, 0o666), (&socket, 0o660)] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        restrict_tree(root.path()).unwrap();
        assert_eq!(mode(&root.path().join("db")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&socket), 0o660, "the admin socket keeps its contract mode");
    }

    #[test]
    fn a_file_written_synced_is_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("first-start");
        write_synced(&p, b"1").unwrap();
        assert_eq!(mode(&p), 0o600);
    }
}
