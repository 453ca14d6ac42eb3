//! Returns on Shopify (CONTRACT.md §9.8): reading a return and where its units shipped from, the
//! refund Shopify suggests for some of its units, `returnProcess` and `returnClose`, and an order's
//! returns (reconciliation). Shopify documents no idempotency key for `returnProcess` or
//! `returnClose`: the caller re-reads the return before each call and keys its steps itself.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::queries::{order_gid, Document};
use super::ShopifyClient;
use crate::flows::returns::{ReturnLine, ReverseLine, ShopifyReturn};
use crate::lenient::gid_number;
use crate::remote::CallError;

pub const RETURN_READ: Document = Document {
    name: "ReturnRead",
    cost: 60,
    text: r#"query ReturnRead($id: ID!) {
  return(id: $id) {
    id name status createdAt
    order { id }
    returnLineItems(first: 250) {
      nodes {
        __typename id quantity processedQuantity unprocessedQuantity returnReasonNote
        returnReasonDefinition { name }
        returnReason
        ... on ReturnLineItem { fulfillmentLineItem { id lineItem { id sku } } }
      }
    }
    exchangeLineItems(first: 50) { nodes { id } }
    reverseFulfillmentOrders(first: 20) {
      nodes {
        lineItems(first: 250) { nodes { id fulfillmentLineItem { id } } }
        reverseDeliveries(first: 10) {
          nodes { deliverable { ... on ReverseDeliveryShippingDeliverable { tracking { number carrierName } } } }
        }
      }
    }
  }
}"#,
};

pub const ORDER_FULFILLMENT_ORIGINS: Document = Document {
    name: "OrderFulfillmentOrigins",
    cost: 40,
    text: r#"query OrderFulfillmentOrigins($id: ID!) {
  order(id: $id) {
    fulfillments(first: 250) {
      location { id }
      fulfillmentLineItems(first: 250) { nodes { id } }
    }
  }
}"#,
};

pub const RETURN_SUGGESTED_OUTCOME: Document = Document {
    name: "ReturnSuggestedOutcome",
    cost: 20,
    text: r#"query ReturnSuggestedOutcome($id: ID!, $returnLineItems: [SuggestedOutcomeReturnLineItemInput!]!) {
  return(id: $id) {
    suggestedFinancialOutcome(returnLineItems: $returnLineItems, exchangeLineItems: []) {
      financialTransfer {
        ... on RefundReturnOutcome {
          suggestedTransactions {
            parentTransaction { id }
            amountSet { presentmentMoney { amount currencyCode } }
          }
        }
      }
    }
  }
}"#,
};

pub const RETURN_PROCESS: Document = Document {
    name: "ReturnProcess",
    cost: 20,
    text: r#"mutation ReturnProcess($input: ReturnProcessInput!) {
  returnProcess(input: $input) {
    return { id status returnLineItems(first: 250) { nodes { id processedQuantity unprocessedQuantity } } }
    userErrors { field message code }
  }
}"#,
};

pub const RETURN_CLOSE: Document = Document {
    name: "ReturnClose",
    cost: 10,
    text: r#"mutation ReturnClose($id: ID!) {
  returnClose(id: $id) {
    return { id status }
    userErrors { field message code }
  }
}"#,
};

pub const ORDER_RETURNS: Document = Document {
    name: "OrderReturns",
    cost: 10,
    text: r#"query OrderReturns($id: ID!) {
  order(id: $id) {
    returns(first: 50) { nodes { id status } }
  }
}"#,
};

/// Every document of this file with example variables (validated against the schema by a test).
pub fn documents() -> Vec<(&'static Document, Value)> {
    vec![
        (&RETURN_READ, json!({ "id": return_gid(945000954) })),
        (&ORDER_FULFILLMENT_ORIGINS, json!({ "id": order_gid(450789469) })),
        (
            &RETURN_SUGGESTED_OUTCOME,
            json!({ "id": return_gid(1), "returnLineItems": [{ "id": gid("ReturnLineItem", 2), "quantity": 1 }] }),
        ),
        (
            &RETURN_PROCESS,
            process_variables(1, &[example_line()], &[example_refund()], "gid://shopify/Location/1", false),
        ),
        (&RETURN_CLOSE, json!({ "id": return_gid(1) })),
        (&ORDER_RETURNS, json!({ "id": order_gid(1) })),
    ]
}

