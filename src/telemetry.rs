//! Logs (tracing: plain or JSON) and metrics (Prometheus text at `/metrics`). Libraries' own
//! chatter (tokio-cron-scheduler's start-up lines) is quiet unless `log.level` asks for it.
//!
//! The metrics recorder is process-global (the `metrics` facade); it is installed once, so several
//! servers in one test process share it. Labels never carry personal data: only topics, results,
//! call names and statuses.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{Log, LogFormat};

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the metrics recorder (once per process) and returns its handle.
pub fn install_metrics() -> &'static PrometheusHandle {
    METRICS.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed; ours then just renders nothing new.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Crates whose INFO lines are their own internals: tokio-cron-scheduler opens every log with
/// "Uninited" and one "Job creator created" per job. They log at WARN unless a directive names them
/// (its parser, croner, logs nothing).
const QUIET_BY_DEFAULT: &[&str] = &["tokio_cron_scheduler=warn"];

/// The log filter for `log.level` (or `RUST_LOG`) directives, after the defaults of
/// [`QUIET_BY_DEFAULT`]: a directive for the same target replaces a default (so
/// `info,tokio_cron_scheduler=debug` shows the scheduler again), a blanket level does not.
pub fn log_filter(directives: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let mut all: Vec<&str> = QUIET_BY_DEFAULT.to_vec();
    all.extend(directives.split(',').map(str::trim).filter(|d| !d.is_empty()));
    EnvFilter::try_new(all.join(","))
}

pub fn render_metrics() -> String {
    install_metrics().render()
}

/// Sets up logging on stderr. `RUST_LOG` overrides `log.level` when set. Personal data is only
/// ever logged at debug level.
pub fn init_logging(cfg: &Log) {
    let from_env = std::env::var("RUST_LOG").ok().filter(|d| !d.trim().is_empty());
    let filter = from_env
        .and_then(|d| log_filter(&d).ok())
        .or_else(|| log_filter(&cfg.level).ok())
        .unwrap_or_else(|| log_filter("info").expect("the default level parses"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Plain => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Log output captured in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// What tokio-cron-scheduler and channeld log at start-up, through a filter for `level`.
    fn logged_with(level: &str) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(log_filter(level).unwrap())
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "tokio_cron_scheduler::job_scheduler", "Uninited");
            tracing::debug!(target: "tokio_cron_scheduler::job::creator", "Job creator created");
            tracing::warn!(target: "tokio_cron_scheduler::job_scheduler", "scheduler trouble");
            tracing::info!(target: "channeld::server", "listening");
        });
        out.text()
    }

    #[test]
    fn the_scheduler_s_internals_are_quiet_unless_asked_for() {
        let default = logged_with("info");
        assert!(!default.contains("Uninited") && !default.contains("Job creator created"), "{default}");
        assert!(default.contains("scheduler trouble") && default.contains("listening"), "{default}");
        // A blanket level does not bring them back; naming the crate does.
        assert!(!logged_with("debug").contains("Uninited"));
        let asked = logged_with("info,tokio_cron_scheduler=debug");
        assert!(asked.contains("Uninited") && asked.contains("Job creator created"), "{asked}");
        assert!(logged_with("tokio_cron_scheduler::job_scheduler=info").contains("Uninited"));
        assert!(!logged_with("warn").contains("listening"));
    }
}
