//! The store is private whatever the umask (#17): every directory in it 0700 and every file 0600
//! (sled's, the journal's, exports), the admin socket 0660; `serve` refuses a store directory
//! others can read or write. The real binary runs under `umask 000` (set in its own shell, so
//! this test process keeps its umask).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::crash::{free_addr, post_order};
use crate::fakes::FakeWms;
use crate::helpers::{eventually, wms_request, write_config, Options};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// Runs `channeld ARGS --config CONFIG` with umask 000.
fn permissive(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("umask 000 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_channeld"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

async fn serve_ready(config: &Path, addr: std::net::SocketAddr) -> Child {
    let child = permissive(config, &["serve"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if client.get(format!("http://{addr}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("channeld did not become ready");
}

/// Every entry under `root` (not `root` itself) whose mode is not private, with its mode.
fn not_private(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let (path, kind) = (entry.path(), entry.file_type().unwrap());
        let want = if kind.is_dir() {
            wrong.extend(not_private(&path));
            0o700
        } else if kind.is_socket() {
            0o660
        } else {
            0o600
        };
        let got = mode(&path);
        if got != want {
            wrong.push((path, got));
        }
    }
    wrong
}

async fn sigterm(daemon: Child) {
    let pid = daemon.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = daemon.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{:?}", out.status);
}

#[tokio::test]
async fn under_a_permissive_umask_the_store_and_exports_are_private_and_the_socket_is_0660() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let addr = free_addr();
    let o = Options { routing: "wms", ..Options::default() };
    let config = write_config(dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &o);
    let store = dir.path().join("store");
    let daemon = serve_ready(&config, addr).await;
    // Something in every part of the store: orders (sled), raw bodies (journal), a WMS call.
    let client = reqwest::Client::new();
    for id in 1..=3 {
        assert!(post_order(&client, addr, id).await);
    }
    eventually("the orders at the WMS", || wms.created().len() == 3).await;
    let handover = json!({ "locationCode": "WH-1", "handoverItems": [{ "orderCode": "1", "shipmentCode": "s1" }] });
    assert!(wms_request(&client, addr, Method::POST, "/wms/handover", &handover).await.0.is_success());
    assert_eq!(mode(&store), 0o700);
    assert_eq!(mode(&store.join("admin.sock")), 0o660, "the admin socket, as the contract says");
    assert_eq!(not_private(&store), vec![], "while serving");
    // An export, through the running daemon.
    let export = dir.path().join("export.jsonl");
    let out = permissive(&config, &["export", export.to_str().unwrap()]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&export), 0o600);
    sigterm(daemon).await;
    assert_eq!(not_private(&store), vec![], "after a clean stop");
    assert!(std::fs::read_dir(store.join("journal")).unwrap().count() > 0, "the journal was checked too");

    // An export from the stopped store, by a command that opens it itself.
    let direct = dir.path().join("direct.jsonl");
    let out = permissive(&config, &["export", direct.to_str().unwrap()]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&direct), 0o600);
    assert_eq!(not_private(&store), vec![]);
}

#[tokio::test]
async fn a_store_left_open_by_an_earlier_run_is_made_private_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let addr = free_addr();
    let config = write_config(dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &Options::default());
    let store = dir.path().join("store");
    let daemon = serve_ready(&config, addr).await;
    assert!(post_order(&reqwest::Client::new(), addr, 7).await);
    sigterm(daemon).await;
    // As an earlier channeld with umask 022 left it (the directory itself aside).
    fn open_up(p: &Path) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let m = if e.file_type().unwrap().is_dir() {
                open_up(&e.path());
                0o755
            } else {
                0o644
            };
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(m)).unwrap();
        }
    }
    open_up(&store);
    assert!(!not_private(&store).is_empty());
    let daemon = serve_ready(&config, addr).await;
    assert_eq!(not_private(&store), vec![], "tightened when the store opened");
    sigterm(daemon).await;
}

#[tokio::test]
async fn serve_refuses_a_store_directory_others_can_read_or_write_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let addr = free_addr();
    let config = write_config(dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &Options::default());
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    for m in [0o755, 0o750, 0o770, 0o707] {
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(m)).unwrap();
        let refused = tokio::time::timeout(Duration::from_secs(20), permissive(&config, &["serve"]).output());
        let out = refused.await.unwrap_or_else(|_| panic!("mode {m:o}: serve must refuse at once, not serve")).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "mode {m:o} must be refused");
        assert!(stderr.contains(&format!("chmod 700 {}", store.display())), "{m:o}: {stderr}");
        assert!(!store.join("db").exists(), "{m:o}: nothing opened");
    }
    // Search alone for the group (systemd's StateDirectoryMode=0710): served.
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o710)).unwrap();
    let daemon = serve_ready(&config, addr).await;
    sigterm(daemon).await;
}