fn example_line() -> crate::flows::returns::ProcessLine {
    crate::flows::returns::ProcessLine {
        return_line_id: 2,
        quantity: 2,
        dispositions: vec![(3, 1, true), (3, 1, false)],
        refund: 1,
    }
}

fn example_refund() -> Refund {
    Refund { parent_gid: "gid://shopify/OrderTransaction/1".into(), amount: "10.00".into(), currency: "INR".into() }
}

fn gid(kind: &str, id: u64) -> String {
    format!("gid://shopify/{kind}/{id}")
}

pub fn return_gid(id: u64) -> String {
    gid("Return", id)
}

/// One refund transaction Shopify suggests: to `parent_gid`, `amount` in the order's presentment
/// `currency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub parent_gid: String,
    pub amount: String,
    pub currency: String,
}

/// What `returnProcess` left on Shopify: the return's status and, per return line item, how many
/// units are processed and how many are left.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Processed {
    pub status: String,
    pub lines: Vec<(u64, u32, u32)>,
}

impl ShopifyClient {
    /// The return as Shopify shows it now; `None` when Shopify does not know it.
    pub async fn read_return(&self, return_id: u64) -> Result<Option<ShopifyReturn>, CallError> {
        let data: Value = self.gql.run(&RETURN_READ, json!({ "id": return_gid(return_id) })).await?;
        Ok(read_return_answer(&data["return"]))
    }

    /// Where each fulfillment line item of the order shipped from: fulfillment line item id →
    /// Shopify location id.
    pub async fn shipped_from(&self, order_id: u64) -> Result<HashMap<u64, u64>, CallError> {
        let data: Value = self.gql.run(&ORDER_FULFILLMENT_ORIGINS, json!({ "id": order_gid(order_id) })).await?;
        let mut from = HashMap::new();
        for f in data["order"]["fulfillments"].as_array().into_iter().flatten() {
            let Some(location) = f["location"]["id"].as_str().and_then(gid_number) else { continue };
            for item in nodes(&f["fulfillmentLineItems"]) {
                if let Some(id) = item["id"].as_str().and_then(gid_number) {
                    from.insert(id, location);
                }
            }
        }
        Ok(from)
    }

    /// The refund Shopify suggests for these units of the return (`(return line item, units)`), to
    /// the original payment methods; empty when it suggests none (an exchange owing money, no
    /// transaction to refund against).
    pub async fn suggested_return_refund(
        &self,
        return_id: u64,
        units: &[(u64, u32)],
    ) -> Result<Vec<Refund>, CallError> {
        let lines: Vec<Value> = units
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(id, n)| json!({ "id": gid("ReturnLineItem", *id), "quantity": n }))
            .collect();
        let vars = json!({ "id": return_gid(return_id), "returnLineItems": lines });
        let data: Value = self.gql.run(&RETURN_SUGGESTED_OUTCOME, vars).await?;
        let txs = &data["return"]["suggestedFinancialOutcome"]["financialTransfer"]["suggestedTransactions"];
        Ok(txs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let money = &t["amountSet"]["presentmentMoney"];
                Some(Refund {
                    parent_gid: t["parentTransaction"]["id"].as_str()?.to_string(),
                    amount: money["amount"]
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| money["amount"].as_f64().map(|a| format!("{a:.2}")))?,
                    currency: money["currencyCode"].as_str()?.to_string(),
                })
            })
            .collect())
    }

    /// Processes units of the return: dispositions (restock at `restock_location_gid`, or not),
    /// and a refund with `refunds` when given. `userErrors` are a refusal.
    pub async fn process_return(
        &self,
        return_id: u64,
        lines: &[crate::flows::returns::ProcessLine],
        refunds: &[Refund],
        restock_location_gid: &str,
        notify: bool,
    ) -> Result<Processed, CallError> {
        let vars = process_variables(return_id, lines, refunds, restock_location_gid, notify);
        let data: Value = self.gql.run(&RETURN_PROCESS, vars).await?;
        let payload = &data["returnProcess"];
        super::user_errors(payload)?;
        let ret = &payload["return"];
        Ok(Processed {
            status: ret["status"].as_str().unwrap_or_default().to_string(),
            lines: nodes(&ret["returnLineItems"])
                .filter_map(|l| {
                    let id = l["id"].as_str().and_then(gid_number)?;
                    Some((id, count(&l["processedQuantity"]), count(&l["unprocessedQuantity"])))
                })
                .collect(),
        })
    }

    /// Closes the return; one Shopify already shows closed counts as done.
    pub async fn close_return(&self, return_id: u64) -> Result<(), CallError> {
        let data: Value = self.gql.run(&RETURN_CLOSE, json!({ "id": return_gid(return_id) })).await?;
        match super::user_errors(&data["returnClose"]) {
            Err(CallError::Refused { message }) if message.to_lowercase().contains("closed") => Ok(()),
            Err(refusal) => match self.read_return(return_id).await? {
                Some(r) if r.status == "CLOSED" => Ok(()),
                _ => Err(refusal),
            },
            Ok(()) => Ok(()),
        }
    }

    /// An order's returns as `(return id, status)` (reconciliation).
    pub async fn order_returns(&self, order_id: u64) -> Result<Vec<(u64, String)>, CallError> {
        let data: Value = self.gql.run(&ORDER_RETURNS, json!({ "id": order_gid(order_id) })).await?;
        Ok(nodes(&data["order"]["returns"])
            .filter_map(|r| Some((r["id"].as_str().and_then(gid_number)?, r["status"].as_str()?.to_string())))
            .collect())
    }
}

