//! `channeld check-config`: load, validate, print the effective values with secrets masked.

use std::path::Path;

use crate::config::{permission_warning, Config};

pub fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    if let Some(warning) = permission_warning(path) {
        eprintln!("{warning}");
    }
    println!("# effective configuration from {} (environment overrides applied, secrets masked)", path.display());
    print!("{}", cfg.to_masked_toml());
    eprintln!("configuration OK");
    Ok(())
}
