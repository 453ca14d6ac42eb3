//! `channeld webhook send`: sign a payload with the configured secret and POST it the way Shopify
//! does, for testing a local daemon without Shopify.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use crate::config::Config;
use crate::flows::intake::Topic;
use crate::shopify::webhook::sign;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// orders/create, orders/updated or orders/cancelled
    #[arg(long, value_parser = ["orders/create", "orders/updated", "orders/cancelled"])]
    topic: String,
    /// The JSON payload (a bare order, or Shopify's {"order": {...}} wrapper, which is unwrapped)
    #[arg(long)]
    file: PathBuf,
    /// Full endpoint URL [default: http://{server.listen} plus the topic's path]
    #[arg(long)]
    url: Option<String>,
    /// The X-Shopify-Event-Id to send [default: a new random id]; repeat one to test de-duplication
    #[arg(long)]
    event_id: Option<String>,
}

pub async fn send(path: &Path, args: SendArgs) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let topic = Topic::parse(&args.topic).context("unknown topic")?;
    let raw = std::fs::read(&args.file).with_context(|| format!("could not read {}", args.file.display()))?;
    let body = unwrap_order(&raw).with_context(|| format!("{} is not JSON", args.file.display()))?;
    let url = args.url.unwrap_or_else(|| format!("http://{}{}", cfg.server.listen, topic.path()));
    let event_id = args.event_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let resp = reqwest::Client::new()
        .post(&url)
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", topic.as_str())
        .header("X-Shopify-Hmac-Sha256", sign(cfg.shopify.webhook_secret.expose(), &body))
        .header("X-Shopify-Shop-Domain", cfg.shop_domain())
        .header("X-Shopify-Event-Id", &event_id)
        .header("X-Shopify-Webhook-Id", uuid::Uuid::new_v4().to_string())
        .header("X-Shopify-API-Version", &cfg.shopify.api_version)
        .header("X-Shopify-Triggered-At", chrono::Utc::now().to_rfc3339())
        .body(body)
        .send()
        .await
        .with_context(|| format!("could not POST to {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    println!("{} {status} (event id {event_id})", topic.as_str());
    println!("{text}");
    if !status.is_success() {
        bail!("the endpoint answered {status}");
    }
    Ok(())
}

/// Shopify's REST examples wrap the order as `{"order": {...}}`; webhooks carry the bare order.
fn unwrap_order(raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(raw)?;
    match v.get("order") {
        Some(order) if v.as_object().is_some_and(|o| o.len() == 1) => Ok(serde_json::to_vec(order)?),
        _ => Ok(raw.to_vec()),
    }
}
