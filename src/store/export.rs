//! `channeld export` and `channeld import`: every record of every tree as JSON lines, for backup
//! and support, and the way back from such a file into an empty store.
//!
//! Each record is read whole and decoded with its own type. sled has no snapshot across trees, so
//! an export taken while serving is consistent per record, not across records: a webhook recorded
//! during the export may appear in one tree and not yet in another. Every record is a state, not a
//! delta, so such an export still restores to a state channeld can resume from.
//!
//! What an export leaves out is only what the importing store makes itself or must not have:
//! - indexes (order names, counts, the personal-data, order-list and shipment indexes, the expiry
//!   order of tombstones): an import rebuilds them from the records, through the same writes the
//!   daemon makes;
//! - the store's own markers (the last applied journal record, one-time layout upgrades): they
//!   describe the files that wrote them;
//! - courier tokens: credentials never leave the store (the courier logs in again).
//!
//! Everything else travels, so a restored store is the original tree for tree (a test compares
//! them): the tombstones of orders pruned by retention (without them a late webhook would create an
//! order at the WMS again), the courier names learned from bookings, alerts, job runs, and any
//! `meta` value this file does not know, as its bytes.
//!
//! Each line carries the version of the format that wrote it (`"v"`; none is version 1). Version 2
//! added tombstones and the rest of `meta`; version 3 shipments' tracking records and the `activity`
//! tree (orders per hour, each order's log). A line of an older version reads as it always did, and
//! a line from a newer format is refused by name rather than misread.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{json, Value};
use sled::transaction::{ConflictableTransactionError as Abort, TransactionError, Transactional};

use super::activity::Record;
use super::handovers::HandoverRecord;
use super::inventory::JobStatus;
use super::order_index::{reindex, Indexed, META_INDEXED, META_LISTED};
use super::shipments::{META_SHIPMENTS_BY_ORDER, META_SHIPMENTS_INDEXED, META_SHIPMENT_AWBS};
use super::{be, chunks, codec, Inbound, Result, Store, StoreError, META_APPLIED, META_CHUNKED};
use crate::flows::inventory::InventoryRow;
use crate::flows::listings::Listing;
use crate::flows::model::{OrderRecord, OutboxEntry};
use crate::flows::shipment::ShipmentRecord;

/// The format version written on every line (see the module's documentation).
pub const EXPORT_VERSION: u64 = 3;

/// `meta` keys that belong to the store that wrote them: a position in its journal, and the
/// markers of one-time layout upgrades, which a new store sets itself when it is created.
const STORE_OWN_META: [&[u8]; 8] = [
    META_APPLIED,
    META_CHUNKED,
    META_INDEXED,
    META_LISTED,
    META_SHIPMENTS_INDEXED,
    META_SHIPMENTS_BY_ORDER,
    META_SHIPMENT_AWBS,
    super::outbox::META_QUEUED,
];

/// How a `meta` value travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetaKind {
    /// A job's last run (`job:*`), or an operator alert (`alert:*`, e.g. the WMS refusing our
    /// credentials): a [`JobStatus`]. Alerts travel: `doctor` shows them until the condition
    /// clears, and a restored store should tell the operator what the original did; a condition
    /// that is gone clears at the next call that goes through, as it would have there.
    Status,
    /// The name a booking gave for a courier partner (`courier_name:*`): a later "already placed"
    /// answer names only the partner, and the fulfillment needs the name.
    Name,
    /// `reconcile_watermark`: unix ms, in the record codec.
    Watermark,
    /// `first_start_ms`: unix ms, big-endian (the default `orders.since`).
    FirstStart,
    /// The store's own markers and courier tokens: never exported.
    Kept,
    /// Anything else: carried as its bytes (base64), so a value added later is never left out.
    Raw,
}

fn meta_kind(key: &[u8]) -> MetaKind {
    let text = String::from_utf8_lossy(key);
    match text.as_ref() {
        _ if STORE_OWN_META.contains(&key) || text.starts_with("token:") => MetaKind::Kept,
        k if k.starts_with("job:") || k.starts_with("alert:") => MetaKind::Status,
        k if k.starts_with("courier_name:") => MetaKind::Name,
        "reconcile_watermark" => MetaKind::Watermark,
        "first_start_ms" => MetaKind::FirstStart,
        _ => MetaKind::Raw,
    }
}

/// One export line.
fn line(tree: &str, key: Value, value: Value) -> Value {
    json!({ "v": EXPORT_VERSION, "tree": tree, "key": key, "value": value })
}

