//! Retry policy: capped exponential backoff with jitter, and `Retry-After`.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Delay before attempt `attempt + 1` (after `attempt` failures, counting from 1).
///
/// `initial * 2^(attempt-1)`, capped at `max`, then "equal jitter": a random point in the upper
/// half, so retries of many orders spread out but never come sooner than half the schedule.
/// `jitter` is a number in `[0, 1)` supplied by the caller, which keeps this function pure.
pub fn backoff(attempt: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = initial.saturating_mul(1u32 << exp).min(max);
    full / 2 + full.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

/// `Retry-After` as seconds or an HTTP date; a date in the past means "now". At most one hour.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let d = if let Ok(secs) = value.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        Duration::from_secs_f64(secs.min(3600.0))
    } else {
        let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(d.min(Duration::from_secs(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let (i, m) = (Duration::from_secs(1), Duration::from_secs(600));
        assert_eq!(backoff(1, i, m, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(1, i, m, 0.999_999), Duration::from_millis(999) + Duration::from_nanos(999_500));
        assert_eq!(backoff(3, i, m, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(40, i, m, 0.0), Duration::from_secs(300));
        assert!(backoff(40, i, m, 0.99) <= m);
    }

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("999999", now), Some(Duration::from_secs(3600)));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
