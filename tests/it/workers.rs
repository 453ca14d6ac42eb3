//! The workers a daemon needs for as long as it runs (#25): one that stops makes `/readyz` answer
//! 503 and the daemon stop with an error, so that systemd restarts it; a job run that panics is
//! only a failed run of that job.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use channeld::app::App;
use reqwest::StatusCode;

use crate::helpers::TestApp;

/// `GET /readyz`: status and body.
async fn readyz(t: &TestApp) -> (StatusCode, String) {
    let resp = t.http.get(t.url("/readyz")).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Waits until `/readyz` answers 200 (the server starts in the background).
async fn ready(t: &TestApp) {
    for _ in 0..1000 {
        if readyz(t).await.0 == StatusCode::OK {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never ready");
}

/// The scheduler's own tasks cannot be joined: it is stopped here through its real handle, as a
/// panic in its ticker would stop it, and its watcher notices the missing heartbeat (ten checks a
/// second apart).
#[tokio::test]
async fn a_job_scheduler_that_stops_makes_readyz_503_and_the_daemon_exit_with_an_error() {
    let t = TestApp::spawn().await;
    ready(&t).await;
    let mut scheduler = t.app.scheduler.get().expect("serve started the scheduler").clone();
    scheduler.shutdown().await.unwrap();

    for _ in 0..3000 {
        if t.app.stopped_worker().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(t.app.stopped_worker().is_some(), "the stopped scheduler was noticed within 30 s");
    // Unready at once; the daemon stops a moment later.
    let (status, why) = readyz(&t).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{why}");
    assert!(why.contains("job scheduler"), "/readyz names the worker: {why}");
    let ended = t.stopped_by_itself(Duration::from_secs(15)).await;
    let err = ended.expect_err("serve ends with an error (exit non-zero), for a restart");
    assert!(err.to_string().contains("job scheduler"), "{err}");
}

/// A job whose run panics (a bug).
async fn run_with_a_bug(_: Arc<App>) -> anyhow::Result<String> {
    panic!("a bug in the job")
}

fn panicking_run(app: Arc<App>) -> Pin<Box<dyn Future<Output = anyhow::Result<String>> + Send>> {
    Box::pin(run_with_a_bug(app))
}

#[tokio::test]
async fn a_job_run_that_panics_is_recorded_as_a_failed_run_and_the_daemon_stays_ready() {
    let t = TestApp::spawn().await;
    ready(&t).await;
    const FAILED_RUNS: &str = "channeld_job_runs_total{job=\"reconcile\",result=\"error\"}";
    let failed_before = t.metric(FAILED_RUNS).await;

    channeld::jobs::run_recorded(&t.app, "reconcile", panicking_run).await;

    let statuses = t.app.store.job_statuses().unwrap();
    let (_, run) = statuses.iter().find(|(job, _)| job == "reconcile").expect("the run is recorded");
    assert!(!run.ok && run.summary.contains("panicked"), "{run:?}");
    assert!(t.metric(FAILED_RUNS).await >= failed_before + 1.0, "counted as a failed run");
    let (_, out, err) = t.cli(&["doctor"]).await;
    assert!(out.contains("job reconcile failed at") && out.contains("panicked"), "doctor shows it: {out}{err}");
    // The job's task died, not a worker: the daemon goes on.
    assert_eq!(readyz(&t).await.0, StatusCode::OK);
    t.stop().await;
}
