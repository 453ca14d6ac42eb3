//! The outbox's return calls (CONTRACT.md §9.7, §9.8): Create Return Order at the WMS,
//! `returnProcess` and `returnClose` on Shopify. Each reads the return as stored, does only what
//! is left, and records what it did before it reports the call done, so running one again (a
//! retry, a replay, a restart) never sends a WMS return twice or processes a unit twice:
//! - a WMS return is marked sent once delivered (and "already exists" counts as delivered);
//! - before `returnProcess`, the step is marked in flight durably; a step found in flight re-reads
//!   the return and counts the units Shopify shows processed as done, without a second call.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::step::Step;
use crate::app::{now_ms, App};
use crate::flows::model::{OrderRecord, Task};
use crate::flows::returns::{flag, plan_process, plan_wms, ready_to_close, ReturnRecord, ReturnRules, ReturnStatus};
use crate::remote::CallError;
use crate::shopify::queries::location_gid;

/// Sends a return's WMS returns not yet sent, building them first from the return as Shopify
/// shows it when it was never built.
pub(super) async fn send(app: &Arc<App>, return_id: u64) -> Step {
    let mut rec = match load_return(app, return_id).await {
        Ok(r) => r,
        Err(step) => return step,
    };
    if rec.status == ReturnStatus::Cancelled {
        return Step::Dropped("the return was cancelled on Shopify before it was sent".into());
    }
    if rec.status == ReturnStatus::Held {
        return Step::Dropped("the return is held (its order never reached the WMS)".into());
    }
    if rec.wms.is_empty() {
        match build(app, &mut rec).await {
            Ok(Some(stop)) => return stop,
            Ok(None) => {}
            Err(step) => return step,
        }
    }
    for w in rec.wms.clone().into_iter().filter(|w| !w.sent) {
        if let Err(e) = app.wms.create_return(&w.body).await {
            return Step::Failed(e);
        }
        let code = w.code.clone();
        let recorded = app
            .store
            .call(move |s| {
                let written = s.update_return(return_id, now_ms(), |r| {
                    if let Some(sent) = r.wms.iter_mut().find(|x| x.code == code) {
                        sent.sent = true;
                    }
                    if r.status == ReturnStatus::Cancelled {
                        r.flag(flag::CANCELLED_AFTER_SEND);
                    }
                    r.settle();
                })?;
                Ok(written.is_some_and(|r| r.status == ReturnStatus::Cancelled))
            })
            .await;
        match recorded {
            Ok(true) => tracing::warn!(
                return_id,
                return_code = %w.code,
                "return {return_id} was cancelled on Shopify while the WMS got it: cancel {} in the WMS",
                w.code
            ),
            Ok(false) => tracing::info!(return_id, return_code = %w.code, "return sent to the WMS"),
            Err(e) => return Step::from(e),
        }
    }
    Step::Done(|_| {})
}

