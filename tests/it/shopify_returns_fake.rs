//! The returns part of the fake Shopify Admin API (CONTRACT.md §9.8): returns with their line
//! items, reverse fulfillment orders and reverse deliveries, the fulfillments that place each
//! unit, a suggested refund per unit, `returnProcess` that applies dispositions (restocks counted)
//! and refunds and refuses what Shopify refuses (more than is unprocessed, a restock without a
//! location, a refund above what is suggested, a return that is not open), and `returnClose`.
//! Served through `AdminShopify`, which hands it the operations it does not know.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::sync::Notify;

/// A return on the fake shop.
#[derive(Debug, Clone)]
pub struct FakeReturn {
    pub id: u64,
    pub name: String,
    /// OPEN, CLOSED, CANCELED.
    pub status: String,
    pub order_id: u64,
    pub lines: Vec<FakeReturnLine>,
    pub exchange_lines: usize,
    pub tracking: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct FakeReturnLine {
    pub id: u64,
    pub quantity: u32,
    pub processed: u32,
    pub reason: String,
    pub note: String,
    pub fulfillment_line: u64,
    pub line_item: u64,
    pub sku: String,
}

impl FakeReturnLine {
    /// A line of `quantity` units of order line `line_item`, shipped as fulfillment line
    /// `fulfillment_line`; its reverse fulfillment order line is `900000 + id`.
    pub fn new(id: u64, quantity: u32, fulfillment_line: u64, line_item: u64, sku: &str) -> Self {
        Self {
            id,
            quantity,
            processed: 0,
            reason: "Size too small".into(),
            note: String::new(),
            fulfillment_line,
            line_item,
            sku: sku.into(),
        }
    }
}

/// What `returnProcess` did, for tests to count.
#[derive(Debug, Clone, Default)]
pub struct Processed {
    /// (return line item, quantity, disposition type, location gid) per disposition applied.
    pub dispositions: Vec<(u64, u32, String, String)>,
    /// (parent transaction, amount, currency) per refund transaction made.
    pub refunds: Vec<(String, String, String)>,
}

/// Per order: fulfillments as (Shopify location, fulfillment line items).
type Shipped = HashMap<u64, Vec<(u64, Vec<u64>)>>;

#[derive(Default)]
pub struct ReturnsState {
    pub returns: Mutex<HashMap<u64, FakeReturn>>,
    pub fulfillments: Mutex<Shipped>,
    /// The refund Shopify suggests per PASS unit: (amount, currency).
    pub unit_refund: Mutex<(String, String)>,
    pub processed: Mutex<Processed>,
    /// Every `returnProcess` input received (applied or refused).
    pub process_calls: Mutex<Vec<Value>>,
    pub closes: Mutex<Vec<u64>>,
    /// Refuse every `returnProcess` with this message (a userError), until cleared.
    pub refuse_process: Mutex<Option<String>>,
    /// Apply the next `returnProcess`, then wait for `release` before answering (a test kills the
    /// daemon meanwhile: Shopify processed it, channeld never heard).
    pub hold_next_process: Mutex<bool>,
    pub held: Notify,
    pub release: Notify,
}

impl ReturnsState {
    pub fn new() -> Self {
        let s = Self::default();
        *s.unit_refund.lock().unwrap() = ("100.00".into(), "INR".into());
        s
    }

    pub fn put(&self, r: FakeReturn) {
        self.returns.lock().unwrap().insert(r.id, r);
    }

    pub fn ship(&self, order_id: u64, location: u64, fulfillment_lines: &[u64]) {
        self.fulfillments.lock().unwrap().entry(order_id).or_default().push((location, fulfillment_lines.to_vec()));
    }

