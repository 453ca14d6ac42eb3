//! `channeld webhook send`: sign a payload with the configured secret and POST it the way Shopify
//! does, for testing a local daemon without Shopify.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use crate::config::Config;
use crate::flows::intake::Topic;
use crate::flows::returns::ReturnTopic;
use crate::shopify::webhook::sign;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// orders/create, orders/updated or orders/cancelled; with returns on, also returns/approve,
    /// returns/update, returns/cancel or reverse_deliveries/attach_deliverable
    #[arg(long, value_parser = [
        "orders/create", "orders/updated", "orders/cancelled",
        "returns/approve", "returns/update", "returns/cancel", "reverse_deliveries/attach_deliverable",
    ])]
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
    let (name, path) = match (Topic::parse(&args.topic), ReturnTopic::parse(&args.topic)) {
        (Some(t), _) => (t.as_str(), t.path()),
        (None, Some(t)) if cfg.returns.enabled => (t.as_str(), t.path()),
        (None, Some(_)) => bail!("{} is a return topic: set returns.enabled = true first", args.topic),
        (None, None) => bail!("unknown topic {}", args.topic),
    };
    let raw = std::fs::read(&args.file).with_context(|| format!("could not read {}", args.file.display()))?;
    let body = unwrap_order(&raw).with_context(|| format!("{} is not JSON", args.file.display()))?;
    let url = args.url.unwrap_or_else(|| format!("http://{}{path}", cfg.server.listen));
    let event_id = args.event_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let resp = reqwest::Client::new()
        .post(&url)
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", name)
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
    println!("{name} {status} (event id {event_id})");
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
