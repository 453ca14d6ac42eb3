//! Logs (tracing: plain or JSON) and metrics (Prometheus text at `/metrics`).
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

pub fn render_metrics() -> String {
    install_metrics().render()
}

/// Sets up logging on stderr. `RUST_LOG` overrides `log.level` when set. Personal data is only
/// ever logged at debug level.
pub fn init_logging(cfg: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Plain => builder.try_init(),
    };
}
