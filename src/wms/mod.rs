//! The WMS (Increff Omni or anything speaking its Standard API channel contract): the outbound
//! client. The payloads it sends are built by the rules and live with them
//! (`flows::wms_order`); those the WMS sends channeld are read in `flows` too.

pub mod client;

pub use client::{Created, WmsClient};
