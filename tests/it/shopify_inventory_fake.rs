//! A stateful fake of Shopify's GraphQL Admin API for inventory: `inventorySetQuantities` (with
//! per-row refusals and a cost budget that answers `THROTTLED`), `nodes` for inventory items, and
//! `productVariants`. Shared by the integration tests and the inventory benchmark.
//!
//! Also home of [`missing_idempotent`], which every Shopify fake runs first: like Shopify since
//! 2026-04, a mutation that requires `@idempotent(key:)` is refused without one.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use apollo_compiler::ast::{Definition, Document, OperationType, Selection, Value as GqlValue};
use axum::extract::State;
use axum::Json;
use channeld::shopify::queries::IDEMPOTENT_REQUIRED;
use serde_json::{json, Value};

/// The cost bucket the fake enforces.
#[derive(Debug, Clone)]
pub struct Budget {
    pub maximum: f64,
    pub restore_rate: f64,
    pub available: f64,
    pub at: Instant,
    /// Points one `inventorySetQuantities` costs.
    pub mutation_cost: f64,
}

impl Budget {
    pub fn new(maximum: f64, restore_rate: f64, mutation_cost: f64) -> Self {
        Self { maximum, restore_rate, available: maximum, at: Instant::now(), mutation_cost }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.available =
            (self.available + self.restore_rate * now.duration_since(self.at).as_secs_f64()).min(self.maximum);
        self.at = now;
    }

    fn status(&self) -> Value {
        json!({ "maximumAvailable": self.maximum, "currentlyAvailable": self.available.floor(), "restoreRate": self.restore_rate })
    }
}

/// One `inventorySetQuantities` the fake received.
#[derive(Debug, Clone)]
pub struct SetCall {
    pub key: String,
    pub rows: Vec<(u64, u64, i64)>,
    pub applied: bool,
    pub reason: String,
    pub name: String,
    pub reference: String,
    pub change_from_all_null: bool,
}

#[derive(Default)]
pub struct ShopState {
    /// Inventory items that exist.
    pub items: Mutex<HashSet<u64>>,
    /// Items whose rows Shopify refuses (e.g. an item deleted since the listing was made).
    pub refuse: Mutex<HashSet<u64>>,
    /// Items whose rows make Shopify refuse the batch with a `userError` naming no row.
    pub refuse_unnamed: Mutex<HashSet<u64>>,
    /// (item, location) → available.
    pub levels: Mutex<HashMap<(u64, u64), i64>>,
    pub calls: Mutex<Vec<SetCall>>,
    pub throttled: Mutex<u64>,
    pub budget: Mutex<Option<Budget>>,
    /// (sku, item) pairs served by `productVariants`.
    pub variants: Mutex<Vec<(String, u64)>>,
}

#[derive(Clone)]
pub struct InventoryShopify {
    pub addr: SocketAddr,
    pub state: Arc<ShopState>,
}

