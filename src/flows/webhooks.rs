//! Which webhook subscriptions channeld wants, and how to get from what Shopify has to that.
//!
//! Ours are the subscriptions whose address is under `server.public_url`. Of those, one per topic
//! at exactly its path, in JSON, with no field filter, is kept; every other one of ours is stale
//! and deleted. Subscriptions elsewhere are never touched. With returns on, the four return topics
//! are channeld's too (CONTRACT.md §9.4).

use crate::flows::intake::Topic;
use crate::flows::returns::ReturnTopic;

/// Shopify's topic enum for each of ours.
pub const TOPICS: [(&str, Topic); 3] =
    [("ORDERS_CREATE", Topic::Create), ("ORDERS_UPDATED", Topic::Updated), ("ORDERS_CANCELLED", Topic::Cancelled)];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// (topic, uri) to create.
    pub create: Vec<(String, String)>,
    /// (id, why) to delete.
    pub delete: Vec<(String, String)>,
    /// Ids already right.
    pub keep: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

/// The subscriptions channeld wants: (topic enum, address).
pub fn desired(public_url: &str, returns: bool) -> Vec<(String, String)> {
    let base = public_url.trim_end_matches('/');
    let orders = TOPICS.iter().map(|(t, topic)| (t.to_string(), format!("{base}{}", topic.path())));
    let returns = ReturnTopic::ALL
        .iter()
        .filter(|_| returns)
        .map(|topic| (topic.graphql().to_string(), format!("{base}{}", topic.path())));
    orders.chain(returns).collect()
}

/// A webhook subscription as Shopify lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Subscription {
    pub id: String,
    pub topic: String,
    #[serde(default)]
    pub uri: String,
    #[serde(default, rename = "includeFields")]
    pub include_fields: Vec<String>,
    #[serde(default)]
    pub filter: Option<String>,
}

pub fn plan(public_url: &str, returns: bool, existing: &[Subscription]) -> Plan {
    let base = public_url.trim_end_matches('/');
    let want = desired(public_url, returns);
    let mut plan = Plan::default();
    let mut covered: Vec<&str> = Vec::new();
    for s in existing.iter().filter(|s| s.uri == base || s.uri.starts_with(&format!("{base}/"))) {
        let wanted_uri = want.iter().find(|(t, _)| *t == s.topic).map(|(_, u)| u.as_str());
        let why = match wanted_uri {
            None => Some(format!("topic {} is not one of channeld's", s.topic)),
            Some(u) if u != s.uri => Some(format!("{} is not the address for {}", s.uri, s.topic)),
            _ if !s.include_fields.is_empty() => Some("it has an includeFields filter".to_string()),
            _ if s.filter.as_deref().is_some_and(|f| !f.trim().is_empty()) => Some("it has a filter".to_string()),
            _ if covered.contains(&s.topic.as_str()) => Some(format!("a second subscription for {}", s.topic)),
            _ => None,
        };
        match why {
            Some(why) => plan.delete.push((s.id.clone(), why)),
            None => {
                covered.push(&s.topic);
                plan.keep.push(s.id.clone());
            }
        }
    }
    plan.create = want.into_iter().filter(|(t, _)| !covered.contains(&t.as_str())).collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str, topic: &str, uri: &str) -> Subscription {
        Subscription { id: id.into(), topic: topic.into(), uri: uri.into(), include_fields: vec![], filter: None }
    }

    #[test]
    fn creates_missing_deletes_stale_keeps_foreign() {
        let base = "https://c.example.com";
        let existing = vec![
            sub("1", "ORDERS_CREATE", "https://c.example.com/shopify/api/push/orders"),
            sub("2", "ORDERS_UPDATED", "https://c.example.com/old/path"),
            sub("3", "ORDERS_PAID", "https://c.example.com/shopify/api/push/orders"),
            sub("4", "ORDERS_CREATE", "https://someone-else.example.com/hook"),
            Subscription {
                include_fields: vec!["id".into()],
                ..sub("5", "ORDERS_CANCELLED", "https://c.example.com/shopify/api/push/orderCancel")
            },
        ];
        let p = plan(base, false, &existing);
        assert_eq!(p.keep, vec!["1"]);
        let deleted: Vec<&str> = p.delete.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(deleted, vec!["2", "3", "5"]);
        assert_eq!(
            p.create,
            vec![
                ("ORDERS_UPDATED".to_string(), "https://c.example.com/shopify/api/push/orderUpdate".to_string()),
                ("ORDERS_CANCELLED".to_string(), "https://c.example.com/shopify/api/push/orderCancel".to_string()),
            ]
        );
    }

    #[test]
    fn a_correct_set_needs_nothing() {
        let base = "https://c.example.com/";
        for returns in [false, true] {
            let existing: Vec<Subscription> =
                desired(base, returns).into_iter().enumerate().map(|(i, (t, u))| sub(&i.to_string(), &t, &u)).collect();
            assert!(plan(base, returns, &existing).is_empty());
        }
    }

    #[test]
    fn with_returns_on_the_four_return_topics_are_wanted_and_with_them_off_they_are_stale() {
        let base = "https://c.example.com";
        let p = plan(base, true, &[]);
        let topics: Vec<&str> = p.create.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics[3..],
            ["RETURNS_APPROVE", "RETURNS_UPDATE", "RETURNS_CANCEL", "REVERSE_DELIVERIES_ATTACH_DELIVERABLE"]
        );
        assert!(p.create.contains(&("RETURNS_APPROVE".into(), format!("{base}/shopify/api/push/returnApprove"))));
        let ours = [sub("9", "RETURNS_APPROVE", "https://c.example.com/shopify/api/push/returnApprove")];
        assert_eq!(plan(base, false, &ours).delete.len(), 1, "returns off: ours is stale");
    }
}
