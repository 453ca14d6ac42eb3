//! Listings: which Shopify inventory item (the "serial number") each WMS SKU is.
//!
//! A listings file replaces the listings as a whole or is refused as a whole, every offending line
//! named, so a faulty serial can never be half-imported. Pure: reading and checking the file;
//! whether a serial exists on Shopify is asked by the caller.

use serde::{Deserialize, Serialize};

/// One SKU ↔ inventory item mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub sku: String,
    /// The Shopify inventory item id (the WMS's `channelSerialNo`).
    pub item_id: u64,
}

/// A line of the file, with its 1-based line number (the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingLine {
    pub line: usize,
    pub listing: Listing,
}

/// Parses a serial number: the numeric inventory item id or `gid://shopify/InventoryItem/N`.
pub fn parse_serial(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.strip_prefix("gid://shopify/InventoryItem/").unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n > 0)
}

/// Reads a listings CSV (UTF-8, BOM allowed, header naming `channelSkuCode` and `channelSerialNo`,
/// other columns ignored). Returns the lines, or every problem found with its line number.
pub fn parse_csv(data: &[u8]) -> Result<Vec<ListingLine>, Vec<String>> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(data);
    let headers = reader.headers().map_err(|e| vec![format!("line 1: {e}")])?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(sku_col), Some(serial_col)) = (col("channelSkuCode"), col("channelSerialNo")) else {
        return Err(vec!["line 1: the header must name channelSkuCode and channelSerialNo".into()]);
    };
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // The file's own line (a quoted field may span lines), else the record count.
        let counted = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(counted, |p| p.line() as usize);
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(counted, |p| p.line() as usize);
        let sku = record.get(sku_col).unwrap_or("").to_string();
        let serial = record.get(serial_col).unwrap_or("");
        if sku.is_empty() {
            problems.push(format!("line {line}: channelSkuCode is empty"));
        }
        match parse_serial(serial) {
            Some(item_id) if !sku.is_empty() => lines.push(ListingLine { line, listing: Listing { sku, item_id } }),
            Some(_) => {}
            None => problems.push(format!("line {line}: channelSerialNo {serial:?} is not an inventory item id")),
        }
    }
    problems.extend(duplicates(&lines));
    if problems.is_empty() {
        Ok(lines)
    } else {
        Err(problems)
    }
}

/// Every repeated SKU and serial, naming all the lines that carry it.
fn duplicates(lines: &[ListingLine]) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut by_sku: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut by_serial: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for l in lines {
        by_sku.entry(&l.listing.sku).or_default().push(l.line);
        by_serial.entry(l.listing.item_id).or_default().push(l.line);
    }
    let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
    let mut out: Vec<String> = by_sku
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(sku, v)| format!("lines {}: SKU {sku} repeats", join(v)))
        .collect();
    out.extend(
        by_serial
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(serial, v)| format!("lines {}: serial number {serial} repeats", join(v))),
    );
    out
}

/// Problems for the lines whose serial Shopify does not know.
pub fn unknown_serials(lines: &[ListingLine], exists: impl Fn(u64) -> bool) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !exists(l.listing.item_id))
        .map(|l| {
            format!(
                "line {}: serial number {} (SKU {}) is not an inventory item on Shopify",
                l.line, l.listing.item_id, l.listing.sku
            )
        })
        .collect()
}

/// `listings discover`: maps SKUs found on exactly one variant; SKUs on several are reported.
pub fn discover(variants: &[(String, u64)]) -> (Vec<Listing>, Vec<String>) {
    use std::collections::BTreeMap;
    let mut by_sku: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (sku, item) in variants {
        let sku = sku.trim();
        if !sku.is_empty() {
            by_sku.entry(sku).or_default().push(*item);
        }
    }
    let mut listings = Vec::new();
    let mut ambiguous = Vec::new();
    for (sku, mut items) in by_sku {
        items.sort_unstable();
        items.dedup();
        match items.as_slice() {
            [item] => listings.push(Listing { sku: sku.to_string(), item_id: *item }),
            many => ambiguous.push(format!(
                "SKU {sku} is on {} variants (inventory items {}): not mapped",
                many.len(),
                many.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            )),
        }
    }
    (listings, ambiguous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_forms() {
        assert_eq!(parse_serial("49148385"), Some(49148385));
        assert_eq!(parse_serial("gid://shopify/InventoryItem/49148385"), Some(49148385));
        assert_eq!(parse_serial("gid://shopify/Product/1"), None);
        assert_eq!(parse_serial("serial1"), None);
        assert_eq!(parse_serial("0"), None);
        assert_eq!(parse_serial(""), None);
    }

    #[test]
    fn good_file_with_bom_and_extra_columns() {
        let csv = "\u{FEFF}channelSkuCode,title,channelSerialNo\nA,Shirt,101\nB,Hat,gid://shopify/InventoryItem/102\n";
        let lines = parse_csv(csv.as_bytes()).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1], ListingLine { line: 3, listing: Listing { sku: "B".into(), item_id: 102 } });
    }

    #[test]
    fn repeats_and_malformed_serials_name_every_line() {
        let csv = "channelSkuCode,channelSerialNo\nA,101\nB,101\nC,abc\nA,103\n";
        let errs = parse_csv(csv.as_bytes()).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("lines 2, 3") && e.contains("serial number 101")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("line 4") && e.contains("abc")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("lines 2, 5") && e.contains("SKU A")), "{errs:?}");
    }

    #[test]
    fn line_numbers_are_the_file_s_even_after_a_field_spanning_lines() {
        let csv = "channelSkuCode,note,channelSerialNo\nA,\"two\nlines\",101\nB,x,bad\n";
        let errs = parse_csv(csv.as_bytes()).unwrap_err();
        assert_eq!(errs, vec!["line 4: channelSerialNo \"bad\" is not an inventory item id".to_string()]);
    }

    #[test]
    fn missing_header_is_refused() {
        assert!(parse_csv(b"sku,serial\nA,1\n").unwrap_err()[0].contains("header"));
    }

    #[test]
    fn discover_maps_exact_skus_and_reports_ambiguous_ones() {
        let variants = vec![("A".into(), 1), ("B".into(), 2), ("B".into(), 3), ("".into(), 4)];
        let (listings, ambiguous) = discover(&variants);
        assert_eq!(listings, vec![Listing { sku: "A".into(), item_id: 1 }]);
        assert_eq!(ambiguous.len(), 1);
        assert!(ambiguous[0].contains("SKU B"));
    }
}