/// Builds the WMS returns from Shopify's return and stores them (durably: an acknowledgement may
/// name them as soon as the WMS has them). `Some(step)`: nothing to send now.
async fn build(app: &Arc<App>, rec: &mut ReturnRecord) -> Result<Option<Step>, Step> {
    let id = rec.id;
    let Some(ret) = app.shopify.read_return(id).await.map_err(Step::Failed)? else {
        return Err(Step::Failed(CallError::Refused { message: format!("Shopify does not know return {id}") }));
    };
    let r = &app.cfg.returns;
    let rules = ReturnRules {
        order_type: r.order_type.clone(),
        location: r.location.clone(),
        wait_for_tracking: r.wait_for_tracking,
    };
    let stop = match ret.status.as_str() {
        "CANCELED" | "DECLINED" => Some((ReturnStatus::Cancelled, "the return is no longer approved on Shopify")),
        "CLOSED" => Some((ReturnStatus::Skipped, "the return was closed on Shopify before it reached the WMS")),
        _ if rules.wait_for_tracking && ret.tracking.is_none() => {
            Some((ReturnStatus::Waiting, "waiting for a reverse delivery with a tracking number"))
        }
        _ => None,
    };
    if let Some((status, why)) = stop {
        let why = why.to_string();
        let saved = app
            .store
            .call(move |s| {
                s.update_return(id, now_ms(), |r| {
                    r.status = status;
                    if status == ReturnStatus::Skipped {
                        r.flag(flag::CLOSED_ON_SHOPIFY);
                    }
                })
            })
            .await;
        return match saved {
            Ok(_) => Ok(Some(Step::Dropped(why))),
            Err(e) => Err(Step::from(e)),
        };
    }
    let order_id = rec.order_id;
    let order: Option<OrderRecord> = app.store.call(move |s| s.order(order_id)).await.map_err(Step::from)?;
    let shipped_from = if rules.location.trim().is_empty() {
        let by_location =
            app.shopify.shipped_from(if order_id > 0 { order_id } else { ret.order_id }).await.map_err(Step::Failed)?;
        by_location
            .into_iter()
            .map(|(fli, loc)| (fli, app.cfg.wms_location_for(loc).map(str::to_string).ok_or(loc)))
            .collect()
    } else {
        HashMap::new()
    };
    let plan = plan_wms(&ret, order.as_ref(), &shipped_from, &rules);
    let (name, tracking) = (ret.name.clone(), ret.tracking.clone());
    let saved = app
        .store
        .call(move |s| {
            s.update_return(id, now_ms(), |r| {
                if r.wms.is_empty() {
                    r.name = name.clone();
                    r.tracking = tracking.clone();
                    r.order_id = if r.order_id > 0 { r.order_id } else { ret.order_id };
                    r.wms = plan.wms.clone();
                    r.units = plan.units.clone();
                    r.skipped = plan.skipped.clone();
                    if r.wms.is_empty() && r.status != ReturnStatus::Cancelled {
                        r.status = ReturnStatus::Skipped;
                    }
                }
            })
        })
        .await
        .map_err(Step::from)?;
    app.store.sync_state().await.map_err(Step::from)?;
    *rec = saved.ok_or_else(|| Step::Dropped("the return is no longer stored".into()))?;
    for skipped in &rec.skipped {
        tracing::warn!(return_id = id, line = skipped.return_line_id, units = skipped.quantity, reason = %skipped.reason, "return units not sent to the WMS");
    }
    if rec.wms.is_empty() {
        return Ok(Some(Step::Dropped("no unit of the return can go to the WMS (see `channeld returns show`)".into())));
    }
    Ok(None)
}

