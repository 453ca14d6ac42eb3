//! channeld: connects one Shopify store to a WMS speaking Increff's Standard API channel contract.
//!
//! # Layout
//! - [`config`]: the TOML file and `CHANNELD_*` overrides, validated into typed structs.
//! - [`store`]: the only code touching sled and the journal: trees, the versioned record codec, the
//!   acknowledgement boundary (journal group commit, applier, checkpoints, replay).
//! - [`flows`]: business rules on plain data (order mapping, validation, routing, retries).
//! - [`shopify`], [`wms`], [`courier`]: one module per external party (its client and the payloads
//!   only the client reads; the orders the rules build or read are plain types in `flows`).
//! - [`remote`]: how an outbound call ended, shared by every client; [`lenient`]: reading their JSON.
//! - [`app`]: the shared context; [`services`]: the operations handlers, commands and workers call
//!   (webhooks, `/wms/*` calls, bookings), each journaled and applied by one function.
//! - [`http`]: the router and thin handlers; [`admin`]: commands over the unix socket.
//! - [`console`]: the operator console, on its own listener, running the admin commands.
//! - [`outbox`]: the delivery worker; [`jobs`]: scheduled jobs; [`server`]: starts and stops
//!   everything.
//! - [`cli`]: the command line; [`telemetry`], [`systemd`]: logs, metrics, readiness.
//! - `fuzz` (tests and the `fuzz` feature only): entry points for the cargo-fuzz targets in `fuzz/`.
//! - `source_scan` (tests only): checks that read the source itself, among them the module graph
//!   (arrows run one way, no import cycle).

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod courier;
pub mod flows;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod http;
pub mod jobs;
pub mod lenient;
pub mod outbox;
pub mod remote;
pub mod server;
pub mod services;
pub mod shopify;
#[cfg(test)]
mod source_scan;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod wms;
