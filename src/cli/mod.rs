//! The command line: clap definitions and dispatch, one file per command group.

mod admin_cmd;
mod check_config;
mod doctor;
mod export;
mod inventory;
mod listings;
mod returns;
mod serve;
mod shipments;
mod store;
mod webhook;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::default_config_path;

#[derive(Debug, Parser)]
#[command(
    name = "channeld",
    version,
    about = "Connects a Shopify store to an Increff-style WMS, with Clickpost or Shiprocket for shipping",
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file [default: $CHANNELD_CONFIG, else /etc/channeld/channeld.toml, else ./channeld.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: webhooks, WMS calls, workers; stops cleanly on SIGTERM/SIGINT
    Serve,
    /// Load and validate the configuration; print it with secrets masked
    CheckConfig,
    /// Check credentials, access scopes, locations, webhooks, reachability and job runs
    Doctor,
    /// Shopify webhook subscriptions for the three order topics at server.public_url
    #[command(subcommand)]
    Webhooks(WebhooksCmd),
    /// Write a copy of the store as JSON lines (works while serving)
    Export { file: PathBuf },
    /// Restore a copy written by `export` into a new, empty store (run with the daemon stopped)
    Import { file: PathBuf },
    /// Inspect and re-run orders
    #[command(subcommand)]
    Orders(OrdersCmd),
    /// Inspect and replay queued and dead-lettered outbound calls
    #[command(subcommand)]
    Outbox(OutboxCmd),
    /// Local webhook testing
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// SKU ↔ serial number (Shopify inventory item) listings
    #[command(subcommand)]
    Listings(ListingsCmd),
    /// Inventory rows: pending, quarantined, release, resync
    #[command(subcommand)]
    Inventory(InventoryCmd),
    /// Returns: approved Shopify returns sent to the WMS, and the QC results executed on Shopify
    #[command(subcommand)]
    Returns(ReturnsCmd),
    /// Shipments: their couriers' tracking, with every event received
    #[command(subcommand)]
    Shipments(ShipmentsCmd),
    /// The store itself: rebuild its state from the journal
    #[command(subcommand)]
    Store(StoreCmd),
}

#[derive(Debug, Subcommand)]
enum ReturnsCmd {
    /// List returns, newest first, one page at a time
    List {
        /// Only returns with this status
        #[arg(long, value_parser = ["held", "waiting", "queued", "sent", "partial", "done", "cancelled", "skipped"])]
        status: Option<String>,
        /// Continue after the previous page (the cursor it printed)
        #[arg(long, value_name = "CURSOR")]
        before: Option<String>,
        #[command(flatten)]
        page: PageSize,
        #[command(flatten)]
        out: Output,
    },
    /// Show one return: every unit with its location, QC result, reason, images and disposition,
    /// the refund, every flag (ID = Shopify return id, #name like #1001-R1, or returnOrderCode)
    Show {
        id: String,
        #[command(flatten)]
        out: Output,
    },
    /// Send a held return to the WMS (you vouch that the WMS knows its order under that orderCode)
    Release { id: String },
    /// Read the return from Shopify again and run its pending steps (a no-op for steps done)
    Retry { id: String },
}