impl InventoryShopify {
    pub async fn start() -> Self {
        let state = Arc::new(ShopState::default());
        let app = axum::Router::new().fallback(graphql).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_items(&self, ids: impl IntoIterator<Item = u64>) {
        self.state.items.lock().unwrap().extend(ids);
    }

    pub fn calls(&self) -> Vec<SetCall> {
        self.state.calls.lock().unwrap().clone()
    }

    pub fn applied_calls(&self) -> Vec<SetCall> {
        self.calls().into_iter().filter(|c| c.applied).collect()
    }

    pub fn level(&self, item: u64, location: u64) -> Option<i64> {
        self.state.levels.lock().unwrap().get(&(item, location)).copied()
    }

    pub fn throttled(&self) -> u64 {
        *self.state.throttled.lock().unwrap()
    }
}

fn gid_num(v: &Value) -> u64 {
    v.as_str().and_then(|s| s.rsplit('/').next()).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Shopify's answer to a request calling a mutation of [`IDEMPOTENT_REQUIRED`] without
/// `@idempotent(key:)`, or with an empty key (top-level `errors`, nothing executed); `None` when the
/// request may run. The document is parsed for real: the directive must sit on that field.
pub fn missing_idempotent(query: &str, variables: &Value) -> Option<Value> {
    let doc = Document::parse(query, "request.graphql").ok()?;
    let mut errors = Vec::new();
    for def in &doc.definitions {
        let Definition::OperationDefinition(op) = def else { continue };
        if op.operation_type != OperationType::Mutation {
            continue;
        }
        for selection in &op.selection_set {
            let Selection::Field(field) = selection else { continue };
            if !IDEMPOTENT_REQUIRED.contains(&field.name.as_str()) {
                continue;
            }
            let directive = field.directives.get("idempotent");
            let key = directive.and_then(|d| d.specified_argument_by_name("key")).and_then(|v| match v.as_ref() {
                GqlValue::String(s) => Some(s.clone()),
                GqlValue::Variable(name) => variables[name.as_str()].as_str().map(str::to_string),
                _ => None,
            });
            let message = match (directive, key) {
                (_, Some(k)) if !k.trim().is_empty() => continue,
                (Some(_), _) => "The idempotency key cannot be an empty string or whitespace only.",
                (None, _) => "The @idempotent directive is required for this mutation but was not provided",
            };
            let at = field.line_column_range(&doc.sources).map(|r| r.start);
            errors.push(json!({
                "message": message,
                "locations": at.map(|a| json!([{ "line": a.line, "column": a.column }])).unwrap_or(json!([])),
                "path": [field.alias.as_ref().unwrap_or(&field.name).as_str()],
                "extensions": { "code": "BAD_REQUEST" },
            }));
        }
    }
    (!errors.is_empty()).then(|| json!({ "errors": errors }))
}

async fn graphql(State(state): State<Arc<ShopState>>, Json(req): Json<Value>) -> Json<Value> {
    let query = req["query"].as_str().unwrap_or_default();
    let vars = &req["variables"];
    if let Some(refused) = missing_idempotent(query, vars) {
        return Json(refused);
    }
    if query.contains("inventorySetQuantities") {
        return Json(set_quantities(&state, vars));
    }
    let extensions = json!({ "cost": { "requestedQueryCost": 1, "throttleStatus":
        { "maximumAvailable": 2000.0, "currentlyAvailable": 2000, "restoreRate": 100.0 } } });
    if query.contains("nodes(ids") {
        let items = state.items.lock().unwrap();
        let nodes: Vec<Value> = vars["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| {
                let n = gid_num(id);
                if items.contains(&n) {
                    json!({ "legacyResourceId": n.to_string() })
                } else {
                    Value::Null
                }
            })
            .collect();
        return Json(json!({ "data": { "nodes": nodes }, "extensions": extensions }));
    }
    if query.contains("productVariants") {
        let nodes: Vec<Value> = state
            .variants
            .lock()
            .unwrap()
            .iter()
            .map(|(sku, item)| json!({ "sku": sku, "inventoryItem": { "legacyResourceId": item.to_string() } }))
            .collect();
        return Json(json!({ "data": { "productVariants": { "nodes": nodes,
            "pageInfo": { "hasNextPage": false, "endCursor": null } } }, "extensions": extensions }));
    }
    Json(json!({ "errors": [{ "message": "the fake does not know this query" }] }))
}

fn set_quantities(state: &ShopState, vars: &Value) -> Value {
    let mut budget = state.budget.lock().unwrap();
    let cost_ext = |b: &Option<Budget>| match b {
        Some(b) => json!({ "cost": { "requestedQueryCost": b.mutation_cost, "throttleStatus": b.status() } }),
        None => json!({ "cost": { "requestedQueryCost": 10, "throttleStatus":
            { "maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0 } } }),
    };
    if let Some(b) = budget.as_mut() {
        b.refill();
        if b.available < b.mutation_cost {
            *state.throttled.lock().unwrap() += 1;
            return json!({ "errors": [{ "message": "Throttled", "extensions": { "code": "THROTTLED" } }], "extensions": cost_ext(&budget) });
        }
        b.available -= b.mutation_cost;
    }
    let input = &vars["input"];
    let quantities = input["quantities"].as_array().cloned().unwrap_or_default();
    let rows: Vec<(u64, u64, i64)> = quantities
        .iter()
        .map(|q| (gid_num(&q["inventoryItemId"]), gid_num(&q["locationId"]), q["quantity"].as_i64().unwrap_or(-1)))
        .collect();
    // Like Shopify, a quantity GraphQL's `Int` cannot take refuses the request before it runs.
    if let Some((i, q)) =
        quantities.iter().enumerate().find(|(_, q)| q["quantity"].as_i64().is_none_or(|n| i32::try_from(n).is_err()))
    {
        state.calls.lock().unwrap().push(SetCall {
            key: vars["key"].as_str().unwrap_or_default().to_string(),
            rows: rows.clone(),
            applied: false,
            reason: input["reason"].as_str().unwrap_or_default().to_string(),
            name: input["name"].as_str().unwrap_or_default().to_string(),
            reference: input["referenceDocumentUri"].as_str().unwrap_or_default().to_string(),
            change_from_all_null: false,
        });
        let explanation = format!("Could not coerce value {} to Int", q["quantity"]);
        return json!({ "errors": [{
            "message": format!("Variable $input of type InventorySetQuantitiesInput! was provided invalid value for quantities.{i}.quantity ({explanation})"),
            "locations": [{ "line": 1, "column": 33 }],
            "extensions": { "value": input, "problems": [{ "path": ["quantities", i, "quantity"], "explanation": explanation }] } }] });
    }
    let refuse = state.refuse.lock().unwrap();
    let unnamed = state.refuse_unnamed.lock().unwrap();
    let unnamed_errors = rows.iter().filter(|(item, _, _)| unnamed.contains(item)).map(|_| {
        json!({ "field": null, "message": "An inventory item could not be updated.", "code": "INVALID_INVENTORY_ITEM" })
    });
    let user_errors: Vec<Value> = rows
        .iter()
        .enumerate()
        .filter(|(_, (item, _, _))| refuse.contains(item))
        .map(|(i, _)| {
            json!({ "field": ["input", "quantities", i.to_string(), "inventoryItemId"],
            "message": "The specified inventory item could not be found.", "code": "INVALID_INVENTORY_ITEM" })
        })
        .chain(unnamed_errors)
        .collect();
    // Like Shopify, a mutation with user errors applies nothing.
    let applied = user_errors.is_empty();
    if applied {
        let mut levels = state.levels.lock().unwrap();
        for (item, loc, q) in &rows {
            levels.insert((*item, *loc), *q);
        }
    }
    state.calls.lock().unwrap().push(SetCall {
        key: vars["key"].as_str().unwrap_or_default().to_string(),
        rows,
        applied,
        reason: input["reason"].as_str().unwrap_or_default().to_string(),
        name: input["name"].as_str().unwrap_or_default().to_string(),
        reference: input["referenceDocumentUri"].as_str().unwrap_or_default().to_string(),
        change_from_all_null: quantities.iter().all(|q| q.get("changeFromQuantity") == Some(&Value::Null)),
    });
    json!({ "data": { "inventorySetQuantities": {
        "inventoryAdjustmentGroup": if applied { json!({ "id": "gid://shopify/InventoryAdjustmentGroup/1" }) } else { Value::Null },
        "userErrors": user_errors } }, "extensions": cost_ext(&budget) })
}
