//! Reading third-party JSON leniently: Shopify, Increff and the couriers send numbers as strings
//! (or strings as numbers), and `null` where a value is expected. These serde helpers accept every
//! such form, so a payload is never lost over a type; what still cannot be read is reported by
//! the caller.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The number at the end of a Shopify global id (`gid://shopify/Type/123`, also with a `?query`),
/// or a bare number.
pub fn gid_number(gid: &str) -> Option<u64> {
    gid.rsplit('/').next()?.split('?').next()?.parse().ok()
}

/// A value as text: strings as they are, numbers and booleans written out, anything else empty.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Text that may be `null`, absent, a number or a boolean.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(value_text(&Value::deserialize(d)?))
}

/// Money: a decimal string, sometimes a number, sometimes `null` (= 0).
pub fn money<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    })
}

/// A count: a number or numeric string; anything else is 0.
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(value_count(&Value::deserialize(d)?))
}

/// [`count`] of a value already read (capped at `u32::MAX`).
pub fn value_count(v: &Value) -> u32 {
    match v {
        Value::Number(n) => n.as_u64().map_or(0, |n| n.min(u64::from(u32::MAX)) as u32),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// A count that may be absent: `None` for `null` or anything that is not a count, else as
/// [`count`] reads it (capped at `u32::MAX`).
pub fn opt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().map(|n| n.min(u64::from(u32::MAX)) as u32),
        Value::String(s) => s.trim().parse::<u64>().ok().map(|n| n.min(u64::from(u32::MAX)) as u32),
        _ => None,
    })
}

/// A whole number, possibly signed, as a number or a string; `None` when it is neither.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// An id: a non-negative whole number or a numeric string.
pub fn id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(int(d)?.and_then(|n| u64::try_from(n).ok()))
}

/// A boolean; `null` or anything else is false.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Value::deserialize(d)?.as_bool().unwrap_or(false))
}

/// Like [`flag`], but `null` or absent means true.
pub fn flag_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Value::deserialize(d)?.as_bool().unwrap_or(true))
}

/// A list that may be `null`.
pub fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gid_numbers() {
        assert_eq!(gid_number("gid://shopify/LineItem/466157049"), Some(466157049));
        assert_eq!(gid_number("12"), Some(12));
        assert_eq!(gid_number("gid://shopify/Order/x"), None);
    }

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "text", default)]
        t: String,
        #[serde(deserialize_with = "money", default)]
        m: f64,
        #[serde(deserialize_with = "id", default)]
        i: Option<u64>,
        #[serde(deserialize_with = "int", default)]
        n: Option<i64>,
        #[serde(deserialize_with = "opt_count", default)]
        c: Option<u32>,
    }

    #[test]
    fn every_form_reads() {
        let t: T = serde_json::from_str(r#"{"t": 12, "m": "3.50", "i": "77", "n": -2, "c": "4"}"#).unwrap();
        assert_eq!((t.t.as_str(), t.m, t.i, t.n, t.c), ("12", 3.5, Some(77), Some(-2), Some(4)));
        let t: T = serde_json::from_str(r#"{"t": null, "m": null, "i": -1, "n": "x", "c": null}"#).unwrap();
        assert_eq!((t.t.as_str(), t.m, t.i, t.n, t.c), ("", 0.0, None, None, None));
        let t: T = serde_json::from_str(r#"{"i": null, "c": 99999999999}"#).unwrap();
        assert_eq!((t.i, t.c), (None, Some(u32::MAX)));
    }
}
