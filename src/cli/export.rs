//! `channeld export FILE`: a JSON-lines copy of the store, from the running daemon (streamed over
//! the admin socket) or from the store directly when none runs. The file holds personal data: it
//! is created with mode 0600. `channeld import FILE` restores such a copy into a new store.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;

use crate::admin::socket;
use crate::config::Config;

pub async fn run(path: &Path, file: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("could not create {} (it must not exist yet)", file.display()))?;
    let mut out = std::io::BufWriter::new(out);
    let mut write_line = |line: &str| -> std::io::Result<()> { writeln!(out, "{line}") };
    let count = match socket::export(&cfg.storage.path, &mut write_line).await? {
        Some(n) => n,
        None => {
            let app = super::admin_cmd::open_app(cfg).await?;
            let n = tokio::task::block_in_place(|| app.store.export(|v| write_line(&v.to_string())))?;
            tokio::task::block_in_place(|| app.store.close())?;
            n
        }
    };
    out.flush()?;
    println!("{count} record(s) written to {}", file.display());
    Ok(())
}

pub async fn import(path: &Path, file: &Path) -> anyhow::Result<()> {
    use std::io::BufRead;
    let cfg = Config::load(path)?;
    if socket::is_answering(&cfg.storage.path).await {
        anyhow::bail!("a channeld daemon is serving this store; stop it first, and import into a new store");
    }
    let input = std::fs::File::open(file).with_context(|| format!("could not read {}", file.display()))?;
    let app = super::admin_cmd::open_app(cfg).await?;
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let report = app.store.import(std::io::BufReader::new(input).lines());
        app.store.close()?;
        Ok(report?)
    })
    .await??;
    println!(
        "{} record(s) imported: {} order(s), {} outbox entr(ies), {} shipment(s), {} shipment tracking record(s), \
         {} handover(s), {} return(s), {} raw payload(s), {} pruned order(s) remembered",
        report.records,
        report.orders,
        report.outbox,
        report.shipments,
        report.tracking,
        report.handovers,
        report.returns,
        report.payloads,
        report.tombstones
    );
    Ok(())
}
