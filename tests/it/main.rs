//! Integration tests: the real server (in-process, or the real binary for crash tests) against
//! fakes of the WMS and Shopify on 127.0.0.1, fed with the published fixtures.

mod admin;
mod client_errors;
mod courier_fakes;
mod crash;
mod delivery;
mod disk_faults;
mod durability;
mod fakes;
mod fresh_install;
mod fulfilment;
mod fulfilment_paging;
mod graphql_schema;
mod helpers;
mod http_limits;
mod inventory;
mod logs;
mod operations;
mod order_cancel;
mod order_intake;
mod permissions;
mod power_loss;
mod powerfs;
mod refunds;
mod shipment_ids;
mod shopify_admin_fake;
mod shopify_errors;
mod shopify_inventory_fake;
mod systemd;
mod updates;
mod upgrade;
mod webhooks;
mod wms_cancel;
mod wms_http;
mod workers;
