//! Shopify order → Increff Create Outward Order (CONTRACT.md §5.1), with the skip and validation
//! rules. Pure: the same order and rules always give the same answer, so webhooks, reconciliation
//! and `orders retry` agree.

use chrono::{DateTime, Duration, Utc};

use super::{fmt_time, parse_time, round2, OrderRules};
use crate::config::Routing;
use crate::flows::model::SentItem;
use crate::flows::shopify_order::{Address, LineItem, ShopifyOrder};
use crate::flows::wms_order::{CreateOutwardOrder, OrderItem, WmsAddress};

/// What to do with an order seen for the first time (or seen again after a rejection).
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    Skip(Vec<String>),
    Reject(Vec<String>),
    Accept(Box<Mapped>),
}

/// An accepted order, ready to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub body: CreateOutwardOrder,
    pub items: Vec<SentItem>,
    pub address_digest: String,
}

/// Hold and dispatch-by of an order: the two properties updates forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Properties {
    pub on_hold: bool,
    pub dispatch_by: String,
    pub start_processing: String,
}

pub fn evaluate(order: &ShopifyOrder, rules: &OrderRules) -> Evaluation {
    if rules.skip_test_orders && order.test {
        return Evaluation::Skip(vec!["test order (orders.skip_test_orders = true)".into()]);
    }
    let created = parse_time(&order.created_at);
    if let Some(created) = created {
        if created.timestamp_millis() < rules.since_ms {
            return Evaluation::Skip(vec![format!("created {} before orders.since", fmt_time(created))]);
        }
    }
    let lines = shippable_lines(order);
    if lines.is_empty() {
        return Evaluation::Skip(vec!["no line that requires shipping".into()]);
    }
    let mut reasons = Vec::new();
    if created.is_none() {
        reasons.push("created_at is missing or not a valid time".into());
    }
    let shipping = check_address("shipping", order.shipping_address.as_ref(), &mut reasons);
    let billing = match (&order.billing_address, rules.billing_fallback_to_shipping) {
        (None, true) => shipping,
        (billing, _) => check_address("billing", billing.as_ref(), &mut reasons),
    };
    for line in &lines {
        match line.id {
            None => reasons.push(format!("a line item (SKU {:?}) has no id", line.sku.trim())),
            Some(id) if line.sku.trim().is_empty() => reasons.push(format!("line item {id} has no SKU")),
            Some(_) => {}
        }
    }
    reasons.extend(quantity_overflows(&lines));
    reasons.extend(negative_prices(&lines, !order.taxes_included));
    match (created, shipping, billing) {
        (Some(created), Some(shipping), Some(billing)) if reasons.is_empty() => {
            Evaluation::Accept(Box::new(build(order, rules, created, &lines, shipping, billing)))
        }
        _ => Evaluation::Reject(reasons),
    }
}

/// Hold and SLA as the rules read them from an order (also used for updates).
pub fn properties(order: &ShopifyOrder, rules: &OrderRules) -> Option<Properties> {
    let created = parse_time(&order.created_at)?;
    Some(Properties {
        on_hold: on_hold(order, rules),
        dispatch_by: fmt_time(dispatch_by(order, rules, created)),
        start_processing: fmt_time(created),
    })
}

/// Shipping and billing address as they would be sent, for noticing changes after creation.
pub fn address_digest(order: &ShopifyOrder, rules: &OrderRules) -> String {
    let email = email(order);
    let addr = |a: &Option<Address>| a.as_ref().map(|a| wms_address(a, order, email.clone()));
    let billing = match (&order.billing_address, rules.billing_fallback_to_shipping) {
        (None, true) => addr(&order.shipping_address),
        (b, _) => addr(b),
    };
    serde_json::to_string(&(addr(&order.shipping_address), billing)).unwrap_or_default()
}

/// The items the rules would send for this order (SKU, line id, open quantity), merged by SKU.
pub fn items_of(order: &ShopifyOrder) -> Vec<SentItem> {
    merge_by_sku(&shippable_lines(order).iter().map(|l| priced(l, false)).collect::<Vec<_>>())
        .into_iter()
        .map(|m| m.item)
        .collect()
}