/// Processes on Shopify the units QC'd up to acknowledgement `ack` and not yet processed: one
/// `returnProcess` with their dispositions and the refund of PASS units (§9.8).
pub(super) async fn process(app: &Arc<App>, return_id: u64, ack: u32) -> Step {
    let rec = match load_return(app, return_id).await {
        Ok(r) => r,
        Err(step) => return step,
    };
    if rec.finished_on_shopify() {
        return Step::Dropped("the return is cancelled or closed on Shopify: nothing is executed".into());
    }
    if rec.is_rto() {
        return Step::Dropped("a return to origin executes nothing on Shopify".into());
    }
    if !rec.units.iter().any(|u| u.due(ack)) {
        return Step::Done(|_| {});
    }
    let restock_at = match restock_locations(app, &rec, ack) {
        Ok(at) => at,
        Err(code) => {
            let _ = app
                .store
                .call(move |s| s.update_return(return_id, now_ms(), |r| r.flag(flag::LOCATION_UNMAPPED)))
                .await;
            metrics::counter!("channeld_return_flags_total", "flag" => flag::LOCATION_UNMAPPED).increment(1);
            return Step::Failed(CallError::Refused {
                message: format!(
                    "no Shopify location to restock at for WMS location {code}: set returns.restock_location_id or map \
                     it in [[locations]], then `channeld returns retry {return_id}`"
                ),
            });
        }
    };
    // Durably in flight before the call: a step cut short finds its units processed on Shopify
    // and counts them as its own.
    let marked = app.store.call(move |s| s.update_return(return_id, now_ms(), |r| r.step_in_flight = Some(ack))).await;
    if let Err(e) = marked {
        return Step::from(e);
    }
    if let Err(e) = app.store.sync_state().await {
        return Step::from(e);
    }
    let mut rec = rec;
    rec.step_in_flight = Some(ack);
    let now = match app.shopify.read_return(return_id).await {
        Ok(Some(now)) => now,
        Ok(None) => {
            return Step::Failed(CallError::Refused { message: format!("Shopify does not know return {return_id}") })
        }
        Err(e) => return Step::Failed(e),
    };
    if now.status != "OPEN" {
        let _ = app
            .store
            .call(move |s| {
                s.update_return(return_id, now_ms(), |r| {
                    r.closed = true;
                    r.flag(flag::CLOSED_ON_SHOPIFY);
                })
            })
            .await;
        return Step::Dropped(format!("the return is {} on Shopify: nothing is executed", now.status.to_lowercase()));
    }
    let cfg = &app.cfg.returns;
    let order_id = rec.order_id;
    let cod = match app.store.call(move |s| s.order(order_id)).await {
        Ok(order) => is_cod(order.as_ref()),
        Err(e) => return Step::from(e),
    };
    let (refund_units, manual) = refund_policy(cfg, cod, now.exchange_lines);
    let plan = plan_process(&rec, ack, &now, cfg.restock, refund_units);
    let mut flags: BTreeSet<&'static str> = manual.into_iter().collect();
    if plan.processed_outside {
        flags.insert(flag::PROCESSED_OUTSIDE);
    }
    if !plan.removed.is_empty() {
        flags.insert(flag::UNIT_REMOVED);
    }
    if rec.units.iter().any(|u| u.qc.as_ref().is_some_and(|q| !q.pass)) {
        flags.insert(flag::REFUND_MANUAL);
    }
    let mut refunds = Vec::new();
    let to_refund: Vec<(u64, u32)> =
        plan.lines.iter().filter(|l| l.refund > 0).map(|l| (l.return_line_id, l.refund)).collect();
    if !to_refund.is_empty() {
        match app.shopify.suggested_return_refund(return_id, &to_refund).await {
            Ok(r) if r.is_empty() => {
                flags.insert(flag::REFUND_MANUAL);
            }
            Ok(r) => refunds = r,
            Err(e) => return Step::Failed(e),
        }
    }
    let mut left = HashMap::new();
    if !plan.is_empty() {
        let location = restock_location_for(&rec, &plan, &restock_at);
        match app.shopify.process_return(return_id, &plan.lines, &refunds, &location, cfg.notify_customer).await {
            Ok(processed) => {
                left = processed.lines.iter().map(|(id, _, unprocessed)| (*id, *unprocessed)).collect();
            }
            Err(e) => {
                metrics::counter!("channeld_return_refunds_total", "result" => "failed")
                    .increment(u64::from(!refunds.is_empty()));
                return Step::Failed(e);
            }
        }
        metrics::counter!("channeld_return_refunds_total", "result" => if refunds.is_empty() { "none" } else { "refunded" }).increment(1);
    }
    for f in &flags {
        metrics::counter!("channeld_return_flags_total", "flag" => *f).increment(1);
    }
    let done_units: Vec<usize> = plan.units.iter().chain(&plan.already).chain(&plan.removed).copied().collect();
    let refunded: Vec<(String, String)> = refunds.iter().map(|r| (r.amount.clone(), r.currency.clone())).collect();
    let flags: Vec<&'static str> = flags.into_iter().collect();
    let restocked = restocked_rows(&rec, &plan, &restock_at);
    let saved = app
        .store
        .call(move |s| {
            let saved = s.update_return(return_id, now_ms(), |r| {
                for i in &done_units {
                    if let Some(u) = r.units.get_mut(*i) {
                        u.processed = true;
                    }
                }
                r.refunds.extend(refunded.iter().cloned());
                for f in &flags {
                    r.flag(f);
                }
                r.step_in_flight = None;
                r.settle();
            })?;
            for (location, sku) in &restocked {
                s.repush_inventory(*location, sku)?;
            }
            Ok(saved)
        })
        .await;
    let rec = match saved {
        Ok(Some(r)) => r,
        Ok(None) => return Step::Dropped("the return is no longer stored".into()),
        Err(e) => return Step::from(e),
    };
    let mut now = now;
    for line in &mut now.lines {
        if let Some(unprocessed) = left.get(&line.id) {
            line.unprocessed = *unprocessed;
        } else if plan.lines.iter().any(|l| l.return_line_id == line.id) {
            line.unprocessed = 0;
        }
    }
    tracing::info!(
        return_id,
        step = ack,
        units = plan.units.len(),
        status = rec.status.as_str(),
        "return processed on Shopify"
    );
    if ready_to_close(&rec, &now) {
        Step::DoneThen(vec![Task::ShopifyCloseReturn { return_id }])
    } else {
        Step::Done(|_| {})
    }
}