/// The export line of a `meta` value (`None`: it stays in the store).
fn meta_line(key: &[u8], bytes: &[u8]) -> Result<Option<Value>> {
    let name = json!(String::from_utf8_lossy(key));
    let value = match meta_kind(key) {
        MetaKind::Kept => return Ok(None),
        MetaKind::Status => json!(codec::decode::<JobStatus>(bytes)?),
        MetaKind::Name => json!(codec::decode::<String>(bytes)?),
        MetaKind::Watermark => json!(codec::decode::<i64>(bytes)?),
        MetaKind::FirstStart => json!(i64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]))),
        MetaKind::Raw => {
            let raw = base64::engine::general_purpose::STANDARD.encode(bytes);
            return Ok(Some(json!({ "v": EXPORT_VERSION, "tree": "meta", "key": name, "raw": raw })));
        }
    };
    Ok(Some(line("meta", name, value)))
}

/// The bytes to store for an imported `meta` line (`None`: not restored, as the store's own), or
/// why the line does not fit.
fn meta_bytes(key: &str, value: Value, raw: Option<&str>) -> std::result::Result<Option<Vec<u8>>, String> {
    let bad = || format!("not a value of meta {key:?}");
    let encoded = match meta_kind(key.as_bytes()) {
        MetaKind::Kept => return Ok(None),
        MetaKind::Status => codec::encode(&serde_json::from_value::<JobStatus>(value).map_err(|_| bad())?),
        MetaKind::Name => codec::encode(&value.as_str().ok_or_else(bad)?.to_string()),
        MetaKind::Watermark => codec::encode(&value.as_i64().ok_or_else(bad)?),
        MetaKind::FirstStart => return Ok(Some(value.as_i64().ok_or_else(bad)?.to_be_bytes().to_vec())),
        // Only version 2 writes `raw`; a version-1 line never carried such a key.
        MetaKind::Raw => match raw {
            Some(text) => return base64::engine::general_purpose::STANDARD.decode(text).map(Some).map_err(|_| bad()),
            None => return Ok(None),
        },
    };
    encoded.map(Some).map_err(|e| e.to_string())
}

/// What an import brought in, per tree.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    pub records: usize,
    pub orders: usize,
    pub outbox: usize,
    pub shipments: usize,
    pub handovers: usize,
    pub returns: usize,
    pub tracking: usize,
    pub payloads: usize,
    /// Orders pruned by retention, remembered so they are never taken in again.
    pub tombstones: usize,
}

/// Every sled tree by name, each as its (key, value) pairs in key order ([`Store::raw_trees`]).
pub type RawTrees = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

/// What an import gathers before writing it at the end: listings are replaced as one set, raw
/// bodies are journaled in one go, and the outbox sequence must pass every imported entry.
#[derive(Default)]
struct Gathered {
    report: Imported,
    listings: Vec<Listing>,
    payloads: Vec<Inbound>,
    top_seq: u64,
}

/// Why an import line was not taken: it does not fit (with why), or the store failed.
type LineResult = Result<std::result::Result<(), String>>;

impl Store {
    /// Emits every record; returns how many.
    pub fn export(&self, mut emit: impl FnMut(Value) -> std::io::Result<()>) -> Result<usize> {
        let i = &self.inner;
        let mut n = 0;
        let mut put = |line: Value| -> Result<()> {
            emit(line).map_err(StoreError::io)?;
            n += 1;
            Ok(())
        };
        self.each_order(|rec| put(line("orders", json!(rec.id), json!(rec))))?;
        self.each_tombstone(|id, at_ms| put(line("tombstones", json!(id), json!(at_ms))))?;
        for e in self.outbox_entries()? {
            put(line("outbox", json!([e.order_id, e.seq]), json!(e)))?;
        }
        self.each_shipment(|s| put(line("shipments", json!([s.order_id, s.shipment_id]), json!(s))))?;
        for item in i.handovers.iter() {
            let h: HandoverRecord = codec::decode(&item?.1)?;
            put(line("handovers", json!(h.order_id), json!(h)))?;
        }
        self.each_return(|r| put(line("returns", json!(r.id), json!(r))))?;
        self.each_tracking(|t| put(line("tracking", json!([t.order_id, t.shipment_id]), json!(t))))?;
        self.each_activity(|record| match record {
            Record::Hour { hour_ms, kind, shard, count } => {
                put(line("activity", json!(["hour", hour_ms, kind, shard]), json!(count)))
            }
            Record::Event { order_id, at_ms, tag, what } => {
                put(line("activity", json!(["event", order_id, at_ms, tag]), json!(what)))
            }
        })?;
        self.each_inbound(|seq, event| match event.webhook_body() {
            Some((topic, body)) => {
                let value = json!({ "topic": topic, "received_ms": event.received_ms(), "body": body });
                put(line("payloads", json!(seq), value))
            }
            None => Ok(()),
        })?;
        for item in i.webhook_ids.iter() {
            let (k, v) = item?;
            let at: i64 = codec::decode(&v)?;
            let (topic, id) = k.split_at(k.iter().position(|b| *b == 0).unwrap_or(k.len()));
            let id = id.get(1..).unwrap_or_default();
            let key = json!([String::from_utf8_lossy(topic), String::from_utf8_lossy(id)]);
            put(line("webhook_ids", key, json!(at)))?;
        }
        for item in i.listings.scan_prefix(b"s") {
            let l: Listing = codec::decode(&item?.1)?;
            put(line("listings", json!(l.sku), json!(l.item_id)))?;
        }
        for item in i.inventory.iter() {
            let row: InventoryRow = codec::decode(&item?.1)?;
            put(line("inventory", json!([row.location_id, row.sku]), json!(row)))?;
        }
        for item in i.meta.iter() {
            let (k, v) = item?;
            if let Some(l) = meta_line(&k, &v)? {
                put(l)?;
            }
        }
        Ok(n)
    }

