//! Logs (tracing: plain or JSON) and metrics (Prometheus text at `/metrics`), and the webhook
//! acknowledgement latency the console charts. Libraries' own chatter (tokio-cron-scheduler's
//! start-up lines) is quiet unless `log.level` asks for it.
//!
//! The metrics recorder is process-global (the `metrics` facade); it is installed once, so several
//! servers in one test process share it. Labels never carry personal data: only topics, results,
//! call names and statuses.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{Log, LogFormat};
use crate::store::{hour_of, HOUR_MS};

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

/// Hours of acknowledgement latency kept in memory: the console charts a week.
const LATENCY_HOURS: usize = 7 * 24;

/// How long webhooks took to be acknowledged (durably stored, then answered 200), per hour, for
/// the console's chart. Kept in memory only — a restart starts it afresh; Prometheus keeps the
/// long view (`channeld_webhook_ack_seconds`) — because writing it to the store would add a write
/// to every webhook for a chart.
#[derive(Default)]
pub struct AckLatency {
    hours: Mutex<VecDeque<LatencyHour>>,
}

/// One hour of acknowledgement latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyHour {
    /// The hour's start (unix ms, UTC).
    pub hour_ms: i64,
    pub count: u64,
    pub sum_ms: f64,
    pub max_ms: f64,
}

impl LatencyHour {
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_ms / self.count as f64
        }
    }
}

impl AckLatency {
    /// Records a webhook acknowledged at `at_ms` after `took`: in the hourly chart, the
    /// `channeld_webhook_ack_seconds` summary and the time of the last webhook received.
    pub fn record(&self, at_ms: i64, took: Duration) {
        metrics::histogram!("channeld_webhook_ack_seconds").record(took.as_secs_f64());
        metrics::gauge!("channeld_webhook_last_received_timestamp_seconds").set(at_ms as f64 / 1000.0);
        let hour_ms = hour_of(at_ms);
        let ms = took.as_secs_f64() * 1000.0;
        let Ok(mut hours) = self.hours.lock() else { return };
        if hours.back().is_none_or(|h| h.hour_ms < hour_ms) {
            hours.push_back(LatencyHour { hour_ms, ..LatencyHour::default() });
            while hours.len() > LATENCY_HOURS {
                hours.pop_front();
            }
        }
        // A sample from an earlier hour (clock steps back) joins the newest.
        if let Some(h) = hours.back_mut() {
            h.count += 1;
            h.sum_ms += ms;
            h.max_ms = h.max_ms.max(ms);
        }
    }

    /// The hours from `since_ms` on, oldest first (hours without a webhook left out).
    pub fn hours(&self, since_ms: i64) -> Vec<LatencyHour> {
        let Ok(hours) = self.hours.lock() else { return Vec::new() };
        hours.iter().filter(|h| h.hour_ms + HOUR_MS > since_ms).copied().collect()
    }
}

/// Sets `channeld_webhook_last_received_timestamp_seconds` at start-up, before any webhook of this
/// run: to when the newest stored order was first seen, else to now, so that an alert on webhooks
/// stopping counts a quiet spell across a restart, and one that never ends after a fresh start.
pub fn seed_last_webhook(newest_order_ms: Option<i64>, now_ms: i64) {
    let at = newest_order_ms.unwrap_or(now_ms);
    metrics::gauge!("channeld_webhook_last_received_timestamp_seconds").set(at as f64 / 1000.0);
}

/// Sets up logging on stderr. `RUST_LOG` overrides `log.level` when set. Personal data is only
/// ever logged at debug level.
pub fn init_logging(cfg: &Log) {
    let from_env = std::env::var("RUST_LOG").ok().filter(|d| !d.trim().is_empty());
    let filter = from_env
        .and_then(|d| log_filter(&d).ok())
        .or_else(|| log_filter(&cfg.level).ok())
        .unwrap_or_else(|| log_filter("info").expect("the default level parses"));
    // Also routes the `log` crate's records (sled's) into tracing.
    let _ = subscriber(cfg.format, filter, std::io::stderr).try_init();
}