fn shippable_lines(order: &ShopifyOrder) -> Vec<&LineItem> {
    order.line_items.iter().filter(|l| l.open_quantity() > 0 && l.requires_shipping && !l.gift_card).collect()
}

/// Lines sharing a SKU are sent as one item whose quantity must fit Increff's count: a SKU whose
/// units add up past `u32::MAX` is a reason to reject, never a wrapped or capped quantity.
fn quantity_overflows(lines: &[&LineItem]) -> Vec<String> {
    let mut totals: Vec<(&str, Option<u32>)> = Vec::new();
    for line in lines {
        let sku = line.sku.trim();
        match totals.iter_mut().find(|(s, _)| *s == sku) {
            Some((_, total)) => *total = total.and_then(|t| t.checked_add(line.open_quantity())),
            None => totals.push((sku, Some(line.open_quantity()))),
        }
    }
    totals
        .into_iter()
        .filter(|(_, total)| total.is_none())
        .map(|(sku, _)| {
            format!("SKU {sku:?}: its lines add up to more units than one order item can carry ({})", u32::MAX)
        })
        .collect()
}

/// Increff takes no negative `sellingPricePerUnit`: a line whose price, or whose price after its
/// discounts, is below zero is a reason to reject (a cent of rounding is tolerated).
fn negative_prices(lines: &[&LineItem], add_tax: bool) -> Vec<String> {
    let name = |l: &LineItem| l.id.map_or_else(|| format!("(SKU {:?})", l.sku.trim()), |id| id.to_string());
    lines
        .iter()
        .filter_map(|l| {
            if l.price < 0.0 {
                return Some(format!("line item {} has a negative price ({:.2})", name(l), l.price));
            }
            let selling = priced(l, add_tax).selling_pu;
            (selling < -0.005).then(|| {
                format!("line item {}: its price after discounts is negative ({selling:.2} per unit)", name(l))
            })
        })
        .collect()
}

fn check_address<'a>(which: &str, addr: Option<&'a Address>, reasons: &mut Vec<String>) -> Option<&'a Address> {
    let Some(a) = addr else {
        reasons.push(format!("{which} address is missing"));
        return None;
    };
    let missing: Vec<&str> = [
        ("name", full_name(a)),
        ("address1", a.address1.clone()),
        ("city", a.city.clone()),
        ("zip", a.zip.clone()),
        ("country", a.country.clone()),
    ]
    .into_iter()
    .filter(|(_, v)| v.trim().is_empty())
    .map(|(k, _)| k)
    .collect();
    if missing.is_empty() {
        Some(a)
    } else {
        reasons.push(format!("{which} address has no {}", missing.join(", ")));
        None
    }
}

fn full_name(a: &Address) -> String {
    if !a.name.trim().is_empty() {
        return a.name.trim().to_string();
    }
    format!("{} {}", a.first_name.trim(), a.last_name.trim()).trim().to_string()
}

fn email(order: &ShopifyOrder) -> Option<String> {
    [&order.email, &order.contact_email].into_iter().find(|e| !e.trim().is_empty()).map(|e| e.trim().to_string())
}

fn wms_address(a: &Address, order: &ShopifyOrder, email: Option<String>) -> WmsAddress {
    WmsAddress {
        name: full_name(a),
        line1: a.address1.clone(),
        line2: a.address2.clone(),
        city: a.city.clone(),
        state: a.province.clone(),
        zip: a.zip.clone(),
        country: a.country.clone(),
        email,
        phone: if a.phone.trim().is_empty() { order.phone.clone() } else { a.phone.clone() },
    }
}

fn on_hold(order: &ShopifyOrder, rules: &OrderRules) -> bool {
    order.tags.split(',').map(|t| t.trim().to_lowercase()).any(|t| rules.hold_tags.contains(&t))
}

fn dispatch_by(order: &ShopifyOrder, rules: &OrderRules, created: DateTime<Utc>) -> DateTime<Utc> {
    order
        .note_attributes
        .iter()
        .find(|a| a.name.trim().eq_ignore_ascii_case(&rules.sla_attribute))
        .and_then(|a| parse_time(&a.value))
        .unwrap_or_else(|| created + Duration::hours(i64::from(rules.default_sla_hours)))
}

