//! Shipments (Increff "Pack Order"): what a pack call asks for, the shipment channeld keeps, the
//! Clickpost booking request, and the answers the WMS gets. Pure.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::{OrderRecord, SentItem};
use super::round2;
use crate::config::Location;

/// `POST /wms/shipments` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackIn {
    #[serde(default)]
    pub order_code: String,
    #[serde(default)]
    pub location_code: String,
    /// Exactly as sent, or the body is refused: never clamped (two orders' ids read as one
    /// would share a shipment).
    #[serde(deserialize_with = "shipment_id")]
    pub shipment_id: Option<u64>,
    /// Grams.
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub dimensions: Option<Dimensions>,
    #[serde(default)]
    pub invoice: Option<InvoiceIn>,
}

/// A `shipmentId`: a whole number from 0 to `u64::MAX`, as a number or a numeric string; `null`
/// is none. Anything else is an error, out-of-range numbers included: JSON numbers beyond what
/// an `f64` holds exactly (2^53) are refused unless they are integers serde reads exactly.
fn shipment_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    let v = Value::deserialize(d)?;
    let refuse = || D::Error::custom(format!("shipmentId {v} is not a whole number from 0 to {}", u64::MAX));
    match &v {
        Value::Null => Ok(None),
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(id), _) => Ok(Some(id)),
            // An integral float only while it is exact (77.0 is 77; 1e30 is no id).
            (None, Some(f)) if f.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&f) => Ok(Some(f as u64)),
            _ => Err(refuse()),
        },
        Value::String(s) => s.trim().parse::<u64>().map(Some).map_err(|_| refuse()),
        _ => Err(refuse()),
    }
}

/// The query of `GET /wms/invoice` and `GET /wms/shipping-label`: which shipment the WMS asks about.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentQuery {
    #[serde(default)]
    pub order_code: String,
    #[serde(default)]
    pub shipment_code: String,
    #[serde(default)]
    pub shipment_id: String,
}

impl ShipmentQuery {
    /// The order asked about: `None` when no `orderCode` is given (then the one order using the
    /// shipment id is meant). An `orderCode` that is no order id names no order channeld sent, so
    /// nothing can be found for it: the message says so.
    pub fn order(&self) -> Result<Option<u64>, String> {
        match self.order_code.trim() {
            "" => Ok(None),
            code => code.parse::<u64>().map(Some).map_err(|_| format!("unknown orderCode {code:?}")),
        }
    }

