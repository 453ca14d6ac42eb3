//! `channeld serve`: open the store, bind, run until SIGTERM or SIGINT.

use std::path::Path;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::{permission_warning, Config};
use crate::store::Store;
use crate::{server, telemetry};

pub async fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    telemetry::init_logging(&cfg.log);
    if let Some(warning) = permission_warning(path) {
        tracing::warn!("{warning}");
    }
    let store = Store::open(&cfg.storage.path, cfg.storage.cache_capacity_mb)
        .with_context(|| format!("could not open the store at {}", cfg.storage.path.display()))?;
    let listener = TcpListener::bind(&cfg.server.listen)
        .await
        .with_context(|| format!("could not listen on {} (server.listen)", cfg.server.listen))?;
    let app = App::new(cfg, store)?;
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
