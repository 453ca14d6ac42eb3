//! `Type=notify`: the daemon tells systemd when it is ready and when it begins to stop.

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
