//! `channeld listings import|discover|list`.
//!
//! Import and discovery talk to Shopify from the CLI (with a progress bar), then hand the whole
//! validated set to the store in one request, so the daemon never holds a half-checked file.

use std::path::Path;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use super::admin_cmd::{call, page_of, print_json, print_next};
use super::{ListingsCmd, Output};
use crate::admin::Request;
use crate::config::Config;
use crate::flows::listings::{discover, parse_csv, unknown_serials, Listing};
use crate::shopify::ShopifyClient;
use crate::store::ListingsChange;

/// Inventory items checked per Shopify call (the `nodes` limit).
const CHECK_BATCH: usize = 250;

pub async fn run(path: &Path, cmd: ListingsCmd) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    match cmd {
        ListingsCmd::Import { file } => import(cfg, &file).await,
        ListingsCmd::Discover => discover_cmd(cfg).await,
        ListingsCmd::List { after, page, out } => list(cfg, after, page.limit, out).await,
    }
}

async fn import(cfg: Config, file: &Path) -> anyhow::Result<()> {
    let data = std::fs::read(file).with_context(|| format!("could not read {}", file.display()))?;
    let lines = match parse_csv(&data) {
        Ok(lines) => lines,
        Err(problems) => refuse(file, &problems)?,
    };
    let shopify = ShopifyClient::new(&cfg)?;
    let bar = progress(lines.len() as u64, "checking serial numbers on Shopify");
    let mut known = std::collections::HashSet::new();
    for chunk in lines.chunks(CHECK_BATCH) {
        let ids: Vec<u64> = chunk.iter().map(|l| l.listing.item_id).collect();
        known
            .extend(shopify.existing_inventory_items(&ids).await.context("could not check serial numbers on Shopify")?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let unknown = unknown_serials(&lines, |id| known.contains(&id));
    if !unknown.is_empty() {
        refuse(file, &unknown)?;
    }
    let listings: Vec<Listing> = lines.into_iter().map(|l| l.listing).collect();
    store(cfg, listings).await
}

fn refuse<T>(file: &Path, problems: &[String]) -> anyhow::Result<T> {
    for p in problems {
        eprintln!("{}: {p}", file.display());
    }
    bail!("{} refused as a whole ({} problem(s)); nothing was changed", file.display(), problems.len())
}

async fn discover_cmd(cfg: Config) -> anyhow::Result<()> {
    let shopify = ShopifyClient::new(&cfg)?;
    let bar = ProgressBar::new_spinner().with_message("reading product variants from Shopify");
    let mut variants = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, next) = shopify.variants_page(after.as_deref()).await.context("could not read product variants")?;
        variants.extend(page);
        bar.set_message(format!("{} variants read", variants.len()));
        bar.tick();
        match next {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    bar.finish_and_clear();
    let (listings, ambiguous) = discover(&variants);
    for a in &ambiguous {
        eprintln!("{a}");
    }
    eprintln!(
        "{} variants read; {} SKUs mapped; {} ambiguous SKUs left out",
        variants.len(),
        listings.len(),
        ambiguous.len()
    );
    store(cfg, listings).await
}

async fn store(cfg: Config, listings: Vec<Listing>) -> anyhow::Result<()> {
    let n = listings.len();
    let change: ListingsChange = serde_json::from_value(call(cfg, Request::ListingsReplace { listings }).await?)?;
    println!(
        "{n} listing(s) stored: {} added, {} changed, {} unchanged, {} removed",
        change.added, change.changed, change.unchanged, change.removed
    );
    Ok(())
}

async fn list(cfg: Config, after: Option<String>, limit: usize, out: Output) -> anyhow::Result<()> {
    let (v, next) = page_of(call(cfg, Request::ListingsList { after, limit }).await?)?;
    if out.json {
        print_json(&v)?;
    } else {
        let listings: Vec<Listing> = serde_json::from_value(v)?;
        println!("{:<32} SERIAL (INVENTORY ITEM)", "SKU");
        for l in &listings {
            println!("{:<32} {}", l.sku, l.item_id);
        }
        eprintln!("{} listing(s)", listings.len());
    }
    print_next(next, "--after")
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len).with_message(what.to_string());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