fn payment_method(order: &ShopifyOrder, rules: &OrderRules) -> &'static str {
    let cod = order
        .payment_gateway_names
        .iter()
        .map(|g| g.to_lowercase())
        .any(|g| rules.cod_gateways.iter().any(|c| g.contains(c.as_str())));
    if cod {
        "COD"
    } else {
        "NCOD"
    }
}

/// One line with its per-unit money worked out, before merging.
struct Priced {
    item: SentItem,
    discount_pu: f64,
    selling_pu: f64,
}

fn priced(line: &LineItem, add_tax: bool) -> Priced {
    // Allocations and taxes cover the line as ordered, so they are spread over the ordered
    // quantity even when some units were removed since.
    let ordered = f64::from(line.quantity.max(line.open_quantity()).max(1));
    let discount_pu = line.discount_allocations.iter().map(|d| d.amount).sum::<f64>() / ordered;
    let tax_pu = line.tax_lines.iter().map(|t| t.price).sum::<f64>() / ordered;
    let selling_pu = line.price - discount_pu + if add_tax { tax_pu } else { 0.0 };
    Priced {
        // Lines without an id reject the order (`evaluate`); only `items_of` may see one.
        item: SentItem {
            sku: line.sku.trim().to_string(),
            item_code: line.id.map(|id| id.to_string()).unwrap_or_default(),
            quantity: line.open_quantity(),
            lines: line.id.map(|id| vec![(id, line.open_quantity())]).unwrap_or_default(),
        },
        discount_pu,
        selling_pu,
    }
}

/// Increff takes each SKU once: lines sharing a SKU become one item, quantities summed, money
/// averaged by quantity, the first line's id kept and the others remembered.
fn merge_by_sku(lines: &[Priced]) -> Vec<Priced> {
    let mut out: Vec<Priced> = Vec::new();
    for p in lines {
        match out.iter_mut().find(|m| m.item.sku == p.item.sku) {
            Some(m) => {
                let (a, b) = (f64::from(m.item.quantity), f64::from(p.item.quantity));
                m.discount_pu = (m.discount_pu * a + p.discount_pu * b) / (a + b);
                m.selling_pu = (m.selling_pu * a + p.selling_pu * b) / (a + b);
                // `evaluate` rejects an order whose quantities overflow; never wrap here.
                m.item.quantity = m.item.quantity.saturating_add(p.item.quantity);
                m.item.lines.extend(p.item.lines.iter().copied());
            }
            None => out.push(Priced { item: p.item.clone(), discount_pu: p.discount_pu, selling_pu: p.selling_pu }),
        }
    }
    out
}