/// The variables of one `returnProcess` (§9.8): per line its units and dispositions, a refund of
/// PASS units through the suggested transactions, no shipping, never over-refunding.
pub fn process_variables(
    return_id: u64,
    lines: &[crate::flows::returns::ProcessLine],
    refunds: &[Refund],
    restock_location_gid: &str,
    notify: bool,
) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut item = json!({ "id": gid("ReturnLineItem", l.return_line_id), "quantity": l.quantity });
            if !l.dispositions.is_empty() {
                let dispositions: Vec<Value> = l
                    .dispositions
                    .iter()
                    .map(|(rfo_line, n, restock)| {
                        let mut d = json!({
                            "reverseFulfillmentOrderLineItemId": gid("ReverseFulfillmentOrderLineItem", *rfo_line),
                            "quantity": n,
                            "dispositionType": if *restock { "RESTOCKED" } else { "NOT_RESTOCKED" },
                        });
                        if *restock {
                            d["locationId"] = json!(restock_location_gid);
                        }
                        d
                    })
                    .collect();
                item["dispositions"] = json!(dispositions);
            }
            item
        })
        .collect();
    let mut input = json!({ "returnId": return_gid(return_id), "returnLineItems": items, "notifyCustomer": notify });
    if !refunds.is_empty() {
        let txs: Vec<Value> = refunds
            .iter()
            .map(|r| json!({ "parentId": r.parent_gid, "transactionAmount": { "amount": r.amount, "currencyCode": r.currency } }))
            .collect();
        input["financialTransfer"] =
            json!({ "issueRefund": { "orderTransactions": txs, "allowOverRefunding": false } });
    }
    json!({ "input": input })
}

/// A connection's nodes (or a plain list).
fn nodes(v: &Value) -> impl Iterator<Item = &Value> {
    v["nodes"].as_array().or(v.as_array()).into_iter().flatten()
}

fn count(v: &Value) -> u32 {
    v.as_u64().map_or(0, |n| n.min(u64::from(u32::MAX)) as u32)
}

