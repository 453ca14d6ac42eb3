//! Shiprocket's API. So far: logging in (`POST /v1/external/auth/login`), which `doctor` uses to
//! check the credentials; the token is valid for 10 days.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::config;
use crate::remote::{self, CallError};

#[derive(Clone)]
pub struct ShiprocketClient {
    http: reqwest::Client,
    base: String,
    email: String,
    password: config::Secret,
}

#[derive(Deserialize)]
struct LoginAnswer {
    #[serde(default)]
    token: String,
}

impl ShiprocketClient {
    pub fn new(cfg: &config::Shiprocket) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("channeld/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: cfg.base_url.trim_end_matches('/').to_string(),
            email: cfg.email.clone(),
            password: cfg.password.clone(),
        })
    }

    /// Logs in; returns the bearer token.
    pub async fn login(&self) -> Result<config::Secret, CallError> {
        let resp = self
            .http
            .post(format!("{}/v1/external/auth/login", self.base))
            .json(&json!({ "email": self.email, "password": self.password.expose() }))
            .send()
            .await
            .map_err(|e| remote::network("Shiprocket", &e))?;
        if !resp.status().is_success() {
            let (status, headers) = (resp.status(), resp.headers().clone());
            let text = resp.text().await.unwrap_or_default();
            return Err(match remote::classify("Shiprocket", status, &headers, &text) {
                CallError::Refused { message } if status.as_u16() == 400 || status.as_u16() == 403 => {
                    CallError::Unauthorized { message }
                }
                other => other,
            });
        }
        let answer: LoginAnswer = resp.json().await.map_err(|e| remote::network("Shiprocket", &e))?;
        if answer.token.is_empty() {
            return Err(CallError::Unauthorized { message: "Shiprocket login answered without a token".into() });
        }
        Ok(config::Secret::new(answer.token))
    }
}
