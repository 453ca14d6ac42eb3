//! Everything Shopify: webhook signatures, the REST order model, and the GraphQL Admin API client.
//!
//! - [`webhook`]: HMAC signing and constant-time verification.
//! - [`order`]: the one order model (REST JSON, read leniently).
//! - [`queries`]: every GraphQL document channeld sends, and the answers' shapes.
//! - [`graphql`]: the transport with cost-based pacing; [`token`]: where its token comes from.
//! - [`job`]: following the asynchronous jobs some mutations start (`orderCancel`).
//! - [`returns`]: reading returns, `returnProcess` and `returnClose` (CONTRACT.md §9.8).
//! - [`tracking`]: an order's fulfillments, a fulfillment's events, `fulfillmentEventCreate`
//!   (CONTRACT.md §10.3).
//!
//! [`ShopifyClient`] is the typed facade the rest of channeld calls.

pub mod graphql;
pub mod job;
pub mod queries;
pub mod returns;
pub mod token;
pub mod tracking;
pub mod webhook;

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::config::Config;
use crate::flows::inventory::{may_be_a_row, refused_row, PushRow};
use crate::flows::routing::FulfillmentOrderView;
use crate::flows::shopify_order::ShopifyOrder;
use crate::flows::webhooks::Subscription;
use crate::lenient::gid_number;
use crate::remote::CallError;
use graphql::GraphqlClient;
use job::{JobState, JobWait};
use queries::{order_gid, FulfillmentOrdersData};
use token::TokenSource;

/// The most pages of line items read for one order (80 lines each: far beyond any real order);
/// an answer that keeps saying more follow is refused rather than read forever.
const MAX_LINE_PAGES: usize = 1000;

#[derive(Clone)]
pub struct ShopifyClient {
    gql: GraphqlClient,
    /// How long an asynchronous job (order cancellation) is followed before the call is retried.
    job_wait: JobWait,
}

impl ShopifyClient {
    pub fn new(cfg: &Config) -> anyhow::Result<Self> {
        let http = crate::remote::http_client(cfg.shopify.timeout_seconds)?;
        let base = cfg.shopify_base();
        let auth = cfg.shopify_auth().map_err(anyhow::Error::msg)?;
        let token = TokenSource::new(auth, http.clone(), &base);
        Ok(Self { gql: GraphqlClient::new(http, &base, &cfg.shopify.api_version, token), job_wait: JobWait::default() })
    }

    /// The order's fulfillment orders (routing); `None` when Shopify does not know the order.
    pub async fn fulfillment_orders(&self, order_id: u64) -> Result<Option<Vec<FulfillmentOrderView>>, CallError> {
        let data: FulfillmentOrdersData =
            self.gql.run(&queries::FULFILLMENT_ORDERS, json!({ "id": order_gid(order_id) })).await?;
        Ok(data.views())
    }

    /// Sets absolute "available" quantities. Shopify applies all of them or, when it refuses any
    /// row, none (see [`SetQuantities`]).
    pub async fn set_quantities(
        &self,
        rows: &[PushRow],
        key: &str,
        reference: &str,
    ) -> Result<SetQuantities, CallError> {
        let vars = queries::set_quantities_variables(rows, key, reference);
        let data: queries::SetQuantitiesData = match self.gql.run_input(&queries::INVENTORY_SET_QUANTITIES, vars).await
        {
            Ok(data) => data,
            Err(graphql::Failure::Input(message)) => {
                return Ok(SetQuantities::Unnamed(format!("Shopify refused the batch's values: {message}")))
            }
            Err(graphql::Failure::Call(e)) => return Err(e),
        };
        let errors = data.payload.map(|p| p.user_errors).unwrap_or_default();
        let mut refused = Vec::new();
        for e in &errors {
            let described = || format!("{} ({})", e.message, e.code.as_deref().unwrap_or(""));
            match e.field.as_deref().and_then(refused_row) {
                Some(i) if i < rows.len() => refused.push((i, e.message.clone())),
                _ if may_be_a_row(e.field.as_deref()) => {
                    return Ok(SetQuantities::Unnamed(format!("Shopify refused the batch: {}", described())))
                }
                // An error about another part of the request: no row of it can fix that.
                _ => return Err(CallError::Refused { message: format!("Shopify refused the batch: {}", described()) }),
            }
        }
        Ok(if refused.is_empty() { SetQuantities::Applied } else { SetQuantities::Rows(refused) })
    }

