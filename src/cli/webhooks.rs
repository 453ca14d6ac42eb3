//! `channeld webhooks register|list`: make Shopify's subscriptions exactly channeld's three topics
//! at `server.public_url`, touching nothing that is not ours.

use std::path::Path;

use anyhow::bail;

use crate::config::Config;
use crate::flows::webhooks::plan;
use crate::shopify::ShopifyClient;

pub async fn register(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    if cfg.server.public_url.is_empty() {
        bail!("server.public_url is not set: Shopify needs an HTTPS address to deliver to");
    }
    if !cfg.server.public_url.starts_with("https://") {
        eprintln!("warning: server.public_url is not https; Shopify only delivers webhooks over HTTPS");
    }
    let shopify = ShopifyClient::new(&cfg)?;
    let p = plan(&cfg.server.public_url, cfg.returns.enabled, &shopify.webhook_subscriptions().await?);
    // Create first, then delete: there is never a moment without a subscription for a topic.
    for (topic, uri) in &p.create {
        shopify.create_webhook(topic, uri).await?;
        println!("created  {topic:<18} {uri}");
    }
    for (id, why) in &p.delete {
        shopify.delete_webhook(id).await?;
        println!("deleted  {id} ({why})");
    }
    println!("{} kept, {} created, {} deleted", p.keep.len(), p.create.len(), p.delete.len());
    Ok(())
}

pub async fn list(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let shopify = ShopifyClient::new(&cfg)?;
    let subs = shopify.webhook_subscriptions().await?;
    let p = plan(&cfg.server.public_url, cfg.returns.enabled, &subs);
    for s in &subs {
        let state = if p.keep.contains(&s.id) {
            "ours".to_string()
        } else if let Some((_, why)) = p.delete.iter().find(|(id, _)| *id == s.id) {
            format!("ours, stale: {why}")
        } else {
            "not ours".to_string()
        };
        println!("{:<44} {:<18} {} [{state}]", s.id, s.topic, s.uri);
    }
    for (topic, uri) in &p.create {
        println!("{:<44} {topic:<18} {uri} [missing: run channeld webhooks register]", "-");
    }
    Ok(())
}
