//! Tells the tests what this machine has, so tests that need something missing show as ignored,
//! with the reason, instead of failing or passing without having run:
//! - `has_fuse`: `/dev/fuse`, for the power-loss tests in `tests/it/powerfs.rs` (and the crash
//!   tests built on them);
//! - `has_browser`: Chromium and its WebDriver (Debian `chromium` and `chromium-driver`), for the
//!   console's browser tests in `tests/it/console_browser.rs`; their paths reach the tests as
//!   `BROWSER_TEST_CHROMIUM` and `BROWSER_TEST_CHROMEDRIVER` (not `CHANNELD_*`: cargo sets these
//!   when running the tests too, and the configuration reads every `CHANNELD_*` variable);
//! - `has_promtool`: Prometheus' `promtool` (Debian `prometheus`), to check the Grafana
//!   dashboard's queries in `tests/it/monitoring.rs`.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(has_fuse)");
    println!("cargo::rustc-check-cfg=cfg(has_browser)");
    println!("cargo::rustc-check-cfg=cfg(has_promtool)");
    if Path::new("/dev/fuse").exists() {
        println!("cargo::rustc-cfg=has_fuse");
    }
    println!("cargo::rerun-if-env-changed=PATH");
    let browser = ["chromium", "chromium-browser"].into_iter().find_map(on_path);
    let driver = on_path("chromedriver");
    let promtool = on_path("promtool");
    if let Some(p) = &promtool {
        println!("cargo::rustc-cfg=has_promtool");
        println!("cargo::rerun-if-changed={}", p.display());
    }
    if promtool.is_none() || browser.is_none() || driver.is_none() {
        // Installing them (into /usr/bin, as Debian does) makes the tests look again.
        println!("cargo::rerun-if-changed=/usr/bin");
    }
    if let (Some(browser), Some(driver)) = (browser, driver) {
        println!("cargo::rustc-cfg=has_browser");
        println!("cargo::rustc-env=BROWSER_TEST_CHROMIUM={}", browser.display());
        println!("cargo::rustc-env=BROWSER_TEST_CHROMEDRIVER={}", driver.display());
        // Removing either makes the tests look again.
        println!("cargo::rerun-if-changed={}", browser.display());
        println!("cargo::rerun-if-changed={}", driver.display());
    }
}

/// `name` in a directory of `PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}