/// The subscriber channeld logs through, in `format`, writing to `writer` (stderr when serving; a
/// buffer in tests, so they check the very lines an operator gets).
pub fn subscriber<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Json => Box::new(builder.json().finish()),
        LogFormat::Plain => Box::new(builder.finish()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::source_scan::{code_only, rust_files};

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

    /// The arguments of every tracing event macro in `code` (from [`code_only`]), split at
    /// top-level commas, with the line each call starts on.
    fn event_arguments(code: &str) -> Vec<(usize, Vec<String>)> {
        let mut calls = Vec::new();
        for name in ["trace!", "debug!", "info!", "warn!", "error!", "event!"] {
            for (at, _) in code.match_indices(name) {
                let before = code[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue; // e.g. `my_info!`
                }
                let open = at + name.len();
                if !code[open..].trim_start().starts_with('(') {
                    continue;
                }
                let start = open + code[open..].find('(').unwrap_or(0) + 1;
                let (mut depth, mut args, mut current) = (1, Vec::new(), String::new());
                for c in code[start..].chars() {
                    match c {
                        '(' | '[' | '{' => depth += 1,
                        ')' | ']' | '}' => depth -= 1,
                        ',' if depth == 1 => {
                            args.push(std::mem::take(&mut current));
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    current.push(c);
                }
                args.push(current);
                calls.push((code[..at].lines().count(), args.into_iter().map(|a| a.trim().to_string()).collect()));
            }
        }
        calls
    }

    /// Whether a macro argument is a field named `message`: `message`, `%message`, `?message`,
    /// `message = ..`, `message: ..` (a dotted `message.x` is another name).
    fn names_message(arg: &str) -> bool {
        let field = arg.trim_start_matches(['%', '?']).trim_start();
        let Some(rest) = field.strip_prefix("message") else { return false };
        let rest = rest.trim_start();
        rest.is_empty() || (rest.starts_with('=') && !rest.starts_with("==")) || rest.starts_with(':')
    }

    #[test]
    fn the_scan_finds_message_fields_and_only_them() {
        let code = code_only(
            r#"tracing::warn!(topic = t, message, "refused"); info!(%message, "x"); warn!(error = %message, "y");
            error!(message = "z", "w"); debug!("message, {message}"); warn!(reason = m.message, "v"); // info!(message)
            let c = '('; info!(?message, x = f(a, b), "u"); my_info!(message);"#,
        );
        let flagged: Vec<bool> =
            event_arguments(&code).iter().map(|(_, args)| args.iter().any(|a| names_message(a))).collect();
        // Sorted by macro name: trace, debug, info x2, warn x3, error.
        assert_eq!(flagged, vec![false, true, true, true, false, false, true]);
    }

    /// JSON logs repeat a key when an event has a field named `message` beside its own message,
    /// and log parsers keep only one of them: no event in channeld has such a field.
    #[test]
    fn no_tracing_event_has_a_field_named_message() {
        let mut files = Vec::new();
        rust_files(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
        let mut offenders = Vec::new();
        for file in files {
            let code = code_only(&std::fs::read_to_string(&file).unwrap());
            for (line, args) in event_arguments(&code) {
                if args.iter().any(|a| names_message(a)) {
                    offenders.push(format!("{}:{line}", file.display()));
                }
            }
        }
        assert!(offenders.is_empty(), "tracing events with a field named `message`: {offenders:#?}");
    }

    #[test]
    fn acknowledgement_latency_is_kept_per_hour_for_a_week() {
        let l = AckLatency::default();
        let h = 500 * HOUR_MS;
        l.record(h + 1, Duration::from_millis(4));
        l.record(h + 2, Duration::from_millis(8));
        l.record(h + HOUR_MS, Duration::from_millis(2));
        let hours = l.hours(0);
        assert_eq!(hours.len(), 2);
        assert_eq!((hours[0].count, hours[0].mean_ms().round(), hours[0].max_ms.round()), (2, 6.0, 8.0));
        assert_eq!(l.hours(h + HOUR_MS).len(), 1);
        for n in 0..(LATENCY_HOURS as i64 + 10) {
            l.record(h + (2 + n) * HOUR_MS, Duration::from_millis(1));
        }
        assert_eq!(l.hours(0).len(), LATENCY_HOURS, "a week at most");
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
