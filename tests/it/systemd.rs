//! The systemd units: `Type=notify` (the daemon tells systemd when it is ready and when it begins
//! to stop) and the open-file limit they give it.

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::Duration;

use crate::fakes::FakeWms;
use crate::helpers::{write_config, Options};

#[tokio::test]
async fn serve_sends_ready_then_stopping_to_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let wms = FakeWms::start().await;
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = write_config(dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &Options::default());
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_channeld"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let recv = |sock: &UnixDatagram| {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let sock = tokio::task::spawn_blocking(move || {
        assert_eq!(recv(&sock), "READY=1");
        sock
    })
    .await
    .unwrap();
    // Ready means listening.
    assert!(reqwest::get(format!("http://{addr}/readyz")).await.unwrap().status().is_success());
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let stopping = tokio::task::spawn_blocking(move || recv(&sock)).await.unwrap();
    assert_eq!(stopping, "STOPPING=1");
    assert!(child.wait_with_output().await.unwrap().status.success());
}

/// Every open connection is a file handle: under the distribution's default limit (often 1,024),
/// idle sockets once took them all (#13). Both units raise the soft limit above the default
/// `server.max_connections` plus the room `serve` wants for the store and outbound calls (it
/// warns below that).
#[test]
fn both_units_raise_the_open_file_limit_above_what_max_connections_needs() {
    const STORE_AND_CALLS: u64 = 128;
    let needed = channeld::config::Server::default().max_connections as u64 + STORE_AND_CALLS;
    for unit in ["channeld.service", "channeld@.service"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd").join(unit);
        let text = std::fs::read_to_string(&path).unwrap();
        let service = text.split("[Service]").nth(1).expect("a [Service] section");
        let service = service.split("\n[").next().unwrap();
        let values: Vec<&str> =
            service.lines().filter_map(|l| l.trim().strip_prefix("LimitNOFILE=")).map(str::trim).collect();
        assert_eq!(values.len(), 1, "{unit}: one LimitNOFILE= in [Service]");
        // `soft:hard`, or one value for both.
        let soft: u64 = values[0].split(':').next().unwrap().parse().unwrap();
        assert!(soft >= needed, "{unit}: LimitNOFILE={soft} is under {needed}");
    }
}