    /// Which of these inventory item ids exist on Shopify (at most 250 per call).
    pub async fn existing_inventory_items(&self, ids: &[u64]) -> Result<HashSet<u64>, CallError> {
        let gids: Vec<String> = ids.iter().map(|&i| queries::inventory_item_gid(i)).collect();
        let data: Value = self.gql.run(&queries::INVENTORY_ITEMS, json!({ "ids": gids })).await?;
        Ok(data["nodes"]
            .as_array()
            .map(|nodes| nodes.iter().filter_map(|n| legacy_id(&n["legacyResourceId"])).collect())
            .unwrap_or_default())
    }

    /// One page of product variants: (SKU, inventory item id) pairs and the cursor of the next page.
    pub async fn variants_page(&self, after: Option<&str>) -> Result<(Vec<(String, u64)>, Option<String>), CallError> {
        let data: Value = self.gql.run(&queries::PRODUCT_VARIANTS, json!({ "after": after })).await?;
        let pv = &data["productVariants"];
        let variants = pv["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| {
                        Some((n["sku"].as_str()?.to_string(), legacy_id(&n["inventoryItem"]["legacyResourceId"])?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok((variants, next_cursor(pv)))
    }

    /// One page of orders updated at or after `since`: (id, updatedAt) and the next page's cursor.
    pub async fn orders_updated_since(
        &self,
        since: &str,
        after: Option<&str>,
    ) -> Result<(Vec<(u64, String)>, Option<String>), CallError> {
        let vars = json!({ "query": format!("updated_at:>='{since}'"), "after": after });
        let data: Value = self.gql.run(&queries::ORDERS_UPDATED_SINCE, vars).await?;
        let o = &data["orders"];
        let orders = o["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| Some((legacy_id(&n["legacyResourceId"])?, n["updatedAt"].as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok((orders, next_cursor(o)))
    }

    /// Every location: (id, name, active).
    pub async fn locations(&self) -> Result<Vec<(u64, String, bool)>, CallError> {
        let data: Value = self.gql.run(&queries::LOCATIONS, json!({})).await?;
        Ok(data["locations"]["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| {
                        let name = n["name"].as_str().unwrap_or_default().to_string();
                        Some((legacy_id(&n["legacyResourceId"])?, name, n["isActive"] == true))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn webhook_subscriptions(&self) -> Result<Vec<Subscription>, CallError> {
        let data: Value = self.gql.run(&queries::WEBHOOK_SUBSCRIPTIONS, json!({})).await?;
        Ok(serde_json::from_value(data["webhookSubscriptions"]["nodes"].clone()).unwrap_or_default())
    }

    pub async fn create_webhook(&self, topic: &str, uri: &str) -> Result<(), CallError> {
        let data: Value = self.gql.run(&queries::WEBHOOK_CREATE, json!({ "topic": topic, "uri": uri })).await?;
        user_errors(&data["webhookSubscriptionCreate"])
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<(), CallError> {
        let data: Value = self.gql.run(&queries::WEBHOOK_DELETE, json!({ "id": id })).await?;
        user_errors(&data["webhookSubscriptionDelete"])
    }

    /// Closes (archives) an order. An order already closed counts as done.
    pub async fn close_order(&self, order_id: u64) -> Result<(), CallError> {
        let data: Value =
            self.gql.run(&queries::ORDER_CLOSE, json!({ "input": { "id": order_gid(order_id) } })).await?;
        match user_errors(&data["orderClose"]) {
            Err(CallError::Refused { message }) if message.to_lowercase().contains("closed") => Ok(()),
            other => other,
        }
    }

    /// Cancels the whole order (seller cancellation). An order already cancelled counts as done.
    ///
    /// Shopify cancels asynchronously: the mutation answers with a job. The job is followed until
    /// it is done ([`job::follow`]); one still running after that is a transient failure (the
    /// outbox tries again), and a cancellation that ended `FAILED` is a failure of the call.
    pub async fn cancel_order(&self, order_id: u64, c: &crate::config::Cancellation) -> Result<(), CallError> {
        let vars = json!({
            "orderId": order_gid(order_id),
            "restock": c.restock,
            "notifyCustomer": c.notify_customer,
            "refundMethod": { "originalPaymentMethodsRefund": c.refund },
            "staffNote": "cancelled by the WMS (channeld seller cancellation)",
        });
        let data: Value = self.gql.run(&queries::ORDER_CANCEL, vars).await?;
        let payload = &data["orderCancel"];
        let refused = cancel_errors(&payload["orderCancelUserErrors"]);
        if !refused.is_empty() {
            return cancel_outcome(order_id, CancelEnd::Failed(refused));
        }
        let (job, result) = (&payload["job"], &payload["jobResult"]);
        if let JobState::Finished(end) = cancel_state(job, result) {
            return cancel_outcome(order_id, end);
        }
        let Some(job_id) = job["id"].as_str().or(result["id"].as_str()) else {
            return Ok(()); // no job to follow: Shopify took it synchronously
        };
        let result_id = result["id"].as_str();
        let vars =
            json!({ "jobId": job_id, "resultId": result_id.unwrap_or(job_id), "withResult": result_id.is_some() });
        let what = format!("the cancellation of order {order_id} ({job_id})");
        let end = job::follow(&self.job_wait, &what, || async {
            let data: Value = self.gql.run(&queries::ORDER_CANCEL_JOB, vars.clone()).await?;
            Ok(cancel_state(&data["job"], &data["jobResult"]))
        })
        .await?;
        cancel_outcome(order_id, end)
    }

    /// Sets lines to absolute quantities with an order edit (begin, set quantity, commit). Lines
    /// already at their target are left alone, so running it again changes nothing.
    pub async fn edit_lines(
        &self,
        order_id: u64,
        lines: &[(u64, u32)],
        c: &crate::config::Cancellation,
    ) -> Result<(), CallError> {
        let data: Value = self.gql.run(&queries::ORDER_LINE_QUANTITIES, json!({ "id": order_gid(order_id) })).await?;
        let current: HashMap<u64, u64> = data["order"]["lineItems"]["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| Some((gid_number(n["id"].as_str()?)?, n["currentQuantity"].as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let changes: Vec<(u64, u32)> =
            lines.iter().copied().filter(|(line, target)| current.get(line) != Some(&u64::from(*target))).collect();
        if changes.is_empty() {
            return Ok(());
        }
        let begun: Value = self.gql.run(&queries::ORDER_EDIT_BEGIN, json!({ "id": order_gid(order_id) })).await?;
        user_errors(&begun["orderEditBegin"])?;
        let calc = begun["orderEditBegin"]["calculatedOrder"]["id"]
            .as_str()
            .ok_or_else(|| CallError::Refused { message: "Shopify began no order edit".into() })?
            .to_string();
        for (line, quantity) in changes {
            let vars = json!({ "id": calc, "lineItemId": queries::calculated_line_gid(line), "quantity": quantity, "restock": c.restock });
            let set: Value = self.gql.run(&queries::ORDER_EDIT_SET_QUANTITY, vars).await?;
            user_errors(&set["orderEditSetQuantity"])?;
        }
        let vars = json!({ "id": calc, "notifyCustomer": c.notify_customer, "staffNote": "units cancelled by the WMS (channeld)" });
        let committed: Value = self.gql.run(&queries::ORDER_EDIT_COMMIT, vars).await?;
        user_errors(&committed["orderEditCommit"])
    }

    /// The refund transactions Shopify suggests for these units (line, quantity), as
    /// `OrderTransactionInput`s ready for [`Self::refund`]. When the order was paid in another
    /// currency than the shop's, the amounts are the presentment (customer's) amounts and each
    /// transaction carries that currency as `currency` (Shopify requires `RefundInput.currency`
    /// then; [`Self::refund`] moves it there).
    pub async fn suggested_refund(&self, order_id: u64, units: &[(u64, u32)]) -> Result<Vec<Value>, CallError> {
        let lines: Vec<Value> = units
            .iter()
            .filter(|(_, q)| *q > 0)
            .map(|(l, q)| json!({ "lineItemId": queries::line_gid(*l), "quantity": q, "restockType": "NO_RESTOCK" }))
            .collect();
        let data: Value =
            self.gql.run(&queries::SUGGESTED_REFUND, json!({ "id": order_gid(order_id), "lines": lines })).await?;
        Ok(data["order"]["suggestedRefund"]["suggestedTransactions"]
            .as_array()
            .map(|txs| txs.iter().filter_map(|t| refund_transaction(order_id, t)).collect())
            .unwrap_or_default())
    }

    /// Refunds money with these transactions (from [`Self::suggested_refund`]). `entry_seq` is the
    /// outbox entry making the refund: the `@idempotent` key derives from it, so replaying the same
    /// entry never refunds twice.
    pub async fn refund(
        &self,
        order_id: u64,
        entry_seq: u64,
        transactions: &[Value],
        notify: bool,
    ) -> Result<(), CallError> {
        let currency = transactions.iter().find_map(|t| t["currency"].as_str()).map(str::to_string);
        let transactions: Vec<Value> = transactions
            .iter()
            .map(|t| {
                let mut t = t.clone();
                if let Some(fields) = t.as_object_mut() {
                    fields.remove("currency");
                }
                t
            })
            .collect();
        let mut input = json!({ "orderId": order_gid(order_id), "notify": notify, "transactions": transactions,
                                "note": "refund of units cancelled by the WMS (channeld)" });
        if let Some(currency) = currency {
            input["currency"] = json!(currency);
        }
        let vars = json!({ "input": input, "key": queries::refund_key(order_id, entry_seq) });
        let data: Value = self.gql.run(&queries::REFUND_CREATE, vars).await?;
        user_errors(&data["refundCreate"])
    }

    /// Fulfils these Shopify lines (line id, quantity) with a tracking number, and returns the
    /// fulfillment's id. A fulfillment that already carries this tracking number means it was done
    /// (its id is returned). Units that find no open fulfillment-order line refuse the call,
    /// naming them: nothing is fulfilled partially.
    pub async fn fulfill(
        &self,
        order_id: u64,
        lines: &[(u64, u32)],
        tracking: &Tracking,
    ) -> Result<Option<String>, CallError> {
        let Some((done, fos)) = self.fulfillment_state(order_id, &tracking.number).await? else {
            return Err(CallError::Refused { message: format!("Shopify does not know order {order_id}") });
        };
        if let Some(id) = done {
            return Ok(Some(id).filter(|id| !id.is_empty()));
        }
        let (by_fo, missing) = plan_fulfillment(&fos, lines);
        if !missing.is_empty() {
            let units: Vec<String> = missing
                .iter()
                .map(|(line, n)| format!("line {line}: {n} unit{}", if *n == 1 { "" } else { "s" }))
                .collect();
            return Err(CallError::Refused {
                message: format!(
                    "order {order_id}: no open fulfillment order line for {} of shipment {}; nothing was fulfilled",
                    units.join(", "),
                    tracking.number
                ),
            });
        }
        let mut info = json!({ "number": tracking.number, "company": tracking.company });
        if !tracking.url.is_empty() {
            info["url"] = json!(tracking.url);
        }
        let vars = json!({ "fulfillment": { "notifyCustomer": false, "trackingInfo": info, "lineItemsByFulfillmentOrder": by_fo } });
        let data: Value = self.gql.run(&queries::FULFILLMENT_CREATE, vars).await?;
        let payload = &data["fulfillmentCreate"];
        user_errors(payload)?;
        Ok(payload["fulfillment"]["id"].as_str().map(str::to_string))
    }

    /// The id of the fulfillment that already carries `number` (`Some("")` when Shopify gave none),
    /// and every fulfillment order with all its lines (both connections paged through); `None`
    /// when Shopify does not know the order.
    async fn fulfillment_state(
        &self,
        order_id: u64,
        number: &str,
    ) -> Result<Option<(Option<String>, Vec<Fo>)>, CallError> {
        let (mut fos, mut after, mut done) = (Vec::new(), None::<String>, None);
        loop {
            let vars = json!({ "id": order_gid(order_id), "after": after });
            let data: Value = self.gql.run(&queries::FULFILLMENT_STATE, vars).await?;
            let order = &data["order"];
            if order.is_null() {
                return Ok(None);
            }
            let carrying = order["fulfillments"].as_array().into_iter().flatten().find(|f| {
                f["trackingInfo"].as_array().into_iter().flatten().any(|t| t["number"].as_str() == Some(number))
            });
            if let Some(f) = carrying {
                done.get_or_insert_with(|| f["id"].as_str().unwrap_or_default().to_string());
            }
            let connection = &order["fulfillmentOrders"];
            for node in connection["nodes"].as_array().into_iter().flatten() {
                let mut fo = Fo {
                    id: node["id"].as_str().unwrap_or_default().to_string(),
                    status: node["status"].as_str().unwrap_or_default().to_string(),
                    lines: fo_lines(&node["lineItems"]),
                };
                let mut lines_after = next_cursor(&node["lineItems"]);
                while let Some(cursor) = lines_after {
                    let vars = json!({ "id": fo.id, "after": cursor });
                    let page: Value = self.gql.run(&queries::FULFILLMENT_ORDER_LINES, vars).await?;
                    let items = &page["fulfillmentOrder"]["lineItems"];
                    fo.lines.extend(fo_lines(items));
                    lines_after = next_cursor(items);
                }
                fos.push(fo);
            }
            match next_cursor(connection) {
                Some(cursor) => after = Some(cursor),
                None => return Ok(Some((done, fos))),
            }
        }
    }

    /// The access scopes granted to channeld's token (REST: the only place Shopify lists them).
    pub async fn access_scopes(&self) -> Result<Vec<String>, CallError> {
        let v = self.gql.rest_get("/admin/oauth/access_scopes.json").await?;
        Ok(v["access_scopes"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["handle"].as_str().map(str::to_string)).collect())
            .unwrap_or_default())
    }

    /// The order as Shopify has it now, in the same model webhooks carry, with every line (paged
    /// through [`queries::ORDER_LINES`] past the first page); `None` when unknown.
    pub async fn order(&self, order_id: u64) -> Result<Option<ShopifyOrder>, CallError> {
        let mut data: Value = self.gql.run(&queries::ORDER, json!({ "id": order_gid(order_id) })).await?;
        if data["order"].is_null() {
            return Ok(None);
        }
        for _ in 0..MAX_LINE_PAGES {
            let Some(after) = next_cursor(&data["order"]["lineItems"]) else { break };
            let vars = json!({ "id": order_gid(order_id), "after": after });
            let page: Value = self.gql.run(&queries::ORDER_LINES, vars).await?;
            let lines = &page["order"]["lineItems"];
            let (Some(more), Some(info)) = (lines["nodes"].as_array(), lines.get("pageInfo")) else {
                return Err(CallError::Refused {
                    message: format!("Shopify order {order_id}: a page of its lines could not be read"),
                });
            };
            let lines_so_far = &mut data["order"]["lineItems"];
            if let Some(nodes) = lines_so_far["nodes"].as_array_mut() {
                nodes.extend(more.iter().cloned());
            }
            lines_so_far["pageInfo"] = info.clone();
        }
        queries::order_from_graphql(&data["order"])
            .map(Some)
            .ok_or_else(|| CallError::Refused { message: format!("Shopify order {order_id} could not be read") })
    }
}

/// One suggested transaction as an `OrderTransactionInput` (`None` for nothing to refund): in the
/// presentment currency, tagged with it, when that is not the shop's currency.
fn refund_transaction(order_id: u64, t: &Value) -> Option<Value> {
    let (shop, presentment) = (&t["amountSet"]["shopMoney"], &t["amountSet"]["presentmentMoney"]);
    let foreign = presentment["currencyCode"].as_str().filter(|c| Some(*c) != shop["currencyCode"].as_str());
    let amount = if foreign.is_some() { presentment["amount"].as_str()? } else { shop["amount"].as_str()? };
    if amount.parse::<f64>().ok()? <= 0.0 {
        return None;
    }
    let mut tx = json!({ "orderId": order_gid(order_id), "parentId": t["parentTransaction"]["id"],
                         "amount": amount, "gateway": t["gateway"], "kind": "REFUND" });
    if let Some(currency) = foreign {
        tx["currency"] = json!(currency);
    }
    Some(tx)
}

/// A fulfillment order as far as fulfilling needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fo {
    id: String,
    status: String,
    lines: Vec<FoLine>,
}

/// One line of a fulfillment order: its id, the order line it fulfils, units still to fulfil.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FoLine {
    id: String,
    line: u64,
    remaining: u32,
}

fn fo_lines(connection: &Value) -> Vec<FoLine> {
    connection["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|li| {
            Some(FoLine {
                id: li["id"].as_str()?.to_string(),
                line: li["lineItem"]["id"].as_str().and_then(gid_number)?,
                remaining: li["remainingQuantity"].as_u64().map_or(0, |r| r.min(u64::from(u32::MAX)) as u32),
            })
        })
        .collect()
}

/// Which fulfillment-order lines take the wanted units (order line, quantity), as
/// `lineItemsByFulfillmentOrder`, and the units no open fulfillment-order line could take.
fn plan_fulfillment(fos: &[Fo], lines: &[(u64, u32)]) -> (Vec<Value>, Vec<(u64, u32)>) {
    let mut wanted: Vec<(u64, u32)> = Vec::new();
    for &(line, n) in lines {
        match wanted.iter_mut().find(|(l, _)| *l == line) {
            Some((_, w)) => *w = w.saturating_add(n),
            None => wanted.push((line, n)),
        }
    }
    let mut by_fo = Vec::new();
    for fo in fos.iter().filter(|fo| matches!(fo.status.as_str(), "OPEN" | "IN_PROGRESS" | "SCHEDULED")) {
        let mut items = Vec::new();
        for li in &fo.lines {
            if let Some((_, want)) = wanted.iter_mut().find(|(l, _)| *l == li.line) {
                let take = (*want).min(li.remaining);
                if take > 0 {
                    items.push(json!({ "id": li.id, "quantity": take }));
                    *want -= take;
                }
            }
        }
        if !items.is_empty() {
            by_fo.push(json!({ "fulfillmentOrderId": fo.id, "fulfillmentOrderLineItems": items }));
        }
    }
    (by_fo, wanted.into_iter().filter(|(_, n)| *n > 0).collect())
}

/// How an order cancellation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CancelEnd {
    Succeeded,
    /// Shopify's errors: (code, message).
    Failed(Vec<(String, String)>),
}

/// Where a cancellation stands, from its job and its result (`OrderCancelJobResult`, when Shopify
/// gave one): the result's status rules; without one, a done job is a success (the generic job
/// cannot show a failure).
fn cancel_state(job: &Value, result: &Value) -> JobState<CancelEnd> {
    match result["status"].as_str() {
        Some("SUCCEEDED") => JobState::Finished(CancelEnd::Succeeded),
        Some("FAILED") => {
            let mut errors = cancel_errors(&result["errors"]);
            if errors.is_empty() {
                errors.push((String::new(), "the cancellation job failed without a reason".into()));
            }
            JobState::Finished(CancelEnd::Failed(errors))
        }
        Some(_) => JobState::Running,
        None if job["done"] == true => JobState::Finished(CancelEnd::Succeeded),
        None => JobState::Running,
    }
}

fn cancel_errors(errors: &Value) -> Vec<(String, String)> {
    errors
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| {
                    Some((e["code"].as_str().unwrap_or("").to_string(), e["message"].as_str()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The call's result for a cancellation's end. "Already cancelled" is success; a failure that is
/// only Shopify's own internal error may be retried; any other failure is a refusal.
fn cancel_outcome(order_id: u64, end: CancelEnd) -> Result<(), CallError> {
    let CancelEnd::Failed(errors) = end else { return Ok(()) };
    if errors.iter().all(|(_, m)| m.to_lowercase().contains("already")) {
        return Ok(());
    }
    let described: Vec<String> =
        errors.iter().map(|(code, m)| if code.is_empty() { m.clone() } else { format!("{m} ({code})") }).collect();
    let message = format!("Shopify could not cancel order {order_id}: {}", described.join("; "));
    if errors.iter().all(|(code, _)| code == "INTERNAL_ERROR") {
        Err(CallError::transient(message))
    } else {
        Err(CallError::Refused { message })
    }
}

/// `UnsignedInt64` arrives as a string; accept a number too.
fn legacy_id(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The cursor of the next page of a connection, when there is one.
fn next_cursor(connection: &Value) -> Option<String> {
    let info = &connection["pageInfo"];
    (info["hasNextPage"] == true).then(|| info["endCursor"].as_str().map(str::to_string)).flatten()
}

/// A mutation payload's `userErrors` as a refusal.
fn user_errors(payload: &Value) -> Result<(), CallError> {
    match payload["userErrors"].as_array() {
        Some(errors) if !errors.is_empty() => {
            let msgs: Vec<&str> = errors.iter().filter_map(|e| e["message"].as_str()).collect();
            Err(CallError::Refused { message: format!("Shopify refused: {}", msgs.join("; ")) })
        }
        _ => Ok(()),
    }
}

/// What Shopify did with one `inventorySetQuantities` batch. A refusal of any row applies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetQuantities {
    Applied,
    /// Refused, naming these rows (index in the batch, Shopify's message).
    Rows(Vec<(usize, String)>),
    /// Refused for something in its rows without saying which (a value its type cannot take, a
    /// `userError` without a row index).
    Unnamed(String),
}

/// A shipment's tracking details as Shopify records them on a fulfillment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    pub number: String,
    pub company: String,
    pub url: String,
}

/// Every GraphQL document the code can send, with example variables: the schema test validates
/// each against the vendored 2026-10 schema.
pub fn documents() -> Vec<(&'static queries::Document, Value)> {
    queries::documents().into_iter().chain(returns::documents()).chain(tracking::documents()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellation_ends_as_its_result_says() {
        let running = json!({ "id": "gid://shopify/Job/1", "done": false });
        let done = json!({ "id": "gid://shopify/Job/1", "done": true });
        assert_eq!(cancel_state(&running, &Value::Null), JobState::Running);
        assert_eq!(cancel_state(&done, &Value::Null), JobState::Finished(CancelEnd::Succeeded));
        assert_eq!(cancel_state(&done, &json!({ "status": "STARTED" })), JobState::Running);
        let failed = json!({ "status": "FAILED", "errors": [{ "code": "INVALID", "message": "has returns" }] });
        let JobState::Finished(end) = cancel_state(&done, &failed) else { panic!("finished") };
        match cancel_outcome(7, end) {
            Err(CallError::Refused { message }) => assert!(message.contains("has returns (INVALID)"), "{message}"),
            other => panic!("{other:?}"),
        }
        let internal = json!({ "status": "FAILED", "errors": [{ "code": "INTERNAL_ERROR", "message": "oops" }] });
        let JobState::Finished(end) = cancel_state(&done, &internal) else { panic!("finished") };
        assert!(matches!(cancel_outcome(7, end), Err(CallError::Transient { .. })));
        let already = CancelEnd::Failed(vec![(String::new(), "Order has already been cancelled".into())]);
        assert_eq!(cancel_outcome(7, already), Ok(()));
    }

    fn fo(id: &str, status: &str, lines: &[(&str, u64, u32)]) -> Fo {
        Fo {
            id: id.into(),
            status: status.into(),
            lines: lines.iter().map(|(i, l, r)| FoLine { id: (*i).into(), line: *l, remaining: *r }).collect(),
        }
    }

    #[test]
    fn units_spread_over_open_fulfillment_orders_and_the_rest_is_named() {
        let fos = [
            fo("FO/1", "CLOSED", &[("FOL/1", 10, 5)]),
            fo("FO/2", "OPEN", &[("FOL/2", 10, 1), ("FOL/3", 11, 0)]),
            fo("FO/3", "IN_PROGRESS", &[("FOL/4", 10, 4)]),
        ];
        let (by_fo, missing) = plan_fulfillment(&fos, &[(10, 2), (10, 1), (11, 1), (12, 2)]);
        assert_eq!(
            by_fo,
            vec![
                json!({ "fulfillmentOrderId": "FO/2", "fulfillmentOrderLineItems": [{ "id": "FOL/2", "quantity": 1 }] }),
                json!({ "fulfillmentOrderId": "FO/3", "fulfillmentOrderLineItems": [{ "id": "FOL/4", "quantity": 2 }] }),
            ]
        );
        assert_eq!(missing, vec![(11, 1), (12, 2)]);
    }
}
