//! `channeld serve`: open the store, bind, run until SIGTERM or SIGINT.

use std::path::Path;

use anyhow::Context;
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
