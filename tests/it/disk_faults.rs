//! Disk faults under load, injected by `powerfs`: a full disk and a failing one (`EIO` on every
//! write and sync). Whatever cannot be made durable is answered 503 (so Shopify retries it) and
//! `/readyz` says the store cannot write; nothing answered 200 is lost; when the disk works again
//! the daemon takes requests again by itself — or, if its state database cannot recover in the
//! process, exits non-zero so that systemd restarts it, and the restart recovers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;

use crate::crash::{all_delivered, free_addr, start};
use crate::fakes::FakeWms;
use crate::helpers::Options;
use crate::power_loss::{config_on, mounted, post_order, until};
use crate::powerfs::{Errno, Faults, PowerFs};

/// Orders posted by 4 senders until stopped: which were answered 200 and which 503.
struct Intake {
    acked: Arc<Mutex<HashSet<u64>>>,
    refused: Arc<Mutex<HashSet<u64>>>,
    stop: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Intake {
    fn start(addr: std::net::SocketAddr) -> Self {
        let (acked, refused) = (Arc::new(Mutex::new(HashSet::new())), Arc::new(Mutex::new(HashSet::new())));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicU64::new(1));
        let senders = (0..4)
            .map(|_| {
                let (acked, refused, stop, next) = (acked.clone(), refused.clone(), stop.clone(), next.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    while !stop.load(Ordering::SeqCst) {
                        let id = next.fetch_add(1, Ordering::SeqCst);
                        if post_order(&client, addr, id).await {
                            acked.lock().unwrap().insert(id);
                        } else {
                            refused.lock().unwrap().insert(id);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                })
            })
            .collect();
        Self { acked, refused, stop, senders }
    }

    async fn stop(self) -> (HashSet<u64>, HashSet<u64>) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.senders {
            s.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        let refused = self.refused.lock().unwrap().clone();
        (acked, refused)
    }
}

async fn readyz(addr: std::net::SocketAddr) -> Option<(StatusCode, String)> {
    let r = reqwest::get(format!("http://{addr}/readyz")).await.ok()?;
    Some((r.status(), r.text().await.unwrap_or_default()))
}

/// Bytes in use on the mount (statfs).
fn used(fs: &PowerFs) -> u64 {
    let v = nix::sys::statvfs::statvfs(fs.path()).unwrap();
    (v.blocks() - v.blocks_available()) * v.fragment_size()
}

/// Shopify retries what was refused: every refused order sent again must be answered 200.
async fn retry_refused(addr: std::net::SocketAddr, refused: &HashSet<u64>) {
    let client = reqwest::Client::new();
    for id in refused {
        assert!(post_order(&client, addr, *id).await, "order {id} accepted once the disk works");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
async fn a_full_disk_refuses_with_503_and_the_daemon_takes_requests_again_when_space_returns() {
    let (fs, dir) = mounted();
    let wms = FakeWms::start().await;
    let addr = free_addr();
    let o = Options { routing: "wms", max_attempts: 100, ..Options::default() };
    let config = config_on(&fs, dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &o);
    let mut daemon = start(&config, addr).await;
    let intake = Intake::start(addr);
    until("some orders accepted", || intake.acked.lock().unwrap().len() >= 20).await;

    // Under `storage.min_free_mb` (64 MB) of free space: the journal takes nothing more.
    fs.set_faults(Faults { capacity_bytes: Some(used(&fs) + 1024 * 1024), ..Faults::default() });
    let refused_before = intake.refused.lock().unwrap().len();
    until("requests refused on the full disk", || intake.refused.lock().unwrap().len() >= refused_before + 10).await;
    let (status, why) = readyz(addr).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{why}");
    assert!(why.contains("cannot write"), "{why}");

    // Space comes back: requests are taken again, without a restart.
    fs.set_faults(Faults::default());
    let acked_before = intake.acked.lock().unwrap().len();
    until("orders accepted again", || intake.acked.lock().unwrap().len() >= acked_before + 20).await;
    assert_eq!(readyz(addr).await.unwrap().0, StatusCode::OK);
    let (acked, refused) = intake.stop().await;
    retry_refused(addr, &refused).await;
    all_delivered(&config, &wms, &acked.union(&refused).copied().collect()).await;
    assert!(daemon.try_wait().unwrap().is_none(), "the daemon kept running");
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
async fn a_failing_disk_refuses_with_503_loses_nothing_answered_200_and_recovers() {
    let (fs, dir) = mounted();
    let wms = FakeWms::start().await;
    let addr = free_addr();
    let o = Options { routing: "wms", max_attempts: 100, ..Options::default() };
    let config = config_on(&fs, dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &o);
    let daemon = start(&config, addr).await;
    let intake = Intake::start(addr);
    until("some orders accepted", || intake.acked.lock().unwrap().len() >= 20).await;

    fs.set_faults(Faults { fail_writes: Some(Errno::EIO), fail_syncs: Some(Errno::EIO), ..Faults::default() });
    let refused_before = intake.refused.lock().unwrap().len();
    until("requests refused on the failing disk", || intake.refused.lock().unwrap().len() >= refused_before + 20).await;
    // (No answer at all: it has already stopped, to be restarted.)
    if let Some((status, why)) = readyz(addr).await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{why}");
    }
    fs.set_faults(Faults::default());
    recovers(daemon, &config, addr, intake, &wms).await;
}

/// Once the disk works again: either the daemon takes requests again by itself, or it exited
/// non-zero for systemd to restart it (its state database failed beyond repair within the
/// process) and the restart takes them. Then everything answered 200, and everything refused and
/// sent again, reaches the WMS.
async fn recovers(
    mut daemon: tokio::process::Child,
    config: &std::path::Path,
    addr: std::net::SocketAddr,
    intake: Intake,
    wms: &FakeWms,
) {
    let mut restarted = false;
    let acked_before = intake.acked.lock().unwrap().len();
    for _ in 0..1000 {
        if intake.acked.lock().unwrap().len() >= acked_before + 20 {
            break;
        }
        if let Some(status) = daemon.try_wait().unwrap() {
            assert!(!status.success(), "a daemon that cannot recover exits non-zero, not {status}");
            daemon = start(config, addr).await;
            restarted = true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (acked, refused) = intake.stop().await;
    eprintln!("{} accepted, {} refused; restarted: {restarted}", acked.len(), refused.len());
    assert!(acked.len() >= acked_before + 20, "orders are accepted again after the fault");
    retry_refused(addr, &refused).await;
    all_delivered(config, wms, &acked.union(&refused).copied().collect()).await;
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(has_fuse), ignore = "needs /dev/fuse: power-loss tests skipped")]
async fn writes_failing_with_enospc_refuse_with_503_lose_nothing_answered_200_and_recover() {
    let (fs, dir) = mounted();
    let wms = FakeWms::start().await;
    let addr = free_addr();
    let o = Options { routing: "wms", max_attempts: 100, ..Options::default() };
    let config = config_on(&fs, dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &o);
    // No free-space guard: the journal and sled meet ENOSPC from write(2) itself.
    let text = std::fs::read_to_string(&config).unwrap().replacen("[storage]\n", "[storage]\nmin_free_mb = 0\n", 1);
    std::fs::write(&config, text).unwrap();
    let daemon = start(&config, addr).await;
    let intake = Intake::start(addr);
    until("some orders accepted", || intake.acked.lock().unwrap().len() >= 20).await;

    fs.set_faults(Faults { capacity_bytes: Some(used(&fs) + 64 * 1024), ..Faults::default() });
    let refused_before = intake.refused.lock().unwrap().len();
    until("requests refused on the full disk", || intake.refused.lock().unwrap().len() >= refused_before + 20).await;
    if let Some((status, why)) = readyz(addr).await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{why}");
    }
    fs.set_faults(Faults::default());
    recovers(daemon, &config, addr, intake, &wms).await;
}