    pub fn get(&self, id: u64) -> FakeReturn {
        self.returns.lock().unwrap()[&id].clone()
    }
}

fn number(gid: &Value) -> u64 {
    gid.as_str().and_then(|g| g.rsplit('/').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn read(r: &FakeReturn) -> Value {
    let lines: Vec<Value> = r
        .lines
        .iter()
        .map(|l| {
            json!({ "__typename": "ReturnLineItem", "id": format!("gid://shopify/ReturnLineItem/{}", l.id),
                "quantity": l.quantity, "processedQuantity": l.processed, "unprocessedQuantity": l.quantity - l.processed,
                "returnReasonNote": l.note, "returnReasonDefinition": { "name": l.reason }, "returnReason": "OTHER",
                "fulfillmentLineItem": { "id": format!("gid://shopify/FulfillmentLineItem/{}", l.fulfillment_line),
                    "lineItem": { "id": format!("gid://shopify/LineItem/{}", l.line_item), "sku": l.sku } } })
        })
        .collect();
    let rfo_lines: Vec<Value> = r
        .lines
        .iter()
        .map(|l| {
            json!({ "id": format!("gid://shopify/ReverseFulfillmentOrderLineItem/{}", 900000 + l.id),
                "fulfillmentLineItem": { "id": format!("gid://shopify/FulfillmentLineItem/{}", l.fulfillment_line) } })
        })
        .collect();
    let deliveries: Vec<Value> = r
        .tracking
        .iter()
        .map(|(n, c)| json!({ "deliverable": { "tracking": { "number": n, "carrierName": c } } }))
        .collect();
    let exchanges: Vec<Value> =
        (0..r.exchange_lines).map(|i| json!({ "id": format!("gid://shopify/ExchangeLineItem/{i}") })).collect();
    json!({ "id": format!("gid://shopify/Return/{}", r.id), "name": r.name, "status": r.status,
        "createdAt": "2026-11-30T10:00:00Z", "order": { "id": format!("gid://shopify/Order/{}", r.order_id) },
        "returnLineItems": { "nodes": lines }, "exchangeLineItems": { "nodes": exchanges },
        "reverseFulfillmentOrders": { "nodes": [ { "lineItems": { "nodes": rfo_lines },
            "reverseDeliveries": { "nodes": deliveries } } ] } })
}

fn refused(op: &str, message: &str) -> Value {
    json!({ op: { "return": null, "userErrors": [{ "field": ["input"], "message": message, "code": "INVALID" }] } })
}

/// Answers a returns operation (`None`: not one of them).
pub async fn handle(state: &ReturnsState, op: &str, vars: &Value) -> Option<Value> {
    Some(match op {
        "query ReturnRead" => {
            let r = state.returns.lock().unwrap().get(&number(&vars["id"])).cloned();
            json!({ "return": r.as_ref().map(read) })
        }
        "query OrderFulfillmentOrigins" => {
            let f = state.fulfillments.lock().unwrap().get(&number(&vars["id"])).cloned().unwrap_or_default();
            let fulfillments: Vec<Value> = f
                .iter()
                .map(|(loc, lines)| {
                    let nodes: Vec<Value> =
                        lines.iter().map(|l| json!({ "id": format!("gid://shopify/FulfillmentLineItem/{l}") })).collect();
                    json!({ "location": { "id": format!("gid://shopify/Location/{loc}") }, "fulfillmentLineItems": { "nodes": nodes } })
                })
                .collect();
            json!({ "order": { "fulfillments": fulfillments } })
        }
        "query ReturnSuggestedOutcome" => {
            let units: u64 = vars["returnLineItems"].as_array()?.iter().filter_map(|l| l["quantity"].as_u64()).sum();
            let (amount, currency) = state.unit_refund.lock().unwrap().clone();
            let total = format!("{:.2}", amount.parse::<f64>().unwrap_or(0.0) * units as f64);
            json!({ "return": { "suggestedFinancialOutcome": { "financialTransfer": { "suggestedTransactions": [
                { "parentTransaction": { "id": "gid://shopify/OrderTransaction/7" },
                  "amountSet": { "presentmentMoney": { "amount": total, "currencyCode": currency } } } ] } } } })
        }
        "mutation ReturnProcess" => return Some(process(state, &vars["input"]).await),
        "mutation ReturnClose" => {
            let id = number(&vars["id"]);
            let mut returns = state.returns.lock().unwrap();
            let Some(r) = returns.get_mut(&id) else { return Some(refused("returnClose", "Return not found")) };
            if r.status == "CLOSED" {
                return Some(refused("returnClose", "Return is already closed"));
            }
            r.status = "CLOSED".into();
            state.closes.lock().unwrap().push(id);
            json!({ "returnClose": { "return": { "id": vars["id"], "status": "CLOSED" }, "userErrors": [] } })
        }
        "query OrderReturns" => {
            let order = number(&vars["id"]);
            let nodes: Vec<Value> = state
                .returns
                .lock()
                .unwrap()
                .values()
                .filter(|r| r.order_id == order)
                .map(|r| json!({ "id": format!("gid://shopify/Return/{}", r.id), "status": r.status }))
                .collect();
            json!({ "order": { "returns": { "nodes": nodes } } })
        }
        _ => return None,
    })
}

/// `returnProcess`: checks the whole input like Shopify, then applies it.
async fn process(state: &ReturnsState, input: &Value) -> Value {
    state.process_calls.lock().unwrap().push(input.clone());
    if let Some(message) = state.refuse_process.lock().unwrap().clone() {
        return refused("returnProcess", &message);
    }
    let applied = apply(state, input);
    if let Err(message) = applied {
        return refused("returnProcess", &message);
    }
    let hold = std::mem::take(&mut *state.hold_next_process.lock().unwrap());
    if hold {
        state.held.notify_one();
        state.release.notified().await;
    }
    let r = state.get(number(&input["returnId"]));
    let lines: Vec<Value> = r
        .lines
        .iter()
        .map(|l| json!({ "id": format!("gid://shopify/ReturnLineItem/{}", l.id), "processedQuantity": l.processed, "unprocessedQuantity": l.quantity - l.processed }))
        .collect();
    json!({ "returnProcess": { "return": { "id": input["returnId"], "status": r.status, "returnLineItems": { "nodes": lines } }, "userErrors": [] } })
}

fn apply(state: &ReturnsState, input: &Value) -> Result<(), String> {
    let id = number(&input["returnId"]);
    let mut returns = state.returns.lock().unwrap();
    let r = returns.get_mut(&id).ok_or("Return not found")?;
    if r.status != "OPEN" {
        return Err(format!("Return is {}", r.status.to_lowercase()));
    }
    let items = input["returnLineItems"].as_array().cloned().unwrap_or_default();
    let mut dispositions = Vec::new();
    for item in &items {
        let line_id = number(&item["id"]);
        let qty = item["quantity"].as_u64().unwrap_or(0) as u32;
        let line = r.lines.iter().find(|l| l.id == line_id).ok_or(format!("Return line item {line_id} not found"))?;
        if qty == 0 || qty > line.quantity - line.processed {
            return Err(format!("Quantity {qty} exceeds the unprocessed quantity of return line item {line_id}"));
        }
        let mut sum = 0;
        for d in item["dispositions"].as_array().into_iter().flatten() {
            let kind = d["dispositionType"].as_str().unwrap_or_default().to_string();
            let location = d["locationId"].as_str().unwrap_or_default().to_string();
            if kind == "RESTOCKED" && location.is_empty() {
                return Err("A location is required to restock".into());
            }
            if number(&d["reverseFulfillmentOrderLineItemId"]) != 900000 + line_id {
                return Err("The reverse fulfillment order line item does not belong to the return line item".into());
            }
            let n = d["quantity"].as_u64().unwrap_or(0) as u32;
            sum += n;
            dispositions.push((line_id, n, kind, location));
        }
        if item.get("dispositions").is_some() && sum != qty {
            return Err("Disposition quantities must add up to the quantity processed".into());
        }
    }
    let suggested: f64 = state.unit_refund.lock().unwrap().0.parse().unwrap_or(0.0)
        * items.iter().filter_map(|i| i["quantity"].as_u64()).sum::<u64>() as f64;
    let refunds: Vec<(String, String, String)> = input["financialTransfer"]["issueRefund"]["orderTransactions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let money = &t["transactionAmount"];
            (
                t["parentId"].as_str().unwrap_or_default().to_string(),
                money["amount"].as_str().unwrap_or_default().to_string(),
                money["currencyCode"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let asked: f64 = refunds.iter().map(|(_, a, _)| a.parse::<f64>().unwrap_or(0.0)).sum();
    if asked > suggested + 0.001 {
        return Err(format!("The refund of {asked:.2} exceeds the refundable amount {suggested:.2}"));
    }
    for item in &items {
        let line_id = number(&item["id"]);
        let qty = item["quantity"].as_u64().unwrap_or(0) as u32;
        if let Some(line) = r.lines.iter_mut().find(|l| l.id == line_id) {
            line.processed += qty;
        }
    }
    let mut done = state.processed.lock().unwrap();
    done.dispositions.extend(dispositions);
    done.refunds.extend(refunds);
    Ok(())
}
