//! `serve`: the HTTP server, the admin socket, the operator console (on its own listener, when
//! configured) and the background workers, started together and stopped together.
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
use crate::{admin, console, http, jobs, outbox, systemd, telemetry};

/// How long a daemon whose worker stopped stays up, answering `/readyz` 503, before it stops: a
/// health checker or load balancer sees it unready first, then systemd restarts it.
const UNREADY_BEFORE_STOP: Duration = Duration::from_secs(2);
/// How often webhook ids and expired payloads are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Webhook ids are kept at least this long for de-duplication (CONTRACT.md §4.1).
const DEDUPE_DAYS: i64 = 7;

pub async fn run(app: Arc<App>, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    telemetry::install_metrics();
    let admin_listener = admin::socket::bind(&app.cfg.storage.path)?;
    let console_listener = console::bind(&app.cfg).await?;
    let store = app.store.clone();
    let newest = tokio::task::spawn_blocking(move || store.newest_order_ms()).await?.ok().flatten();
    telemetry::seed_last_webhook(newest, now_ms());
    let mut workers = vec![
        supervised(&app, &shutdown, "outbox", outbox::worker_loop(app.clone(), shutdown.clone())),
        supervised(
            &app,
            &shutdown,
            "admin socket",
            admin::socket::serve_loop(app.clone(), admin_listener, shutdown.clone()),
        ),
        supervised(&app, &shutdown, "pruning", prune_loop(app.clone(), shutdown.clone())),
    ];
    let scheduler = jobs::start(app.clone()).await?;
    let _ = app.scheduler.set(scheduler.handle());
    workers.push(supervised(&app, &shutdown, "job scheduler", scheduler.watch_loop(shutdown.clone())));
    // Bookings interrupted by a stop or a crash finish now (the courier recognises a repeat).
    crate::services::shipments::resume_bookings(&app).await?;
    // The console is no worker the daemon needs: it runs beside them and stops with them.
    let console_task = match console_listener {
        Some(l) => {
            let _ = app.console_addr.set(l.local_addr()?);
            let stop = shutdown.clone();
            Some(tokio::spawn(console::serve(app.clone(), l, async move { stop.cancelled().await })))
        }
        None => None,
    };
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
    // The scheduler's watcher stops it on the same token.
    for w in workers.into_iter().chain(console_task) {
        let _ = w.await;
    }
    if let Some(why) = app.store.health().fatal() {
        // Exiting non-zero lets systemd restart the daemon; the replay at start-up recovers.
        anyhow::bail!("the store failed ({why}); exiting so that a restart recovers it");
    }
    if let Some(why) = app.stopped_worker() {
        let store = app.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        anyhow::bail!("{why}; exiting so that a restart brings it back");
    }
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.close()).await??;
    tracing::info!("store synced; bye");
    Ok(())
}

/// Runs a worker that must live as long as the server. If it ends before shutdown (a panic, an
/// early return), `/readyz` says so at once and, [`UNREADY_BEFORE_STOP`] later, the server stops,
/// so that `serve` exits non-zero and systemd restarts it: a daemon without its outbox worker would
/// acknowledge and never deliver. (Meanwhile what it acknowledges is durable, as ever.)
fn supervised(
    app: &Arc<App>,
    shutdown: &CancellationToken,
    name: &'static str,
    worker: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (app, shutdown) = (app.clone(), shutdown.clone());
    let running = tokio::spawn(worker);
    tokio::spawn(async move {
        let ended = running.await;
        if shutdown.is_cancelled() && ended.is_ok() {
            return;
        }
        let why = match ended {
            Err(e) if e.is_panic() => format!("the {name} worker panicked"),
            Err(e) => format!("the {name} worker was cancelled: {e}"),
            Ok(()) => format!("the {name} worker stopped"),
        };
        tracing::error!(worker = name, reason = %why, "a worker stopped: not ready, shutting down for a restart");
        app.worker_stopped(why);
        tokio::select! {
            _ = tokio::time::sleep(UNREADY_BEFORE_STOP) => {}
            _ = shutdown.cancelled() => {}
        }
        shutdown.cancel();
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn app(dir: &std::path::Path) -> Arc<App> {
        let config = dir.join("c.toml");
        let store_path = dir.join("store");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[shopify]\nshop = \"s\"\n\
                 access_token = \"t\"\nwebhook_secret = \"w\"\n[wms]\nbase_url = \"http://127.0.0.1:9\"\n",
                store_path.display()
            ),
        )
        .unwrap();
        let cfg = crate::config::Config::load(&config).unwrap();
        let store = crate::store::Store::open(&store_path, 8).unwrap();
        App::new(cfg, store).unwrap()
    }

    #[tokio::test]
    async fn a_worker_that_panics_makes_the_daemon_unready_and_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        app.ready.store(true, Ordering::Release);
        assert!(app.readiness().is_ok());
        let shutdown = CancellationToken::new();
        let watcher = supervised(&app, &shutdown, "outbox", async { panic!("a bug") });
        while app.stopped_worker().is_none() {
            tokio::task::yield_now().await;
        }
        let why = app.readiness().unwrap_err();
        assert!(why.contains("outbox worker panicked"), "{why}");
        assert!(!shutdown.is_cancelled(), "unready first, for health checkers to see");
        watcher.await.unwrap();
        assert!(shutdown.is_cancelled(), "the server stops for a restart");
    }

    #[tokio::test]
    async fn a_worker_that_ends_at_shutdown_is_no_failure() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let watcher = supervised(&app, &shutdown, "outbox", async move { token.cancelled().await });
        shutdown.cancel();
        watcher.await.unwrap();
        assert!(app.stopped_worker().is_none());
    }
}
