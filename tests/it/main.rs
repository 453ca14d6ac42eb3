//! Integration tests: the real server (in-process, or the real binary for crash tests) against
//! fakes of the WMS and Shopify on 127.0.0.1, fed with the published fixtures.

mod admin;
mod courier_fakes;
mod crash;
mod delivery;
mod fakes;
mod fulfilment;
mod graphql_schema;
mod helpers;
mod inventory;
mod operations;
mod powerfs;
mod shopify_admin_fake;
mod shopify_inventory_fake;
mod systemd;
mod updates;
mod webhooks;
