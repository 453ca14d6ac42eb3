//! The WMS (Increff Omni or anything speaking its Standard API channel contract): the payload
//! types channeld sends, and the outbound client.

pub mod client;
pub mod types;

pub use client::{Created, WmsClient};
