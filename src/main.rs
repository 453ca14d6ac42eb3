//! The `channeld` binary: parse the command line and hand over to [`channeld::cli::run`].

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: the webhook path (JSON, sled's copy-on-write nodes,
/// HTTP buffers) is allocation-bound, and glibc's malloc spent a third of the CPU there
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    channeld::cli::run(channeld::cli::Cli::parse()).await
}