/// Reads `return(id:)`'s answer leniently; `None` when there is no return.
pub fn read_return_answer(r: &Value) -> Option<ShopifyReturn> {
    let id = r["id"].as_str().and_then(gid_number)?;
    let lines = nodes(&r["returnLineItems"])
        .filter_map(|l| {
            let fli = &l["fulfillmentLineItem"];
            Some(ReturnLine {
                id: l["id"].as_str().and_then(gid_number)?,
                quantity: count(&l["quantity"]),
                processed: count(&l["processedQuantity"]),
                unprocessed: count(&l["unprocessedQuantity"]),
                reason_name: l["returnReasonDefinition"]["name"].as_str().map(str::to_string),
                reason_enum: l["returnReason"].as_str().map(str::to_string),
                note: l["returnReasonNote"].as_str().unwrap_or_default().to_string(),
                fulfillment_line_id: fli["id"].as_str().and_then(gid_number),
                line_item_id: fli["lineItem"]["id"].as_str().and_then(gid_number),
                sku: fli["lineItem"]["sku"].as_str().map(str::to_string),
            })
        })
        .collect();
    let rfos: Vec<&Value> = nodes(&r["reverseFulfillmentOrders"]).collect();
    let reverse_lines = rfos
        .iter()
        .flat_map(|rfo| nodes(&rfo["lineItems"]))
        .filter_map(|l| {
            Some(ReverseLine {
                id: l["id"].as_str().and_then(gid_number)?,
                fulfillment_line_id: l["fulfillmentLineItem"]["id"].as_str().and_then(gid_number)?,
            })
        })
        .collect();
    let tracking = rfos.iter().flat_map(|rfo| nodes(&rfo["reverseDeliveries"])).find_map(|d| {
        let t = &d["deliverable"]["tracking"];
        let number = t["number"].as_str().filter(|n| !n.trim().is_empty())?;
        Some((number.to_string(), t["carrierName"].as_str().unwrap_or_default().to_string()))
    });
    Some(ShopifyReturn {
        id,
        name: r["name"].as_str().unwrap_or_default().to_string(),
        status: r["status"].as_str().unwrap_or_default().to_string(),
        created_at: r["createdAt"].as_str().unwrap_or_default().to_string(),
        order_id: r["order"]["id"].as_str().and_then(gid_number).unwrap_or_default(),
        lines,
        exchange_lines: nodes(&r["exchangeLineItems"]).count(),
        reverse_lines,
        tracking,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_is_read_with_its_lines_reverse_lines_and_tracking() {
        let answer = json!({
            "id": "gid://shopify/Return/945", "name": "#1001-R1", "status": "OPEN", "createdAt": "2026-11-30T10:00:00Z",
            "order": { "id": "gid://shopify/Order/450789469" },
            "returnLineItems": { "nodes": [
                { "__typename": "ReturnLineItem", "id": "gid://shopify/ReturnLineItem/11", "quantity": 2,
                  "processedQuantity": 0, "unprocessedQuantity": 2, "returnReasonNote": "",
                  "returnReasonDefinition": { "name": "Too small" }, "returnReason": "SIZE_TOO_SMALL",
                  "fulfillmentLineItem": { "id": "gid://shopify/FulfillmentLineItem/101",
                    "lineItem": { "id": "gid://shopify/LineItem/518995019", "sku": "IPOD2008RED" } } },
                { "__typename": "UnverifiedReturnLineItem", "id": "gid://shopify/UnverifiedReturnLineItem/12", "quantity": 1,
                  "processedQuantity": 0, "unprocessedQuantity": 1, "returnReasonNote": "gift", "returnReasonDefinition": null,
                  "returnReason": "OTHER" }
            ] },
            "exchangeLineItems": { "nodes": [] },
            "reverseFulfillmentOrders": { "nodes": [ {
                "lineItems": { "nodes": [ { "id": "gid://shopify/ReverseFulfillmentOrderLineItem/901",
                  "fulfillmentLineItem": { "id": "gid://shopify/FulfillmentLineItem/101" } } ] },
                "reverseDeliveries": { "nodes": [ { "deliverable": { "tracking": { "number": "RT1", "carrierName": "Delhivery" } } } ] }
            } ] }
        });
        let r = read_return_answer(&answer).unwrap();
        assert_eq!((r.id, r.order_id, r.lines.len()), (945, 450789469, 2));
        assert_eq!(r.lines[0].fulfillment_line_id, Some(101));
        assert_eq!(r.lines[0].line_item_id, Some(518995019));
        assert_eq!(r.lines[1].fulfillment_line_id, None, "unverified");
        assert_eq!(r.reverse_lines, vec![ReverseLine { id: 901, fulfillment_line_id: 101 }]);
        assert_eq!(r.tracking, Some(("RT1".into(), "Delhivery".into())));
        assert_eq!(read_return_answer(&Value::Null), None);
    }

    #[test]
    fn process_variables_restock_passed_units_at_the_location_and_refund_without_shipping() {
        let v = process_variables(1, &[example_line()], &[example_refund()], "gid://shopify/Location/7", true);
        let input = &v["input"];
        assert_eq!(input["returnId"], "gid://shopify/Return/1");
        let d = &input["returnLineItems"][0]["dispositions"];
        assert_eq!(d[0]["dispositionType"], "RESTOCKED");
        assert_eq!(d[0]["locationId"], "gid://shopify/Location/7");
        assert_eq!(d[1]["dispositionType"], "NOT_RESTOCKED");
        assert!(d[1].get("locationId").is_none());
        assert_eq!(input["financialTransfer"]["issueRefund"]["allowOverRefunding"], false);
        assert!(input.get("refundShipping").is_none());
        let none = process_variables(1, &[example_line()], &[], "gid://shopify/Location/7", false);
        assert!(none["input"].get("financialTransfer").is_none(), "nothing to refund: no transfer at all");
    }
}