    /// Whether the store holds no record a restore could clash with.
    pub fn is_empty(&self) -> bool {
        let i = &self.inner;
        let trees = [
            &i.orders,
            &i.order_names,
            &i.outbox,
            &i.shipments,
            &i.handovers,
            &i.returns,
            &i.tracking,
            &i.listings,
            &i.inventory,
        ];
        trees.iter().all(|t| t.is_empty())
    }

    /// Restores an export into an empty store. Each line is checked as it is read; a line that
    /// does not fit stops the import with its number (the store is then not used: delete it and
    /// try again). Blocks: run it on a blocking thread.
    pub fn import(&self, lines: impl Iterator<Item = std::io::Result<String>>) -> Result<Imported> {
        if !self.is_empty() {
            return Err(StoreError::NotFound("the store is not empty: import restores into a new store only".into()));
        }
        let mut got = Gathered::default();
        for (n, text) in lines.enumerate() {
            let text = text.map_err(StoreError::io)?;
            if text.trim().is_empty() {
                continue;
            }
            let bad = |why: String| StoreError::NotFound(format!("line {}: {why}", n + 1));
            let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            match v.get("v").map_or(Some(1), Value::as_u64) {
                Some(1..=EXPORT_VERSION) => {}
                Some(found) if found > EXPORT_VERSION => {
                    return Err(bad(format!(
                        "written by a newer channeld (export version {found}; this one reads up to {EXPORT_VERSION})"
                    )))
                }
                _ => return Err(bad(format!("{} is not an export version", v["v"]))),
            }
            self.import_record(v, &mut got)?.map_err(bad)?;
        }
        let Gathered { mut report, listings, payloads, top_seq } = got;
        if !listings.is_empty() {
            self.replace_listings(&listings)?;
        }
        // New outbox entries must sort after the imported ones of their order.
        while self.inner.db.generate_id()? <= top_seq {}
        report.payloads = payloads.len();
        report.records += payloads.len();
        self.append_legacy(payloads)?;
        self.sync_state_blocking()?;
        Ok(report)
    }

