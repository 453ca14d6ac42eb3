//! The `channeld` binary: parse the command line and hand over to [`channeld::cli::run`].

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    channeld::cli::run(channeld::cli::Cli::parse()).await
}
