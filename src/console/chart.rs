//! Hour-by-hour line charts as inline SVG, drawn on the server: no script, no external asset.
//! Colours come from classes styled by the console's style sheet (the Content-Security-Policy
//! allows no inline style). Pure: values in, markup out.
//!
//! Every SVG element is closed explicitly (`<line ...></line>`): inside inline SVG an HTML parser
//! takes an unclosed `<line>` as the parent of what follows, and draws none of it.

use maud::{html, Markup};

use crate::store::HOUR_MS;

const DAY_MS: i64 = 24 * HOUR_MS;
const WIDTH: f64 = 840.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// One line of a chart: a value per hour, oldest first.
pub struct Series<'a> {
    pub name: &'a str,
    /// The style sheet's class for its colour (`s1`, `s2`, `s3`).
    pub class: &'a str,
    pub values: Vec<f64>,
    /// Whether the caption gives the period's total (counts: yes; latencies: no).
    pub total: bool,
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `v` (at least 1): the axis' top.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|top| *top >= v).unwrap_or(10.0 * power)
}

/// How many steps the axis is cut into, so that each is a round number: 5 for a top of 1 or 5
/// (times a power of ten), 4 for 2.
fn steps(top: f64) -> u32 {
    let leading = top / 10f64.powf(top.log10().floor());
    if (leading - 2.0).abs() < 1e-9 {
        4
    } else {
        5
    }
}

fn label(v: f64) -> String {
    if v >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A chart of `series` over the hours starting at `first_hour_ms`.
pub fn hourly(title: &str, first_hour_ms: i64, series: &[Series<'_>]) -> Markup {
    let hours = series.iter().map(|s| s.values.len()).max().unwrap_or(0).max(2);
    let top = nice_ceiling(series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max));
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |i: usize| LEFT + plot_w * i as f64 / (hours - 1) as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));
    let days: Vec<(usize, String)> = (0..hours)
        .filter(|i| (first_hour_ms + *i as i64 * HOUR_MS).rem_euclid(DAY_MS) == 0)
        .map(|i| {
            let at = chrono::DateTime::from_timestamp_millis(first_hour_ms + i as i64 * HOUR_MS);
            (i, at.map(|t| t.format("%b %d").to_string()).unwrap_or_default())
        })
        .collect();
    let empty = series.iter().all(|s| s.values.iter().all(|v| *v == 0.0));
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(title) {
                title { (title) }
                @let n = steps(top);
                @for k in 0..=n {
                    @let v = top * f64::from(k) / f64::from(n);
                    line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(v)) y2=(y(v)) {}
                    text.axis x=(LEFT - 6.0) y=(y(v) + 4.0) text-anchor="end" { (label(v)) }
                }
                @for (i, day) in &days {
                    line.day x1=(x(*i)) x2=(x(*i)) y1=(TOP) y2=(HEIGHT - BOTTOM) {}
                    text.axis x=(x(*i) + 3.0) y=(HEIGHT - 10.0) { (day) }
                }
                @for s in series {
                    polyline class={ "line " (s.class) } points=(points(&s.values, &x, &y)) {}
                }
                @if empty {
                    text.empty x=(WIDTH / 2.0) y=(HEIGHT / 2.0) text-anchor="middle" { "nothing in this period" }
                }
            }
            figcaption {
                (title) ":"
                @for s in series {
                    " " span class={ "key " (s.class) } { "■" } " " (s.name)
                    @if s.total { " (" (label(s.values.iter().sum::<f64>())) " in all)" }
                }
            }
        }
    }
}

fn points(values: &[f64], x: &dyn Fn(usize) -> f64, y: &dyn Fn(f64) -> f64) -> String {
    values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_is_cut_in_round_steps() {
        assert_eq!([1.0, 2.0, 5.0, 10.0, 20.0, 500.0].map(steps), [5, 4, 5, 5, 4, 5]);
    }

    #[test]
    fn the_axis_tops_at_a_round_number() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(7.5), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(2000.0), 2000.0);
    }

    #[test]
    fn a_week_is_drawn_with_one_point_per_hour_and_a_tick_per_day() {
        let first = 10 * DAY_MS + 5 * HOUR_MS;
        let values: Vec<f64> = (0..168).map(|i| f64::from(i % 7)).collect();
        let series = [Series { name: "received", class: "s1", values, total: true }];
        let svg = hourly("Orders per hour", first, &series).into_string();
        assert!(svg.starts_with("<figure class=\"chart\"><svg viewBox=\"0 0 840 220\""), "{svg}");
        let points = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), 168);
        assert_eq!(svg.matches("class=\"day\"").count(), 7, "midnights in the week");
        assert!(svg.contains("Jan 12") && svg.contains("(504 in all)"), "{svg}");
        assert!(!svg.contains("style="), "no inline style: the policy forbids it");
        assert_eq!(svg.matches("<line").count(), svg.matches("</line>").count(), "every element closed");
        assert_eq!(svg.matches("<polyline").count(), svg.matches("</polyline>").count());
        let empty = hourly("t", first, &[Series { name: "x", class: "s1", values: vec![0.0; 168], total: false }]);
        assert!(empty.into_string().contains("nothing in this period"));
    }
}
