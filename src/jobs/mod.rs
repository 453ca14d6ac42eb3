//! Scheduled jobs (tokio-cron-scheduler, cron with seconds, UTC) and their bookkeeping.
//!
//! Each job is one async function `run(&App) -> Result<String>`; the wiring here guarantees that a
//! job never runs twice at once (a tick that finds it still running is skipped), records its last
//! run and result (store, metrics, logs; a run that panics is a failed run), and leaves retrying to
//! the next tick.
//!
//! The scheduler runs in tasks of its own that nothing can join, so it is watched instead: a
//! heartbeat job of its own beats every second, and [`Scheduler::watch_loop`], supervised like the
//! other workers (`server::supervised`), ends when the beats stop, which makes the daemon unready
//! and stops it for a restart. Without that, a dead scheduler would leave a daemon that looks
//! healthy and never pushes inventory, reconciles or archives again.

pub mod archive;
pub mod inventory_push;
pub mod reconcile;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::app::{now_ms, App};
use crate::store::JobStatus;

type JobFn = fn(Arc<App>) -> Pin<Box<dyn Future<Output = anyhow::Result<String>> + Send>>;

/// The jobs and the configuration key holding each one's schedule.
fn jobs(app: &App) -> Vec<(&'static str, &'static str, String, JobFn)> {
    let c = &app.cfg;
    vec![
        ("inventory_push", "inventory.push_schedule", c.inventory.push_schedule.clone(), |app| {
            Box::pin(async move { inventory_push::run(&app).await })
        }),
        ("reconcile", "jobs.reconcile_schedule", c.jobs.reconcile_schedule.clone(), |app| {
            Box::pin(async move { reconcile::run(&app).await })
        }),
        ("archive", "jobs.archive_schedule", c.jobs.archive_schedule.clone(), |app| {
            Box::pin(async move { archive::run(&app).await })
        }),
        ("label_retrieval", "jobs.label_retrieval_schedule", c.jobs.label_retrieval_schedule.clone(), |app| {
            Box::pin(async move { crate::services::shipments::retrieve_labels(&app).await })
        }),
    ]
}

/// The heartbeat job's schedule: every second.
const HEARTBEAT: &str = "* * * * * *";
/// How often [`Scheduler::watch_loop`] looks for a new beat.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Checks in a row without a beat after which the scheduler counts as stopped. Counted in checks,
/// not in wall time: a process starved of CPU delays the checks as much as the beats, so only a
/// scheduler that stopped while the rest of the daemon runs misses this many.
const MISSED_CHECKS: u32 = 10;

/// The running scheduler and its heartbeat.
pub struct Scheduler {
    jobs: JobScheduler,
    /// How many times the heartbeat job ran.
    beats: Arc<AtomicU64>,
}

impl Scheduler {
    /// A handle on the scheduler itself; stopping it stops every job.
    pub fn handle(&self) -> JobScheduler {
        self.jobs.clone()
    }

    /// Runs until `shutdown`, then stops the scheduler. Returns before that when the scheduler no
    /// longer runs its heartbeat: under `server::supervised`, the daemon then turns unready and
    /// stops, so that a restart brings the jobs back.
    pub async fn watch_loop(mut self, shutdown: CancellationToken) {
        let (mut seen, mut missed) = (self.beats.load(Ordering::Relaxed), 0);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = shutdown.cancelled() => break,
            }
            let beats = self.beats.load(Ordering::Relaxed);
            missed = if beats == seen { missed + 1 } else { 0 };
            seen = beats;
            if missed >= MISSED_CHECKS {
                tracing::error!(missed_checks = missed, "the job scheduler stopped running jobs");
                break;
            }
        }
        if let Err(e) = self.jobs.shutdown().await {
            tracing::warn!(error = %e, "job scheduler did not stop cleanly");
        }
    }
}

/// Creates the scheduler with every job and its heartbeat, and starts it.
pub async fn start(app: Arc<App>) -> anyhow::Result<Scheduler> {
    let sched = JobScheduler::new().await.context("could not create the job scheduler")?;
    let beats = Arc::new(AtomicU64::new(0));
    let beat = beats.clone();
    let heartbeat = Job::new_async(HEARTBEAT, move |_, _| {
        beat.fetch_add(1, Ordering::Relaxed);
        Box::pin(async {})
    })
    .context("the scheduler's heartbeat")?;
    sched.add(heartbeat).await.context("could not schedule the heartbeat")?;
    for (name, key, schedule, run) in jobs(&app) {
        let guard = Arc::new(Mutex::new(()));
        // The scheduler may outlive `serve` inside one process (tests): it must not keep the app
        // (and with it the store) alive, so it holds a weak reference.
        let app = Arc::downgrade(&app);
        let job = Job::new_async(schedule.as_str(), move |_, _| {
            let (app, guard) = (app.clone(), guard.clone());
            Box::pin(async move {
                let Some(app) = app.upgrade() else { return };
                let Ok(_running) = guard.try_lock() else {
                    tracing::debug!(job = name, "previous run still going; tick skipped");
                    return;
                };
                run_recorded(&app, name, run).await;
            })
        })
        .with_context(|| format!("{key}: {schedule:?} is not a valid cron expression"))?;
        sched.add(job).await.with_context(|| format!("could not schedule {name}"))?;
    }
    sched.start().await.context("could not start the job scheduler")?;
    Ok(Scheduler { jobs: sched, beats })
}

/// Runs a job once and records the outcome.
pub async fn run_recorded(app: &Arc<App>, name: &'static str, run: JobFn) {
    let started = now_ms();
    // A panicking run is a failed run (recorded, retried at the next tick), not a silent one.
    let (ok, summary) = match tokio::spawn(run(app.clone())).await {
        Ok(Ok(summary)) => (true, summary),
        Ok(Err(e)) => (false, format!("{e:#}")),
        Err(e) if e.is_panic() => (false, "the run panicked (a bug: see the log)".to_string()),
        Err(e) => (false, format!("the run was cancelled: {e}")),
    };
    if ok {
        // Every 30 s by default: routine runs are debug, failures are warnings.
        tracing::debug!(job = name, %summary, "job ran");
    } else {
        tracing::warn!(job = name, error = %summary, "job failed; retried at the next tick");
    }
    metrics::gauge!("channeld_job_last_run_timestamp_seconds", "job" => name).set(started as f64 / 1000.0);
    metrics::gauge!("channeld_job_last_success", "job" => name).set(if ok { 1.0 } else { 0.0 });
    metrics::counter!("channeld_job_runs_total", "job" => name, "result" => if ok { "ok" } else { "error" })
        .increment(1);
    let status = JobStatus { last_run_ms: started, ok, summary };
    if let Err(e) = app.store.call(move |s| s.set_job_status(name, &status)).await {
        tracing::warn!(job = name, error = %e, "could not record the job's status");
    }
}