#[derive(Debug, Subcommand)]
enum ShipmentsCmd {
    /// List shipments with their last tracking status, newest order first, one page at a time
    List {
        /// Only shipments with this tracking status
        #[arg(long, value_parser = [
            "booked", "picked_up", "in_transit", "out_for_delivery", "ndr", "delivered", "rto", "rto_delivered",
            "lost", "damaged"
        ])]
        status: Option<String>,
        /// Continue after the previous page (the cursor it printed)
        #[arg(long, value_name = "CURSOR")]
        before: Option<String>,
        #[command(flatten)]
        page: PageSize,
        #[command(flatten)]
        out: Output,
    },
    /// Show one shipment with its tracking timeline: every courier event, applied or not, and why,
    /// and the Shopify fulfillment events made (ID = the WMS's shipmentId, or the AWB)
    Show {
        id: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCmd {
    /// Rebuild the state database from the journal when it cannot be opened (the old one is kept
    /// aside); run with the daemon stopped
    Rebuild,
}

#[derive(Debug, Subcommand)]
enum WebhooksCmd {
    /// Create the missing subscriptions and delete stale ones of ours; never touch others
    Register,
    /// Show the subscriptions and whether they are ours, stale or missing
    List,
}

#[derive(Debug, Subcommand)]
enum ListingsCmd {
    /// Replace the listings with a CSV file (header: channelSkuCode, channelSerialNo); all or nothing
    Import { file: PathBuf },
    /// Map every Shopify variant with a SKU to its inventory item (exact SKU match)
    Discover,
    /// Show the stored listings by SKU, one page at a time
    List {
        /// Continue after the previous page (the cursor it printed)
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        #[command(flatten)]
        page: PageSize,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Subcommand)]
enum InventoryCmd {
    /// Pending and quarantined rows, with reasons
    Status {
        #[command(flatten)]
        out: Output,
    },
    /// Release a SKU's quarantined rows so they are pushed again
    Release { sku: String },
    /// Push every desired quantity again at the next run
    Resync,
}

#[derive(Debug, Subcommand)]
enum OrdersCmd {
    /// List stored orders, newest first, one page at a time
    List {
        /// Only orders with this status
        #[arg(long, value_parser = ["received", "queued", "sent", "rejected", "cancelled", "skipped"])]
        status: Option<String>,
        /// Only orders first seen at or after this time (RFC 3339, e.g. 2026-11-30T00:00:00Z)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Continue after the previous page (the cursor it printed)
        #[arg(long, value_name = "CURSOR")]
        before: Option<String>,
        #[command(flatten)]
        page: PageSize,
        #[command(flatten)]
        out: Output,
    },
    /// Show one order with every reason and flag (ID = Shopify order id or #name)
    Show {
        id: String,
        #[command(flatten)]
        out: Output,
    },
    /// Re-fetch an order from Shopify and run it again (a no-op for an order already sent)
    Retry { id: String },
}

#[derive(Debug, Subcommand)]
enum OutboxCmd {
    /// List pending and dead-lettered calls with attempts and last error, one page at a time
    List {
        /// Only calls queued at or after this time (RFC 3339, e.g. 2026-11-30T00:00:00Z), oldest first
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Continue after the previous page (the cursor it printed)
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        #[command(flatten)]
        page: PageSize,
        #[command(flatten)]
        out: Output,
    },
    /// Queue a call again: one by its id, or every dead letter
    Retry {
        /// The entry id shown by `outbox list`
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<u64>,
        /// Replay every dead-lettered call
        #[arg(long)]
        all_dead: bool,
    },
}

#[derive(Debug, Subcommand)]
enum WebhookCmd {
    /// Sign a payload file with the configured secret and POST it like Shopify would
    Send(webhook::SendArgs),
}

#[derive(Debug, Clone, Copy, Args)]
struct PageSize {
    /// At most this many rows
    #[arg(long, default_value_t = crate::admin::DEFAULT_LIMIT)]
    limit: usize,
}

#[derive(Debug, Clone, Copy, Args)]
struct Output {
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

pub async fn run(cli: Cli) -> ExitCode {
    let path = cli.config.clone().unwrap_or_else(default_config_path);
    let outcome = match cli.command {
        Command::CheckConfig => check_config::run(&path),
        Command::Doctor => doctor::run(&path).await,
        Command::Webhooks(WebhooksCmd::Register) => webhooks::register(&path).await,
        Command::Webhooks(WebhooksCmd::List) => webhooks::list(&path).await,
        Command::Export { file } => export::run(&path, &file).await,
        Command::Import { file } => export::import(&path, &file).await,
        Command::Serve => serve::run(&path).await,
        Command::Orders(cmd) => admin_cmd::orders(&path, cmd).await,
        Command::Outbox(cmd) => admin_cmd::outbox(&path, cmd).await,
        Command::Webhook(WebhookCmd::Send(args)) => webhook::send(&path, args).await,
        Command::Listings(cmd) => listings::run(&path, cmd).await,
        Command::Inventory(cmd) => inventory::run(&path, cmd).await,
        Command::Returns(cmd) => returns::run(&path, cmd).await,
        Command::Shipments(cmd) => shipments::run(&path, cmd).await,
        Command::Store(StoreCmd::Rebuild) => store::rebuild(&path).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
