//! `contrib/`: the Grafana dashboard and the Prometheus alerts use only metrics channeld really
//! exports (read from the source: every `metrics::counter!`, `gauge!` and `histogram!`), and every
//! dashboard query is valid PromQL (checked by `promtool`, Debian `prometheus`, where installed;
//! CI installs it and also runs `promtool check rules` and `promtool test rules` on the alerts).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every series name channeld can export: the name given to each `counter!`, `gauge!` or
/// `histogram!` in `src/`, and for histograms (rendered as summaries) their `_sum` and `_count`.
fn exported() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for kind in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(kind) {
                let rest = text[at + kind.len()..].trim_start();
                let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) else { continue };
                names.insert(name.to_string());
                if kind == "histogram!(" {
                    names.insert(format!("{name}_sum"));
                    names.insert(format!("{name}_count"));
                }
            }
        }
    }
    names
}

/// The `channeld_*` metric names in a PromQL expression (recording rules are `channeld:*`).
fn used_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in expr.match_indices("channeld_") {
        if expr[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let name: String = expr[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        out.push(name);
    }
    out
}

/// Every `expr` of the dashboard's panels.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("contrib/grafana/channeld.json")).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

/// The alert rules' expressions (`expr:` and the folded lines under it).
fn alert_queries() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("contrib/prometheus/alerts.yml")).unwrap();
    let mut exprs = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else { continue };
        let indent = line.len() - line.trim_start().len();
        let mut expr = rest.trim().trim_start_matches(">-").to_string();
        while let Some(next) = lines.peek().filter(|l| l.len() - l.trim_start().len() > indent && !l.trim().is_empty())
        {
            expr.push(' ');
            expr.push_str(next.trim());
            lines.next();
        }
        exprs.push(expr);
    }
    exprs
}

#[test]
fn every_metric_the_dashboard_and_the_alerts_use_is_one_channeld_exports() {
    let exported = exported();
    for name in ["channeld_webhooks_total", "channeld_outbox_dead", "channeld_webhook_ack_seconds_count"] {
        assert!(exported.contains(name), "the scan finds {name}: {exported:?}");
    }
    let (dashboard, alerts) = (dashboard_queries(), alert_queries());
    assert!(dashboard.len() >= 20, "{dashboard:?}");
    assert!(alerts.len() >= 8, "{alerts:?}");
    let mut unknown = Vec::new();
    for (file, exprs) in [("contrib/grafana/channeld.json", &dashboard), ("contrib/prometheus/alerts.yml", &alerts)] {
        for expr in exprs.iter() {
            for name in used_in(expr) {
                if !exported.contains(&name) {
                    unknown.push(format!("{file}: {name} in {expr}"));
                }
            }
        }
    }
    assert!(unknown.is_empty(), "metrics channeld does not export:\n{}", unknown.join("\n"));
    // What the alerts are for (the issue's list) is covered.
    let all = alerts.join("\n");
    for needed in [
        "channeld_outbox_dead",
        "channeld_outbox_pending",
        "channeld_job_last_success",
        "channeld_job_last_run_timestamp_seconds",
        "channeld_webhook_last_received_timestamp_seconds",
        "channeld_shopify_auth_failures_total",
        "channeld_wms_auth_failures_total",
    ] {
        assert!(all.contains(needed), "no alert on {needed}");
    }
}

#[test]
fn the_scan_reads_metric_names_out_of_promql() {
    let expr = r#"sum(rate(channeld_webhooks_total{instance=~"$instance"}[5m])) > scalar(channeld:x_channeld_y)"#;
    assert_eq!(used_in(expr), vec!["channeld_webhooks_total"]);
}

/// Every dashboard query parses as PromQL: each is checked by `promtool check rules` as a
/// recording rule (the dashboard's `$instance` variable as `.*`).
#[test]
#[cfg_attr(
    not(has_promtool),
    ignore = "needs promtool (Debian: apt-get install prometheus): dashboard queries unchecked"
)]
fn every_dashboard_query_is_valid_promql() {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, expr) in dashboard_queries().iter().enumerate() {
        let expr = expr.replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let file = dir.path().join("dashboard-rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = std::process::Command::new("promtool").arg("check").arg("rules").arg(&file).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool refused a dashboard query:\n{said}");
}
