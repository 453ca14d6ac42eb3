//! `serve`: the HTTP server, the admin socket and the background workers, started together and
//! stopped together.
//!
//! [`run`] takes its listener and shutdown token from the caller, so tests run the real server
//! in-process on `127.0.0.1:0`. Shutdown order: stop accepting (HTTP requests in flight get
//! `server.shutdown_timeout_seconds` to finish, each durable before its 200; then their
//! connections are closed), stop the workers (calls in flight get a few seconds, the rest stays
//! queued; at the same time as the HTTP side, as both watch the same token), apply and sync
//! everything the store took, return: within the contract's 10 s. A store that failed beyond
//! repair in this process stops the server too, and `run` returns an error (exit non-zero).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{now_ms, App};
use crate::{admin, http, jobs, outbox, systemd, telemetry};

/// How often webhook ids and expired payloads are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Webhook ids are kept at least this long for de-duplication (CONTRACT.md §4.1).
const DEDUPE_DAYS: i64 = 7;

pub async fn run(app: Arc<App>, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    telemetry::install_metrics();
    let admin_listener = admin::socket::bind(&app.cfg.storage.path)?;
    let workers = [
        tokio::spawn(outbox::worker_loop(app.clone(), shutdown.clone())),
        tokio::spawn(admin::socket::serve_loop(app.clone(), admin_listener, shutdown.clone())),
        tokio::spawn(prune_loop(app.clone(), shutdown.clone())),
    ];
    let mut scheduler = jobs::start(app.clone()).await?;
    // Bookings interrupted by a stop or a crash finish now (the courier recognises a repeat).
    crate::services::shipments::resume_bookings(&app).await?;
    app.ready.store(true, Ordering::Release);
    tracing::info!(listen = %listener.local_addr()?, "channeld is serving");
    systemd::notify("READY=1");
    let stopping = shutdown.clone();
    let mut failed = app.store.health().failed();
    let limits = http::ConnLimits::from(&app.cfg.server);
    http::serve(listener, http::router(app.clone()), limits, async move {
        tokio::select! {
            _ = stopping.cancelled() => {}
            _ = failed.wait_for(Option::is_some) => {}
        }
        systemd::notify("STOPPING=1");
        tracing::info!("shutting down: no new requests");
    })
    .await;
    shutdown.cancel();
    app.ready.store(false, Ordering::Release);
    if let Err(e) = scheduler.shutdown().await {
        tracing::warn!(error = %e, "job scheduler did not stop cleanly");
    }
    for w in workers {
        let _ = w.await;
    }
    if let Some(why) = app.store.health().fatal() {
        // Exiting non-zero lets systemd restart the daemon; the replay at start-up recovers.
        anyhow::bail!("the store failed ({why}); exiting so that a restart recovers it");
    }
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.close()).await??;
    tracing::info!("store synced; bye");
    Ok(())
}

async fn prune_loop(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        let day = 86_400_000i64;
        let keep_days = i64::from(app.cfg.storage.retention_days);
        let now = now_ms();
        let (store, archive) = (app.store.clone(), app.cfg.handover.archive);
        let pruned = tokio::task::spawn_blocking(move || {
            store.prune(now - DEDUPE_DAYS.max(keep_days) * day, now - keep_days * day, archive)
        })
        .await
        .unwrap_or_else(|e| Err(crate::store::StoreError::Checkpoint(e.to_string())));
        match pruned {
            Ok(n) if n > 0 => {
                tracing::info!(removed = n, "pruned expired webhook ids, payloads, personal data and finished orders")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning failed; will try again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
