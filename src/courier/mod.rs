//! Shipping aggregators (Clickpost, Shiprocket): one client module each.

pub mod shiprocket;