/// Whether PASS units are refunded, and the flags for what is left to the merchant: COD orders
/// (unless `refund_cod`), returns with exchange line items, `refund = false`.
fn refund_policy(cfg: &crate::config::Returns, cod: bool, exchange_lines: usize) -> (bool, Vec<&'static str>) {
    if !cfg.refund {
        return (false, Vec::new());
    }
    if exchange_lines > 0 || (cod && !cfg.refund_cod) {
        return (false, vec![flag::REFUND_MANUAL]);
    }
    (true, Vec::new())
}

/// Whether the order was sent to the WMS as cash on delivery.
fn is_cod(order: Option<&OrderRecord>) -> bool {
    let body = order.and_then(|o| o.wms.as_ref()).map(|w| w.create_body.as_str()).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(body).is_ok_and(|b| b["paymentMethod"] == "COD")
}

/// The Shopify location each WMS location of the step's PASS units restocks at:
/// `returns.restock_location_id`, else the one `[[locations]]` maps it to. `Err(code)` names a WMS
/// location with neither.
fn restock_locations(app: &App, rec: &ReturnRecord, ack: u32) -> Result<HashMap<String, u64>, String> {
    let cfg = &app.cfg.returns;
    let mut at = HashMap::new();
    if !cfg.restock {
        return Ok(at);
    }
    for u in rec.units.iter().filter(|u| u.due(ack) && u.qc.as_ref().is_some_and(|q| q.pass)) {
        let location = if cfg.restock_location_id > 0 {
            Some(cfg.restock_location_id)
        } else {
            app.cfg.shopify_location_for(&u.location_code)
        };
        at.insert(u.location_code.clone(), location.ok_or_else(|| u.location_code.clone())?);
    }
    Ok(at)
}

/// The Shopify location of this step's restocks (a step's units share their WMS return's
/// location; with several, the first).
fn restock_location_for(
    rec: &ReturnRecord,
    plan: &crate::flows::returns::ProcessPlan,
    at: &HashMap<String, u64>,
) -> String {
    plan.units
        .iter()
        .filter_map(|i| rec.units.get(*i))
        .find_map(|u| at.get(&u.location_code))
        .map(|id| location_gid(*id))
        .unwrap_or_default()
}

/// The (Shopify location, SKU) rows a step restocked, for the inventory job to push the WMS's
/// latest quantity again: the WMS stays the source of truth.
fn restocked_rows(
    rec: &ReturnRecord,
    plan: &crate::flows::returns::ProcessPlan,
    at: &HashMap<String, u64>,
) -> Vec<(u64, String)> {
    let mut rows: Vec<(u64, String)> = plan
        .units
        .iter()
        .filter_map(|i| rec.units.get(*i))
        .filter(|u| u.qc.as_ref().is_some_and(|q| q.pass))
        .filter_map(|u| Some((*at.get(&u.location_code)?, u.sku.clone())))
        .collect();
    rows.sort();
    rows.dedup();
    rows
}

/// Closes the return on Shopify once every unit passed and is processed.
pub(super) async fn close(app: &Arc<App>, return_id: u64) -> Step {
    let rec = match load_return(app, return_id).await {
        Ok(r) => r,
        Err(step) => return step,
    };
    if rec.closed || rec.status == ReturnStatus::Cancelled {
        return Step::Done(|_| {});
    }
    if rec.is_rto() {
        return Step::Dropped("a return to origin is no Shopify return: nothing to close".into());
    }
    if let Err(e) = app.shopify.close_return(return_id).await {
        return Step::Failed(e);
    }
    match app.store.call(move |s| s.update_return(return_id, now_ms(), |r| r.closed = true)).await {
        Ok(_) => {
            tracing::info!(return_id, "return closed on Shopify");
            Step::Done(|_| {})
        }
        Err(e) => Step::from(e),
    }
}

/// The return a call is about, as stored now.
async fn load_return(app: &App, return_id: u64) -> Result<ReturnRecord, Step> {
    match app.store.call(move |s| s.return_record(return_id)).await {
        Ok(Some(rec)) => Ok(rec),
        Ok(None) => Err(Step::Dropped(format!("return {return_id} is no longer stored"))),
        Err(e) => Err(Step::from(e)),
    }
}