    /// The shipment ids to look for, in order: `shipmentCode`, then `shipmentId` (those that are
    /// numbers).
    pub fn shipment_ids(&self) -> Vec<u64> {
        [&self.shipment_code, &self.shipment_id].iter().filter_map(|c| c.trim().parse::<u64>().ok()).collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Dimensions {
    #[serde(default)]
    pub length: f64,
    #[serde(default)]
    pub breadth: f64,
    #[serde(default)]
    pub height: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceIn {
    #[serde(default)]
    pub invoice_code: Option<String>,
    #[serde(default)]
    pub invoice_date: Option<String>,
    #[serde(default)]
    pub invoice_url: Option<String>,
    #[serde(default)]
    pub invoice_items: Vec<InvoiceItemIn>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceItemIn {
    #[serde(default)]
    pub channel_sku_code: String,
    #[serde(default, deserialize_with = "crate::lenient::text")]
    pub order_item_code: String,
    #[serde(default)]
    pub quantity: Option<u32>,
}

/// Where a booking stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShipmentState {
    /// Recorded; the courier is being asked (or will be again after a restart).
    Booking,
    Booked,
    /// The courier refused; a repeat of the pack call tries again.
    Failed(String),
}

/// One line of a shipment: a WMS item and the Shopify lines behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentLine {
    pub sku: String,
    pub item_code: String,
    pub quantity: u32,
    /// (Shopify line id, units) for the fulfillment.
    pub shopify_lines: Vec<(u64, u32)>,
    pub unit_price: f64,
}

/// The invoice the pack call sent (Clickpost makes none; Get Invoice answers from this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceInfo {
    pub code: String,
    pub date: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentRecord {
    pub shipment_id: u64,
    pub order_id: u64,
    pub order_name: String,
    pub location_code: String,
    pub provider: String,
    pub weight_grams: u32,
    pub dimensions_cm: [u32; 3],
    pub lines: Vec<ShipmentLine>,
    pub invoice: Option<InvoiceInfo>,
    pub state: ShipmentState,
    pub awb: String,
    pub transporter: String,
    pub label_url: String,
    /// Shiprocket's invoice, when it makes one.
    pub invoice_url: String,
    /// The courier's own ids (Shiprocket: order id and shipment id).
    pub courier_order_id: String,
    pub courier_shipment_id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl ShipmentRecord {
    /// Still needs work from channeld: the booking, or a label (or Shiprocket invoice) to fetch.
    pub fn unfinished(&self) -> bool {
        match self.state {
            ShipmentState::Booking => true,
            ShipmentState::Booked => {
                self.label_url.is_empty() || (self.provider == "shiprocket" && self.invoice_url.is_empty())
            }
            ShipmentState::Failed(_) => false,
        }
    }

    /// Clickpost's `reference_number`: unique per shipment, stable across retries.
    pub fn reference(&self) -> String {
        format!("{}-s{}", self.order_id, self.shipment_id)
    }

    /// The Create Shipment answer, flat and nested for both Increff variants.
    pub fn answer(&self) -> Value {
        json!({
            "hasError": false,
            "shipmentCode": self.shipment_id.to_string(),
            "shipmentId": self.shipment_id,
            "awbNumber": self.awb,
            "transporter": self.transporter,
            "shippingLabelUrl": self.label_url,
            "shippingLabel": { "awbNumber": self.awb, "transporter": self.transporter, "shippingLabelUrl": self.label_url },
        })
    }

    /// The Get Shipping Label answer, once the courier gave an AWB and a label.
    pub fn label_answer(&self) -> Option<Value> {
        if self.label_url.is_empty() || self.awb.is_empty() {
            return None;
        }
        Some(json!({ "awbNumber": self.awb, "transporter": self.transporter, "shippingLabelUrl": self.label_url }))
    }

    /// The Get Invoice answer: Shiprocket's invoice (with the pack call's number and date when
    /// given), or — Clickpost makes no tax invoice — what the pack call sent. `None` while unknown.
    pub fn invoice_answer(&self) -> Option<Value> {
        if self.provider == "shiprocket" {
            if self.invoice_url.is_empty() {
                return None;
            }
            let date =
                chrono::DateTime::from_timestamp_millis(self.updated_ms).map(super::fmt_time).unwrap_or_default();
            let (code, date) = self
                .invoice
                .as_ref()
                .map_or((self.shipment_id.to_string(), date), |i| (i.code.clone(), i.date.clone()));
            return Some(json!({ "invoiceCode": code, "invoiceDate": date, "invoiceUrl": self.invoice_url }));
        }
        let inv = self.invoice.as_ref()?;
        Some(json!({ "invoiceCode": inv.code, "invoiceDate": inv.date, "invoiceUrl": inv.url }))
    }
}

/// The transporter to record for a booking: the courier the booking names; else the one stored
/// at the shipment's first booking; else the one an earlier booking named for the same courier
/// partner (`learned`). Clickpost's "already placed" (323) and its lookup name no courier, only
/// its partner id, and an empty transporter would reach the WMS and Shopify while one is known.
pub fn transporter(booked: &str, stored: &str, learned: Option<String>) -> String {
    [booked, stored]
        .into_iter()
        .find(|name| !name.trim().is_empty())
        .map(str::to_string)
        .or(learned.filter(|name| !name.trim().is_empty()))
        .unwrap_or_default()
}

/// How a booking ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Booked {
    Done(Box<ShipmentRecord>),
    /// The courier refused: its message goes back to the WMS.
    Refused(String),
    /// Not now (courier down, throttled, still processing): the WMS should call again.
    Later(String),
}

/// Why a pack call cannot become a shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackError {
    NotFound(String),
    Invalid(String),
}

/// Builds the shipment a pack call describes: its lines are the invoice items when given, else
/// every unit of the order still open — not cancelled, and not in `others` (the order's other
/// shipments; refused ones do not count). More units than are open are refused.
pub fn new_shipment(
    rec: &OrderRecord,
    pack: &PackIn,
    others: &[ShipmentRecord],
    provider: &str,
    defaults: (u32, [u32; 3]),
    now_ms: i64,
) -> Result<ShipmentRecord, PackError> {
    let shipment_id = pack.shipment_id.ok_or_else(|| PackError::Invalid("shipmentId is missing".into()))?;
    let Some(snap) = rec.at_wms() else {
        return Err(PackError::NotFound(format!("order {} has not reached the WMS", rec.id)));
    };
    let prices = unit_prices(&snap.create_body);
    let cancelled = |code: &str| rec.seller_cancelled.iter().find(|(c, _)| c == code).map_or(0, |(_, q)| *q);
    let shipped = |code: &str| -> u32 {
        others
            .iter()
            .filter(|o| o.shipment_id != shipment_id && !matches!(o.state, ShipmentState::Failed(_)))
            .flat_map(|o| o.lines.iter().filter(|l| l.item_code == code).map(|l| l.quantity))
            .sum()
    };
    let open = |item: &SentItem| item.quantity.saturating_sub(cancelled(&item.item_code) + shipped(&item.item_code));
    let wanted: Vec<(&SentItem, u32)> = match pack.invoice.as_ref().filter(|i| !i.invoice_items.is_empty()) {
        Some(inv) => inv
            .invoice_items
            .iter()
            .map(|it| {
                let item = snap.items.iter().find(|i| i.item_code == it.order_item_code.trim()).ok_or_else(|| {
                    PackError::NotFound(format!("order {} has no orderItemCode {}", rec.id, it.order_item_code))
                })?;
                Ok((item, it.quantity.unwrap_or(item.quantity)))
            })
            .collect::<Result<_, PackError>>()?,
        None => snap.items.iter().map(|i| (i, open(i))).collect(),
    };
    for item in &snap.items {
        let packed: u64 =
            wanted.iter().filter(|(i, _)| i.item_code == item.item_code).map(|(_, q)| u64::from(*q)).sum();
        let open = open(item);
        if packed > u64::from(open) {
            return Err(PackError::Invalid(format!(
                "orderItemCode {}: {packed} units packed, {open} open on order {}",
                item.item_code, rec.id
            )));
        }
    }
    let lines: Vec<ShipmentLine> = wanted
        .into_iter()
        .filter(|(_, q)| *q > 0)
        .map(|(item, qty)| ShipmentLine {
            sku: item.sku.clone(),
            item_code: item.item_code.clone(),
            quantity: qty,
            shopify_lines: spread(&item.lines, qty),
            unit_price: prices.iter().find(|(c, _)| *c == item.item_code).map_or(0.0, |(_, p)| *p),
        })
        .collect();
    if lines.is_empty() {
        return Err(PackError::Invalid(format!(
            "order {} has nothing left to ship (cancelled or in other shipments)",
            rec.id
        )));
    }
    let dims = pack
        .dimensions
        .as_ref()
        .map(|d| [d.length, d.breadth, d.height].map(|v| v.round().max(0.0) as u32))
        .filter(|d| d.iter().all(|v| *v > 0))
        .unwrap_or(defaults.1);
    let invoice = pack.invoice.as_ref().and_then(|i| {
        let code = i.invoice_code.clone().unwrap_or_default();
        (!code.is_empty()).then(|| InvoiceInfo {
            code,
            date: i.invoice_date.clone().unwrap_or_default(),
            url: i.invoice_url.clone().unwrap_or_default(),
        })
    });
    Ok(ShipmentRecord {
        shipment_id,
        order_id: rec.id,
        order_name: rec.name.clone(),
        location_code: pack.location_code.trim().to_string(),
        provider: provider.to_string(),
        weight_grams: pack.weight.filter(|w| *w > 0.0).map_or(defaults.0, |w| w.round() as u32),
        dimensions_cm: dims,
        lines,
        invoice,
        state: ShipmentState::Booking,
        awb: String::new(),
        transporter: String::new(),
        label_url: String::new(),
        invoice_url: String::new(),
        courier_order_id: String::new(),
        courier_shipment_id: String::new(),
        created_ms: now_ms,
        updated_ms: now_ms,
    })
}

/// `units` of an item spread over its Shopify lines, first lines first.
fn spread(lines: &[(u64, u32)], units: u32) -> Vec<(u64, u32)> {
    let mut left = units;
    let mut out = Vec::new();
    for (id, qty) in lines {
        let take = left.min(*qty);
        if take > 0 {
            out.push((*id, take));
            left -= take;
        }
    }
    out
}

/// (orderItemCode, selling price per unit) from the Create Outward Order that was sent.
fn unit_prices(create_body: &str) -> Vec<(String, f64)> {
    let v: Value = serde_json::from_str(create_body).unwrap_or(Value::Null);
    v["orderItems"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| Some((i["orderItemCode"].as_str()?.to_string(), i["sellingPricePerUnit"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Clickpost create-order v3 body for a shipment of this order.
pub fn clickpost_request(
    s: &ShipmentRecord,
    rec: &OrderRecord,
    pickup: &Location,
    courier_partner: u32,
    account_code: &str,
) -> Value {
    let create: Value = rec.wms.as_ref().and_then(|w| serde_json::from_str(&w.create_body).ok()).unwrap_or(Value::Null);
    let to = &create["shippingAddress"];
    let cod = create["paymentMethod"] == "COD";
    let invoice_value = round2(s.lines.iter().map(|l| l.unit_price * f64::from(l.quantity)).sum());
    let cod_value = if cod { round2(rec.wms.as_ref().map_or(invoice_value, |w| w.cod_amount)) } else { 0.0 };
    let items: Vec<Value> = s
        .lines
        .iter()
        .map(|l| json!({ "sku": l.sku, "description": l.sku, "quantity": l.quantity, "price": round2(l.unit_price) }))
        .collect();
    let mut shipment = json!({
        "order_type": if cod { "COD" } else { "PREPAID" },
        "cod_value": cod_value,
        "invoice_value": invoice_value,
        "invoice_number": s.invoice.as_ref().map_or_else(|| s.shipment_id.to_string(), |i| i.code.clone()),
        "invoice_date": s.invoice.as_ref().map(|i| i.date.get(..10).unwrap_or_default().to_string()).unwrap_or_default(),
        "reference_number": s.reference(),
        "length": s.dimensions_cm[0],
        "breadth": s.dimensions_cm[1],
        "height": s.dimensions_cm[2],
        "weight": s.weight_grams,
        "items": items,
    });
    if courier_partner > 0 {
        shipment["courier_partner"] = json!(courier_partner);
    }
    let mut additional =
        json!({ "label": true, "delivery_type": "FORWARD", "async": false, "order_id": rec.id.to_string() });
    if !account_code.is_empty() {
        additional["account_code"] = json!(account_code);
    }
    json!({
        "pickup_info": {
            "pickup_name": pickup.name, "pickup_phone": pickup.phone, "pickup_address": pickup.address,
            "pickup_city": pickup.city, "pickup_state": pickup.state, "pickup_pincode": pickup.pincode,
            "pickup_country": pickup.country, "pickup_time": "",
        },
        "drop_info": {
            "drop_name": to["name"], "drop_phone": to["phone"],
            "drop_address": format!("{} {}", to["line1"].as_str().unwrap_or_default(), to["line2"].as_str().unwrap_or_default()).trim(),
            "drop_city": to["city"], "drop_state": to["state"], "drop_pincode": to["zip"], "drop_country": to["country"],
            "drop_email": to["email"],
        },
        "shipment_details": shipment,
        "additional": additional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::intake::{apply, Topic};
    use crate::flows::tests::{fixture_order, rules};

    #[test]
    fn a_lookup_names_an_order_by_id_and_its_shipment_by_code_then_id() {
        let q = |order: &str, code: &str, id: &str| ShipmentQuery {
            order_code: order.into(),
            shipment_code: code.into(),
            shipment_id: id.into(),
        };
        assert_eq!(q(" 42 ", "7", "8").order(), Ok(Some(42)));
        assert_eq!(q("", "7", "8").order(), Ok(None), "no orderCode: any order using the id");
        assert_eq!(q("#1001", "", "").order(), Err("unknown orderCode \"#1001\"".to_string()));
        assert_eq!(q("1", " 7 ", "8").shipment_ids(), vec![7, 8]);
        assert_eq!(q("1", "S-7", "8").shipment_ids(), vec![8]);
    }

    fn sent_order(cod: bool) -> OrderRecord {
        let mut o = fixture_order();
        if cod {
            o.payment_gateway_names = vec!["Cash on Delivery (COD)".into()];
            o.total_outstanding = 199.65;
        }
        let mut rec = apply(None, Topic::Create, o.id, Ok(&o), &rules(), 0).record;
        rec.wms_created = true;
        rec
    }

    fn pack(body: Value) -> PackIn {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn the_fixture_pack_call_parses() {
        let p: PackIn =
            serde_json::from_str(include_str!("../../tests/fixtures/increff/pack_order_request_PARTIAL.json")).unwrap();
        assert_eq!(p.shipment_id, Some(120001));
        assert_eq!(p.weight, Some(40.0));
    }

    #[test]
    fn the_transporter_is_never_left_empty_when_one_is_known() {
        assert_eq!(transporter("Fedex", "Delhivery", Some("BlueDart".into())), "Fedex");
        assert_eq!(transporter("", "Delhivery", Some("BlueDart".into())), "Delhivery", "stored at the first booking");
        assert_eq!(transporter(" ", "", Some("BlueDart".into())), "BlueDart", "learned for the courier partner");
        assert_eq!(transporter("", "", None), "");
    }

    #[test]
    fn shipment_ids_are_read_exactly_or_refused() {
        let id = |raw: &str| {
            serde_json::from_str::<PackIn>(&format!(r#"{{"orderCode": "1", "shipmentId": {raw}}}"#))
                .map(|p| p.shipment_id)
                .map_err(|e| e.to_string())
        };
        assert_eq!(id("77"), Ok(Some(77)));
        assert_eq!(id("\"77\""), Ok(Some(77)));
        assert_eq!(id("77.0"), Ok(Some(77)));
        assert_eq!(id("null"), Ok(None));
        assert_eq!(id("9223372036854775808"), Ok(Some(9_223_372_036_854_775_808)), "2^63 is a u64");
        assert_eq!(id("18446744073709551615"), Ok(Some(u64::MAX)));
        assert_eq!(id("\"18446744073709551615\""), Ok(Some(u64::MAX)));
        for bad in ["18446744073709551616", "\"18446744073709551616\"", "1e30", "-1", "7.5", "\"abc\"", "true"] {
            let e = id(bad).unwrap_err();
            assert!(e.contains("not a whole number"), "{bad}: {e}");
        }
    }

    #[test]
    fn lines_default_to_every_open_line_and_clickpost_gets_cod() {
        let rec = sent_order(true);
        let s = new_shipment(
            &rec,
            &pack(json!({ "orderCode": "450789469", "shipmentId": "77", "weight": 750,
            "dimensions": { "length": 20, "breadth": 10, "height": 5 } })),
            &[],
            "clickpost",
            (500, [18, 12, 10]),
            0,
        )
        .unwrap();
        assert_eq!(s.lines.len(), 1);
        assert_eq!(s.lines[0].shopify_lines, vec![(518995019, 1)]);
        assert_eq!((s.weight_grams, s.dimensions_cm), (750, [20, 10, 5]));
        assert_eq!(s.reference(), "450789469-s77");
        let loc: Location =
            toml::from_str("shopify_location_id = 1\nwms_location_code = \"W\"\nname = \"WH\"\npincode = \"560001\"")
                .unwrap();
        let body = clickpost_request(&s, &rec, &loc, 3, "");
        assert_eq!(body["shipment_details"]["order_type"], "COD");
        assert_eq!(body["shipment_details"]["cod_value"], 199.65);
        assert_eq!(body["shipment_details"]["reference_number"], "450789469-s77");
        assert_eq!(body["shipment_details"]["courier_partner"], 3);
        assert_eq!(body["drop_info"]["drop_pincode"], "40202");
        assert_eq!(body["pickup_info"]["pickup_pincode"], "560001");
        let answer = s.answer();
        assert_eq!(answer["shipmentCode"], "77");
    }

    #[test]
    fn prepaid_has_no_cod_value_and_defaults_fill_in() {
        let rec = sent_order(false);
        let s = new_shipment(
            &rec,
            &pack(json!({ "orderCode": "450789469", "shipmentId": 78 })),
            &[],
            "clickpost",
            (500, [18, 12, 10]),
            0,
        )
        .unwrap();
        assert_eq!((s.weight_grams, s.dimensions_cm), (500, [18, 12, 10]));
        let loc: Location = toml::from_str("shopify_location_id = 1\nwms_location_code = \"W\"").unwrap();
        let body = clickpost_request(&s, &rec, &loc, 0, "");
        assert_eq!(
            (body["shipment_details"]["order_type"].as_str(), body["shipment_details"]["cod_value"].as_f64()),
            (Some("PREPAID"), Some(0.0))
        );
        assert!(body["shipment_details"].get("courier_partner").is_none());
    }

    #[test]
    fn invoice_items_choose_the_lines_and_unknown_items_are_refused() {
        let rec = sent_order(false);
        let p = pack(json!({ "orderCode": "450789469", "shipmentId": 79, "invoice": { "invoiceCode": "INV1",
            "invoiceDate": "2026-11-27T10:00:00Z", "invoiceItems": [{ "orderItemCode": "999", "quantity": 1 }] } }));
        assert!(matches!(new_shipment(&rec, &p, &[], "clickpost", (1, [1, 1, 1]), 0), Err(PackError::NotFound(_))));
        let p = pack(json!({ "orderCode": "450789469", "shipmentId": 79, "invoice": { "invoiceCode": "INV1",
            "invoiceDate": "2026-11-27T10:00:00Z", "invoiceItems": [{ "orderItemCode": "518995019", "quantity": 1 }] } }));
        let s = new_shipment(&rec, &p, &[], "clickpost", (1, [1, 1, 1]), 0).unwrap();
        assert_eq!(s.invoice.unwrap().code, "INV1");
    }
    #[test]
    fn a_pack_call_is_accepted_while_the_creation_answer_is_not_yet_recorded() {
        // The WMS can pack an order between answering the creation and channeld recording that
        // answer: naming the order proves it arrived.
        let mut rec = sent_order(false);
        rec.wms_created = false;
        let p = pack(json!({ "orderCode": "450789469", "shipmentId": 80 }));
        assert!(new_shipment(&rec, &p, &[], "clickpost", (1, [1, 1, 1]), 0).is_ok());
        // Cancelled on Shopify before it was sent: the WMS cannot have it.
        rec.cancelled = true;
        assert!(matches!(new_shipment(&rec, &p, &[], "clickpost", (1, [1, 1, 1]), 0), Err(PackError::NotFound(_))));
    }
    #[test]
    fn more_units_than_open_are_refused() {
        let rec = sent_order(false);
        for qty in [2, 4_000_000_000u32] {
            let p = pack(json!({ "orderCode": "450789469", "shipmentId": 81, "invoice": { "invoiceCode": "I",
                "invoiceItems": [{ "orderItemCode": "518995019", "quantity": qty }] } }));
            let e = new_shipment(&rec, &p, &[], "clickpost", (1, [1, 1, 1]), 0).unwrap_err();
            assert!(matches!(&e, PackError::Invalid(m) if m.contains("1 open")), "{e:?}");
        }
        // The same item twice adds up.
        let p = pack(json!({ "orderCode": "450789469", "shipmentId": 81, "invoice": { "invoiceCode": "I",
            "invoiceItems": [{ "orderItemCode": "518995019", "quantity": 1 }, { "orderItemCode": "518995019" }] } }));
        assert!(matches!(new_shipment(&rec, &p, &[], "clickpost", (1, [1, 1, 1]), 0), Err(PackError::Invalid(_))));
    }
    #[test]
    fn split_shipments_share_the_open_units() {
        let mut rec = sent_order(false);
        let item = &mut rec.wms.as_mut().unwrap().items[0];
        item.quantity = 3;
        item.lines = vec![(518995019, 3)];
        let code = item.item_code.clone();
        let ship = |id: u64, qty: Option<u32>, others: &[ShipmentRecord]| {
            let invoice = qty.map(|q| {
                json!({ "invoiceCode": format!("I{id}"),
                "invoiceItems": [{ "orderItemCode": code.clone(), "quantity": q }] })
            });
            let p = pack(json!({ "orderCode": "450789469", "shipmentId": id, "invoice": invoice }));
            new_shipment(&rec, &p, others, "clickpost", (1, [1, 1, 1]), 0)
        };
        let a = ship(1, Some(2), &[]).unwrap();
        assert!(
            matches!(ship(2, Some(2), std::slice::from_ref(&a)), Err(PackError::Invalid(m)) if m.contains("1 open"))
        );
        let b = ship(2, None, std::slice::from_ref(&a)).unwrap();
        assert_eq!(b.lines[0].quantity, 1, "the second shipment takes what the first left");
        let both = [a.clone(), b];
        assert!(matches!(ship(3, None, &both), Err(PackError::Invalid(m)) if m.contains("nothing left")));
        // The same shipment asked again does not count against itself; a refused one counts for nothing.
        assert_eq!(ship(1, Some(2), &both[..1]).unwrap().lines[0].quantity, 2);
        let mut refused = a;
        refused.state = ShipmentState::Failed("courier said no".into());
        assert_eq!(ship(4, None, &[refused]).unwrap().lines[0].quantity, 3);
    }
}
