//! Where the Shopify access token comes from: a static token (custom app, or a legacy private
//! app's password), or the client-credentials grant of a Dev Dashboard app, cached in memory and
//! renewed before it expires.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::{Secret, ShopifyAuth};
use crate::remote::{self, CallError};

#[derive(Clone)]
pub enum TokenSource {
    Static(Secret),
    ClientCredentials(Arc<Grant>),
}

pub struct Grant {
    http: reqwest::Client,
    url: String,
    client_id: String,
    client_secret: Secret,
    /// The current token and when to renew it.
    cached: Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
struct GrantAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenSource {
    pub fn new(auth: ShopifyAuth, http: reqwest::Client, base: &str) -> Self {
        match auth {
            ShopifyAuth::Static(token) => TokenSource::Static(token),
            ShopifyAuth::ClientCredentials { client_id, client_secret } => {
                TokenSource::ClientCredentials(Arc::new(Grant {
                    http,
                    url: format!("{base}/admin/oauth/access_token"),
                    client_id,
                    client_secret,
                    cached: Mutex::new(None),
                }))
            }
        }
    }

    /// A token valid now.
    pub async fn token(&self) -> Result<Secret, CallError> {
        match self {
            TokenSource::Static(t) => Ok(t.clone()),
            TokenSource::ClientCredentials(g) => g.token().await,
        }
    }

    /// Forgets a token Shopify refused, so the next call asks for a new one.
    pub async fn invalidate(&self) {
        if let TokenSource::ClientCredentials(g) = self {
            *g.cached.lock().await = None;
        }
    }
}

impl Grant {
    async fn token(&self) -> Result<Secret, CallError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, renew_at)) = cached.as_ref() {
            if Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let mut form = reqwest::Url::parse("http://form.invalid/").expect("a constant URL parses");
        form.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose())
            .append_pair("grant_type", "client_credentials");
        let sent = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.query().unwrap_or_default().to_string())
            .send()
            .await;
        let answer = match sent {
            Ok(resp) => remote::read_json("Shopify token endpoint", resp).await,
            Err(e) => Err(remote::network("Shopify token endpoint", e)),
        };
        let answer = answer.map_err(|e| match e.without_secrets(&[self.client_secret.expose()]) {
            CallError::Refused { message } => CallError::Unauthorized { message },
            other => other,
        })?;
        let answer: GrantAnswer = serde_json::from_value(answer)
            .map_err(|e| CallError::Refused { message: format!("Shopify token endpoint: unexpected answer: {e}") })?;
        let token = Secret::new(answer.access_token);
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(86_400));
        *cached = Some((token.clone(), Instant::now() + renew_after(lifetime)));
        tracing::info!(expires_in_s = lifetime.as_secs(), "obtained a Shopify access token (client credentials)");
        Ok(token)
    }
}

/// Renew a minute before expiry, or halfway through a lifetime shorter than two minutes.
fn renew_after(lifetime: Duration) -> Duration {
    if lifetime > Duration::from_secs(120) {
        lifetime - Duration::from_secs(60)
    } else {
        lifetime / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_before_expiry() {
        assert_eq!(renew_after(Duration::from_secs(86_400)), Duration::from_secs(86_340));
        assert_eq!(renew_after(Duration::from_secs(2)), Duration::from_secs(1));
    }
}
