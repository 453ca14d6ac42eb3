//! Stores written by earlier builds open in this one. A store from before the journal whose sled
//! kept a large raw body in a blob file (the file it never syncs, the cause of stores that would not
//! open after a power cut) is upgraded: the body moves into the journal and sled keeps no value
//! large enough for a blob file again.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::crash::{all_delivered, free_addr, start};
use crate::fakes::FakeWms;
use crate::helpers::{run_cli, write_config, Options};

/// Unpacks `tests/fixtures/stores/{name}` into `dir` (it holds `store/`).
fn unpack(name: &str, dir: &std::path::Path) {
    let fixture = format!("{}/tests/fixtures/stores/{name}", env!("CARGO_MANIFEST_DIR"));
    let untar = std::process::Command::new("tar").arg("xzf").arg(fixture).arg("-C").arg(dir).status().unwrap();
    assert!(untar.success());
    std::fs::set_permissions(dir.join("store"), std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[tokio::test]
async fn a_store_whose_sled_kept_a_body_in_a_blob_file_is_upgraded_and_keeps_none() {
    let dir = tempfile::tempdir().unwrap();
    unpack("store-50ca60e-blobs.tar.gz", dir.path());
    assert!(std::fs::read_dir(dir.path().join("store/db/blobs")).unwrap().next().is_some(), "the fixture has a blob");
    let wms = FakeWms::start().await;
    let addr = free_addr();
    let o = Options { routing: "wms", ..Options::default() };
    let config = write_config(dir.path(), addr, &wms.url(), "http://127.0.0.1:9", &o);
    let mut daemon = start(&config, addr).await;
    all_delivered(&config, &wms, &HashSet::from([7101, 7102])).await;
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();

    let export = dir.path().join("export.jsonl");
    let (ok, _, err) = run_cli(&config, &["export", export.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let bodies: Vec<Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["tree"] == "payloads")
        .collect();
    let large = bodies.iter().filter(|b| b["value"]["body"].as_str().is_some_and(|t| t.len() > 300 * 1024)).count();
    assert_eq!((bodies.len(), large), (2, 1), "both raw bodies are in the journal, the large one whole");
    // The old build's blob file stays until sled reclaims the log segment that points at it (every
    // open and checkpoint syncs it meanwhile); what matters is that nothing stored now makes one: a
    // second start writes none, and the state reads whole.
    let blobs_before: HashSet<_> =
        std::fs::read_dir(dir.path().join("store/db/blobs")).unwrap().map(|e| e.unwrap().file_name()).collect();
    let mut daemon = start(&config, addr).await;
    let (ok, shown, err) = run_cli(&config, &["orders", "show", "7102", "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap()["status"], "sent");
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    let blobs_after: HashSet<_> =
        std::fs::read_dir(dir.path().join("store/db/blobs")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(blobs_after.is_subset(&blobs_before), "no new blob file: {blobs_after:?}");
    eprintln!("blob files left by the old build: {}", blobs_after.len());
}
