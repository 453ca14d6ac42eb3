//! The console's pages, one file each, and the one way they reach the store: an admin request run
//! by [`admin::execute`], its answer read back into the view type the CLI prints.

pub mod inventory;
pub mod layout;
pub mod login;
pub mod orders;
pub mod outbox;
pub mod overview;
pub mod shipments;

use serde::de::DeserializeOwned;

use crate::admin::{self, Request};
use crate::console::Console;

/// Runs `req` as `channeld` commands do, and reads the answer as `T`.
async fn ask<T: DeserializeOwned>(console: &Console, req: Request) -> Result<T, String> {
    let answer = admin::execute(&console.app, req).await?;
    serde_json::from_value(answer).map_err(|e| format!("an answer the console could not read: {e}"))
}

/// Runs a command whose answer is a message for the operator.
async fn act(console: &Console, req: Request) -> String {
    match admin::execute(&console.app, req).await {
        Ok(serde_json::Value::String(message)) => message,
        Ok(other) => other.to_string(),
        Err(e) => format!("Failed: {e}"),
    }
}
