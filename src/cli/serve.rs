//! `channeld serve`: open the store, bind, run until SIGTERM or SIGINT.
//!
//! It refuses a store directory other users can read or change (group or world read or write
//! bits): the store holds customers' names and addresses. The store creates its directory 0700;
//! under systemd, `StateDirectoryMode=0710` lets the group reach the admin socket and nothing else.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::config::{permission_warning, Config};
use crate::store::Store;
use crate::{server, telemetry};

pub async fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    telemetry::init_logging(&cfg.log);
    if let Some(warning) = permission_warning(path) {
        tracing::warn!("{warning}");
    }
    refuse_an_open_store(&cfg.storage.path)?;
    // Opening and replaying read the disk: a blocking thread, not a runtime worker.
    let app = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let store = Store::open_with(&cfg.storage.path, &(&cfg.storage).into())
            .with_context(|| format!("could not open the store at {}", cfg.storage.path.display()))?;
        crate::services::open(cfg, store)
    })
    .await??;
    let listener = TcpListener::bind(&app.cfg.server.listen)
        .await
        .with_context(|| format!("could not listen on {} (server.listen)", app.cfg.server.listen))?;
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
        trigger.cancel();
    });
    server::run(app, listener, shutdown).await
}

/// Refuses to serve a store directory whose mode lets others read or write it (search alone is
/// fine). A store that does not exist yet is created private.
fn refuse_an_open_store(dir: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::metadata(dir) else { return Ok(()) };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o066 != 0 {
        bail!(
            "the store directory {dir} can be read or changed by other users (mode {mode:o}), and it holds \
             customers' names and addresses; run: chmod 700 {dir}",
            dir = dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_directory_others_can_read_or_write_is_refused_but_search_alone_is_not() {
        let d = tempfile::tempdir().unwrap();
        for (m, refused) in
            [(0o700, false), (0o710, false), (0o711, false), (0o750, true), (0o770, true), (0o702, true)]
        {
            std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(m)).unwrap();
            let verdict = refuse_an_open_store(d.path());
            assert_eq!(verdict.is_err(), refused, "{m:o}");
            if let Err(e) = verdict {
                assert!(e.to_string().contains(&format!("chmod 700 {}", d.path().display())), "{e}");
            }
        }
        assert!(refuse_an_open_store(&d.path().join("not-yet")).is_ok());
    }
}
