//! Tells the tests whether this machine has FUSE, so the power-loss tests in `tests/it/powerfs.rs`
//! (and the crash tests built on them) show as ignored, with the reason, where `/dev/fuse` is
//! missing, instead of failing or passing without having run.

use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(has_fuse)");
    if Path::new("/dev/fuse").exists() {
        println!("cargo::rustc-cfg=has_fuse");
    }
}