fn build(
    order: &ShopifyOrder,
    rules: &OrderRules,
    created: DateTime<Utc>,
    lines: &[&LineItem],
    shipping: &Address,
    billing: &Address,
) -> Mapped {
    let priced: Vec<Priced> = lines.iter().map(|l| priced(l, !order.taxes_included)).collect();
    let merged = merge_by_sku(&priced);
    let shipping_total: f64 = order.shipping_lines.iter().map(|s| s.discounted_price).sum();
    let total_value: f64 = merged.iter().map(|m| m.selling_pu * f64::from(m.item.quantity)).sum();
    let units: f64 = merged.iter().map(|m| f64::from(m.item.quantity)).sum();
    let order_items = merged
        .iter()
        .map(|m| {
            let qty = f64::from(m.item.quantity);
            // Shipping is spread over units by line value; evenly when every line is free.
            let ship_pu = if total_value > 0.0 {
                shipping_total * (m.selling_pu * qty / total_value) / qty
            } else {
                shipping_total / units
            };
            OrderItem {
                channel_sku_code: m.item.sku.clone(),
                order_item_code: m.item.item_code.clone(),
                quantity: m.item.quantity,
                channel_discount_per_unit: round2(m.discount_pu),
                selling_price_per_unit: round2(m.selling_pu),
                shipping_charge_per_unit: round2(ship_pu),
            }
        })
        .collect();
    let (location_code, split) = match rules.routing {
        Routing::Wms => (None, true),
        Routing::Fixed => (Some(rules.default_location.clone()), false),
        Routing::Shopify => (None, false),
    };
    let email = email(order);
    let body = CreateOutwardOrder {
        order_code: order.id.to_string(),
        parent_order_code: order.name.clone(),
        location_code,
        order_time: fmt_time(created),
        order_type: "SO".into(),
        on_hold: on_hold(order, rules),
        qc_status: "PASS".into(),
        dispatch_by_time: fmt_time(dispatch_by(order, rules, created)),
        start_processing_time: fmt_time(created),
        payment_method: payment_method(order, rules).into(),
        is_split_required: split,
        pack_type: "PIECE".into(),
        shipping_address: wms_address(shipping, order, email.clone()),
        billing_address: wms_address(billing, order, email),
        order_items,
    };
    Mapped { body, items: merged.into_iter().map(|m| m.item).collect(), address_digest: address_digest(order, rules) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::tests::{fixture_order, rules};

    fn accepted(order: &ShopifyOrder, rules: &OrderRules) -> Mapped {
        match evaluate(order, rules) {
            Evaluation::Accept(m) => *m,
            other => panic!("expected accept, got {other:?}"),
        }
    }

    #[test]
    fn maps_the_fixture_order() {
        let m = accepted(&fixture_order(), &rules());
        let b = &m.body;
        assert_eq!(b.order_code, "450789469");
        assert_eq!(b.parent_order_code, "#1001");
        assert_eq!(b.order_time, "2008-01-10T16:00:00.000Z");
        assert_eq!(b.dispatch_by_time, "2008-01-12T16:00:00.000Z");
        assert_eq!(b.payment_method, "NCOD");
        assert!(!b.on_hold);
        // Two of the three lines were refunded to zero: only IPOD2008RED is still open.
        assert_eq!(b.order_items.len(), 1);
        let item = &b.order_items[0];
        assert_eq!(
            (item.channel_sku_code.as_str(), item.order_item_code.as_str(), item.quantity),
            ("IPOD2008RED", "518995019", 1)
        );
        assert_eq!(item.channel_discount_per_unit, 3.33);
        // taxes_included = false: price − discount + tax.
        assert_eq!(item.selling_price_per_unit, 199.65);
        assert_eq!(b.shipping_address.name, "Bob Norman");
        assert_eq!(b.shipping_address.state, "Kentucky");
        assert_eq!(b.shipping_address.email.as_deref(), Some("bob.norman@mail.example.com"));
        assert_eq!(b.billing_address.line1, "Chestnut Street 92");
    }

    #[test]
    fn cod_hold_and_sla_attribute() {
        let mut o = fixture_order();
        o.payment_gateway_names = vec!["Cash on Delivery (COD)".into()];
        o.tags = "vip,  On-Hold ".into();
        o.note_attributes.push(crate::flows::shopify_order::NoteAttribute {
            name: "dispatch_by".into(),
            value: "2008-01-11T10:00:00+05:30".into(),
        });
        let b = accepted(&o, &rules()).body;
        assert_eq!(b.payment_method, "COD");
        assert!(b.on_hold);
        assert_eq!(b.dispatch_by_time, "2008-01-11T04:30:00.000Z");
    }

    #[test]
    fn missing_shipping_address_and_sku_give_both_reasons() {
        let mut o = fixture_order();
        o.shipping_address = None;
        o.line_items[1].sku = String::new();
        match evaluate(&o, &rules()) {
            Evaluation::Reject(r) => {
                assert!(r.iter().any(|r| r.contains("shipping address is missing")), "{r:?}");
                assert!(r.iter().any(|r| r.contains("518995019") && r.contains("no SKU")), "{r:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn merged_quantities_that_overflow_reject_the_order() {
        let mut o = fixture_order();
        for i in [1, 2] {
            o.line_items[i].sku = "IPOD2008RED".into();
            o.line_items[i].current_quantity = Some(u32::MAX - 1);
        }
        match evaluate(&o, &rules()) {
            Evaluation::Reject(r) => {
                assert!(r.iter().any(|r| r.contains("IPOD2008RED") && r.contains("more units")), "{r:?}")
            }
            other => panic!("{other:?}"),
        }
        // Updates compare what would be sent: saturated, never wrapped.
        let red = items_of(&o).into_iter().find(|i| i.sku == "IPOD2008RED").unwrap();
        assert_eq!(red.quantity, u32::MAX);
    }

    #[test]
    fn negative_prices_reject_the_order() {
        let mut o = fixture_order();
        o.line_items[1].price = -1.0;
        match evaluate(&o, &rules()) {
            Evaluation::Reject(r) => {
                assert!(r.iter().any(|r| r.contains("518995019") && r.contains("negative")), "{r:?}")
            }
            other => panic!("{other:?}"),
        }
        let mut o = fixture_order();
        o.line_items[1].discount_allocations = vec![crate::flows::shopify_order::Amount { amount: 1000.0 }];
        assert!(matches!(evaluate(&o, &rules()), Evaluation::Reject(_)));
        // A free line is fine.
        let mut o = fixture_order();
        o.line_items[1].price = 0.0;
        o.line_items[1].discount_allocations.clear();
        o.line_items[1].tax_lines.clear();
        assert!(matches!(evaluate(&o, &rules()), Evaluation::Accept(_)));
    }

    #[test]
    fn a_line_without_an_id_rejects_the_order() {
        let mut o = fixture_order();
        o.line_items[1].id = None;
        match evaluate(&o, &rules()) {
            Evaluation::Reject(r) => {
                assert!(r.iter().any(|r| r.contains("IPOD2008RED") && r.contains("no id")), "{r:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn billing_fallback_uses_shipping() {
        let mut o = fixture_order();
        o.billing_address = None;
        assert!(matches!(evaluate(&o, &rules()), Evaluation::Reject(_)));
        let mut r = rules();
        r.billing_fallback_to_shipping = true;
        assert_eq!(accepted(&o, &r).body.billing_address.city, "Louisville");
    }

    #[test]
    fn skips_test_old_and_unshippable_orders() {
        let mut o = fixture_order();
        o.test = true;
        assert!(matches!(evaluate(&o, &rules()), Evaluation::Skip(_)));
        let mut r = rules();
        r.since_ms = i64::MAX;
        assert!(matches!(evaluate(&fixture_order(), &r), Evaluation::Skip(_)));
        let mut o = fixture_order();
        o.line_items.iter_mut().for_each(|l| l.requires_shipping = false);
        assert!(matches!(evaluate(&o, &rules()), Evaluation::Skip(_)));
    }

    #[test]
    fn lines_sharing_a_sku_are_merged_and_shipping_spread_by_value() {
        let mut o = fixture_order();
        for l in &mut o.line_items {
            l.current_quantity = Some(1);
            l.tax_lines.clear();
            l.discount_allocations.clear();
        }
        o.line_items[2].sku = "IPOD2008RED".into();
        o.line_items[2].price = 99.0;
        o.shipping_lines[0].discounted_price = 30.0;
        let m = accepted(&o, &rules());
        assert_eq!(m.body.order_items.len(), 2);
        let red = m.body.order_items.iter().find(|i| i.channel_sku_code == "IPOD2008RED").unwrap();
        assert_eq!((red.quantity, red.order_item_code.as_str()), (2, "518995019"));
        assert_eq!(red.selling_price_per_unit, 149.0);
        let units_total: f64 =
            m.body.order_items.iter().map(|i| i.shipping_charge_per_unit * f64::from(i.quantity)).sum();
        assert!((units_total - 30.0).abs() < 0.02, "{units_total}");
        let red_item = m.items.iter().find(|i| i.sku == "IPOD2008RED").unwrap();
        assert_eq!(red_item.lines, vec![(518995019, 1), (703073504, 1)]);
    }

    #[test]
    fn routing_modes_set_location_and_split() {
        let mut r = rules();
        r.routing = Routing::Wms;
        let b = accepted(&fixture_order(), &r).body;
        assert_eq!((b.location_code, b.is_split_required), (None, true));
        r.routing = Routing::Fixed;
        r.default_location = "WH-9".into();
        let b = accepted(&fixture_order(), &r).body;
        assert_eq!((b.location_code.as_deref(), b.is_split_required), (Some("WH-9"), false));
    }
}
