//! `channeld store rebuild`: the way back when the state database cannot be opened (for example a
//! disk that lost data sled did not sync). The journal holds every acknowledged inbound event; the
//! damaged database is moved aside (never deleted) and a new one is built by applying every
//! journal record again, as a replay after a crash does.
//!
//! What the journal does not hold is recovered from the other parties: creations are sent again
//! (the WMS answers "already exists"), bookings resume (Clickpost recognises its reference,
//! Shiprocket's AWB is read back), inventory is pushed again, reconciliation starts over from
//! `orders.since`. Events older than the journal's retention are not in it: restore an `export`
//! for those (README "Recovery").

use std::path::Path;

use anyhow::{bail, Context};

use crate::admin::socket;
use crate::config::Config;

pub async fn rebuild(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let storage = cfg.storage.path.clone();
    let db = storage.join("db");
    if !storage.join("journal").is_dir() {
        bail!("no journal at {}: nothing to rebuild from", storage.join("journal").display());
    }
    if socket::is_answering(&storage).await {
        bail!("a channeld daemon is serving this store; stop it first (systemctl stop channeld)");
    }
    super::admin_cmd::refuse_other_users(&storage)?;
    if db.exists() {
        refuse_if_locked(&db.join("db"))?;
        let aside = storage.join(format!("db.broken-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
        std::fs::rename(&db, &aside).with_context(|| format!("could not move {} aside", db.display()))?;
        std::fs::File::open(&storage)?.sync_all()?;
        eprintln!("the old state database is kept at {}", aside.display());
    }
    eprintln!("rebuilding the state from the journal at {} ...", storage.join("journal").display());
    let app = super::admin_cmd::open_app(cfg).await?;
    let counts = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let counts = app.store.order_counts()?;
        app.store.close()?;
        Ok(counts)
    })
    .await??;
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let by_status: Vec<String> =
        counts.iter().filter(|(_, n)| *n > 0).map(|(s, n)| format!("{n} {}", s.as_str())).collect();
    println!("state rebuilt: {total} order(s) ({}); start the daemon to resume", by_status.join(", "));
    Ok(())
}

/// A daemon that lost its socket but still runs holds sled's lock on its data file.
fn refuse_if_locked(data_file: &Path) -> anyhow::Result<()> {
    use fs2::FileExt;
    let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).open(data_file) else { return Ok(()) };
    if FileExt::try_lock_exclusive(&f).is_err() {
        bail!("a channeld process holds {}; stop it first", data_file.display());
    }
    FileExt::unlock(&f)?;
    Ok(())
}
