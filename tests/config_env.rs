//! Environment overrides (`CHANNELD_<SECTION>__<KEY>`). In its own test binary: the environment
//! is process-wide.

use channeld::config::Config;

#[test]
fn environment_overrides_file_values_and_unknown_env_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        r#"
[server]
listen = "127.0.0.1:8080"
[storage]
path = "./data"
[shopify]
shop = "increff"
access_token = "shpat_file"
webhook_secret = "file-secret"
[wms]
base_url = "http://127.0.0.1:9"
"#,
    )
    .unwrap();
    std::env::set_var("CHANNELD_CONFIG", "/not/a/key");
    std::env::set_var("CHANNELD_SHOPIFY__ACCESS_TOKEN", "shpat_env");
    std::env::set_var("CHANNELD_ORDERS__DEFAULT_SLA_HOURS", "24");
    std::env::set_var("CHANNELD_OUTBOX__MAX_ATTEMPTS", "3");
    let cfg = Config::load(&path).unwrap();
    assert_eq!(cfg.shopify.access_token.expose(), "shpat_env");
    assert_eq!(cfg.orders.default_sla_hours, 24);
    assert_eq!(cfg.outbox.max_attempts, 3);

    std::env::set_var("CHANNELD_WMS__BASE_URLL", "http://x");
    let err = format!("{:#}", Config::load(&path).unwrap_err());
    assert!(err.contains("base_urll"), "{err}");
    std::env::remove_var("CHANNELD_WMS__BASE_URLL");

    std::env::set_var("CHANNELD_OUTBOX__MAX_ATTEMPTS", "many");
    let err = format!("{:#}", Config::load(&path).unwrap_err());
    assert!(err.contains("outbox.max_attempts"), "{err}");
}