    /// Every key and value of every sled tree, as stored, by tree name: for tests that compare two
    /// stores whole (an export's round trip). It holds credentials: never print or write it out.
    #[doc(hidden)]
    pub fn raw_trees(&self) -> Result<RawTrees> {
        let mut trees = BTreeMap::new();
        for name in self.inner.db.tree_names() {
            let pairs = self.inner.db.open_tree(&name)?.iter().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())));
            trees.insert(String::from_utf8_lossy(&name).into_owned(), pairs.collect::<Result<Vec<_>, _>>()?);
        }
        Ok(trees)
    }

    /// Stores one exported record (or gathers it, see [`Gathered`]).
    fn import_record(&self, mut v: Value, got: &mut Gathered) -> LineResult {
        let (key, value) = (v["key"].take(), v["value"].take());
        let tree = v["tree"].as_str().unwrap_or_default();
        let typed = || Ok(Err(format!("not a {tree} record")));
        let report = &mut got.report;
        match tree {
            "orders" => {
                let Ok(rec) = serde_json::from_value(value) else { return typed() };
                self.import_order(&rec)?;
                report.orders += 1;
            }
            "tombstones" => {
                let (Some(id), Some(at_ms)) = (key.as_u64(), value.as_i64()) else { return typed() };
                self.put_tombstone(id, at_ms)?;
                report.tombstones += 1;
            }
            "outbox" => {
                let Ok(e) = serde_json::from_value::<OutboxEntry>(value) else { return typed() };
                got.top_seq = got.top_seq.max(e.seq);
                self.restore_entry(&e)?;
                report.outbox += 1;
            }
            "shipments" => {
                let Ok(s) = serde_json::from_value::<ShipmentRecord>(value) else { return typed() };
                self.save_shipment(&s, &[], s.updated_ms)?;
                report.shipments += 1;
            }
            "handovers" => {
                let Ok(h) = serde_json::from_value::<HandoverRecord>(value) else { return typed() };
                self.inner.handovers.insert(be(h.order_id), codec::encode(&h)?)?;
                report.handovers += 1;
            }
            "returns" => {
                let Ok(r) = serde_json::from_value::<crate::flows::returns::ReturnRecord>(value) else {
                    return typed();
                };
                self.restore_return(&r)?;
                report.returns += 1;
            }
            "tracking" => {
                let Ok(t) = serde_json::from_value::<crate::flows::tracking::TrackingRecord>(value) else {
                    return typed();
                };
                self.restore_tracking(&t)?;
                report.tracking += 1;
            }
            "activity" => {
                let num = |i: usize| key[i].as_i64();
                match (key[0].as_str(), num(1), num(2), num(3)) {
                    (Some("hour"), Some(hour), Some(kind), Some(shard)) => {
                        let (Ok(kind), Ok(shard), Some(n)) = (u8::try_from(kind), u8::try_from(shard), value.as_i64())
                        else {
                            return typed();
                        };
                        self.restore_hour(hour, kind, shard, n)?;
                    }
                    (Some("event"), Some(_), Some(at), Some(tag)) => {
                        let (Some(order), Ok(tag), Some(what)) = (key[1].as_u64(), u32::try_from(tag), value.as_str())
                        else {
                            return typed();
                        };
                        self.restore_event(order, at, tag, what)?;
                    }
                    _ => return typed(),
                }
            }
            "payloads" => {
                let text = |k: &str| value[k].as_str().map(str::to_string);
                let (Some(topic), Some(received_ms), Some(body)) =
                    (text("topic"), value["received_ms"].as_i64(), text("body"))
                else {
                    return typed();
                };
                got.payloads.push(Inbound::Legacy { topic, received_ms, body });
                return Ok(Ok(())); // counted once journaled
            }
            "webhook_ids" => {
                let (Some(topic), Some(id), Some(at)) = (key[0].as_str(), key[1].as_str(), value.as_i64()) else {
                    return typed();
                };
                self.inner.webhook_ids.insert([topic.as_bytes(), &[0], id.as_bytes()].concat(), codec::encode(&at)?)?;
            }
            "listings" => {
                let (Some(sku), Some(item_id)) = (key.as_str(), value.as_u64()) else { return typed() };
                got.listings.push(Listing { sku: sku.to_string(), item_id });
            }
            "inventory" => {
                let Ok(row) = serde_json::from_value::<InventoryRow>(value) else { return typed() };
                self.put_inventory_row(&row)?;
            }
            "meta" => {
                let Some(name) = key.as_str() else { return typed() };
                match meta_bytes(name, value, v["raw"].as_str()) {
                    Ok(Some(bytes)) => self.inner.meta.insert(name.as_bytes(), bytes).map(drop)?,
                    Ok(None) => return Ok(Ok(())),
                    Err(why) => return Ok(Err(why)),
                }
            }
            other => return Ok(Err(format!("unknown tree {other:?}"))),
        }
        report.records += 1;
        Ok(Ok(()))
    }

    /// Stores an imported order with its name and indexes, as intake would have.
    fn import_order(&self, rec: &OrderRecord) -> Result<()> {
        let i = &self.inner;
        let bytes = codec::encode(rec)?;
        (&i.orders, &i.order_names, &i.order_counts, &i.personal, &i.overflow, &i.order_list)
            .transaction(|(orders, names, counts, personal, overflow, list)| {
                if !rec.name.is_empty() {
                    names.insert(rec.name.as_bytes(), &be(rec.id))?;
                }
                reindex(counts, personal, list, None::<Indexed>, rec)?;
                chunks::put(orders, overflow, chunks::ORDERS, &be(rec.id), &bytes)?;
                Ok::<_, Abort<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(()) => StoreError::NotFound("an order could not be imported".into()),
                TransactionError::Storage(e) => StoreError::Sled(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported(store: &Store) -> Vec<Value> {
        let mut lines = Vec::new();
        store
            .export(|v| {
                lines.push(v);
                Ok(())
            })
            .unwrap();
        lines
    }

    fn imported(lines: &[Value]) -> Result<(tempfile::TempDir, Store, Imported)> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8)?;
        let report = store.import(lines.iter().map(|l| Ok(l.to_string())))?;
        Ok((dir, store, report))
    }

    fn meta(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
        store.raw_trees().unwrap().remove("meta").unwrap_or_default()
    }

    /// Every `meta` value travels — known ones typed, unknown ones as bytes — except the store's
    /// own markers and courier tokens; tombstones travel with their expiry order.
    #[test]
    fn meta_and_tombstones_travel_but_markers_and_credentials_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        let status = JobStatus { last_run_ms: 5, ok: false, summary: "refused".into() };
        store.set_job_status("archive", &status).unwrap();
        store.set_alert("wms_credentials", Some(&status)).unwrap();
        store.learn_courier_name("clickpost", 7, "Delhivery").unwrap();
        store.set_reconcile_watermark(99).unwrap();
        store.first_start_ms(1_000).unwrap();
        store.set_courier_token("shiprocket", "secret-token", 3).unwrap();
        store.inner.meta.insert("a_later_value", &[1, 2, 3]).unwrap();
        store.note_applied(41).unwrap();
        store.put_tombstone(12, 86_400_000).unwrap();

        let lines = exported(&store);
        let text: String = lines.iter().map(Value::to_string).collect();
        assert!(!text.contains("secret-token") && !text.contains("token:"), "{text}");
        assert!(lines.iter().all(|l| l["v"] == EXPORT_VERSION), "{text}");
        let (_dir, restored, report) = imported(&lines).unwrap();
        assert_eq!(report.tombstones, 1);
        let own = |k: &[u8]| STORE_OWN_META.contains(&k) || k.starts_with(b"token:");
        let travelled: Vec<_> = meta(&store).into_iter().filter(|(k, _)| !own(k)).collect();
        assert_eq!(travelled.len(), 6, "{travelled:?}");
        let restored_meta = meta(&restored);
        assert!(travelled.iter().all(|kv| restored_meta.contains(kv)), "{restored_meta:?}");
        assert!(restored.courier_token("shiprocket").unwrap().is_none());
        assert_ne!(restored.inner.meta.get(META_APPLIED).unwrap().as_deref(), Some(&41u64.to_be_bytes()[..]));
        let names = |s: &Store| s.raw_trees().unwrap().remove("order_names").unwrap();
        assert_eq!(names(&restored), names(&store), "the tombstone and its place in the expiry order");
        // The tombstone expires in the restored store as it would have in the original.
        assert_eq!(restored.prune_tombstones(86_400_000 * 367).unwrap(), 1);
    }

    /// A version-1 export (no `v`, no tombstones, typed `meta` only) still imports; a line from a
    /// newer format is refused with its number.
    #[test]
    fn an_older_export_imports_and_a_newer_one_is_refused_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8).unwrap();
        store.set_reconcile_watermark(99).unwrap();
        store.set_job_status("archive", &JobStatus { last_run_ms: 5, ok: true, summary: "ok".into() }).unwrap();
        let row = InventoryRow {
            sku: "A".into(),
            item_id: 2,
            location_id: 1,
            location_code: "WH-1".into(),
            desired: 3,
            pushed: None,
            quarantine: None,
            updated_ms: 4,
        };
        store.put_inventory_row(&row).unwrap();
        let v1: Vec<Value> = exported(&store)
            .into_iter()
            .map(|mut l| {
                l.as_object_mut().unwrap().remove("v");
                l
            })
            .collect();
        let (_dir, restored, report) = imported(&v1).unwrap();
        assert_eq!(report.records, 3, "{report:?}");
        assert_eq!(restored.reconcile_watermark().unwrap(), Some(99));
        assert_eq!(restored.inventory_rows().unwrap(), store.inventory_rows().unwrap());

        let mut newer = v1.clone();
        newer[1]["v"] = json!(EXPORT_VERSION + 1);
        let err = imported(&newer).err().unwrap().to_string();
        assert!(err.starts_with("line 2: written by a newer channeld"), "{err}");
    }
}
