//! Every GraphQL document channeld sends validates, with its variables, against Shopify's own
//! Admin schema of the pinned version; and an order fetched by GraphQL maps like its webhook.

use std::io::Read;

use apollo_compiler::{ExecutableDocument, Schema};
use channeld::flows::order_map::{evaluate, Evaluation};
use channeld::flows::OrderRules;

fn schema() -> apollo_compiler::validation::Valid<Schema> {
    let gz = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/admin-2026-10.graphql.gz")).unwrap();
    let mut sdl = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut sdl).unwrap();
    Schema::parse_and_validate(sdl, "admin-2026-10.graphql").expect("Shopify's schema parses")
}

#[test]
fn every_document_and_its_variables_validate_against_the_2026_10_schema() {
    let schema = schema();
    let docs = channeld::shopify::documents();
    assert!(!docs.is_empty());
    for (doc, variables) in docs {
        let exec = ExecutableDocument::parse_and_validate(&schema, doc.text, format!("{}.graphql", doc.name))
            .unwrap_or_else(|e| panic!("{} does not validate:\n{e}", doc.name));
        let op = exec.operations.get(None).unwrap_or_else(|_| panic!("{} has one operation", doc.name));
        let vars: apollo_compiler::response::JsonMap = serde_json::from_value(variables).unwrap();
        apollo_compiler::request::coerce_variable_values(&schema, op, &vars)
            .unwrap_or_else(|e| panic!("{}: variables refused: {}", doc.name, e.message()));
    }
}

#[test]
fn graphql_order_and_webhook_order_give_the_same_wms_payload() {
    let rest: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/shopify/order_450789469_get_2025-10.json")).unwrap();
    let rest: channeld::flows::shopify_order::ShopifyOrder = serde_json::from_value(rest["order"].clone()).unwrap();
    let gql: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/shopify-graphql/order_450789469.json")).unwrap();
    let gql = channeld::shopify::queries::order_from_graphql(&gql).unwrap();
    let cfg: channeld::config::Orders = toml::from_str("").unwrap();
    let rules = OrderRules::new(&cfg, 0);
    match (evaluate(&rest, &rules), evaluate(&gql, &rules)) {
        (Evaluation::Accept(a), Evaluation::Accept(b)) => assert_eq!(a.body, b.body),
        other => panic!("{other:?}"),
    }
}

/// Whether a mutation's description says the `@idempotent` directive is required (Shopify puts
/// it in one sentence: "As of 2026-04, the idempotency key is required and must be provided using
/// the `@idempotent` directive.").
fn says_idempotent_is_required(description: &str) -> bool {
    description
        .split(['.', '\n'])
        .map(str::to_lowercase)
        .any(|sentence| sentence.contains("@idempotent") && sentence.contains("required"))
}

#[test]
fn the_idempotent_list_is_what_the_schema_descriptions_require() {
    let schema = schema();
    let mutation = schema.get_object("Mutation").expect("the schema has mutations");
    let mut required: Vec<&str> = mutation
        .fields
        .iter()
        .filter(|(_, f)| f.description.as_deref().is_some_and(says_idempotent_is_required))
        .map(|(name, _)| name.as_str())
        .collect();
    required.sort_unstable();
    let mut listed = channeld::shopify::queries::IDEMPOTENT_REQUIRED.to_vec();
    listed.sort_unstable();
    assert_eq!(listed, required);
}

#[test]
fn every_document_calling_a_mutation_that_needs_idempotent_carries_it() {
    use crate::shopify_inventory_fake::missing_idempotent;
    let needs = channeld::shopify::queries::IDEMPOTENT_REQUIRED;
    let mut calling = Vec::new();
    for (doc, variables) in channeld::shopify::documents() {
        if needs.iter().any(|m| doc.text.contains(&format!("{m}("))) {
            calling.push(doc.name);
        }
        assert_eq!(missing_idempotent(doc.text, &variables), None, "{} lacks @idempotent(key:)", doc.name);
    }
    // The check sees the mutations channeld sends (so it is not passing for want of looking)...
    assert!(calling.contains(&"RefundCreate") && calling.contains(&"InventorySetQuantities"), "{calling:?}");
    // ...and refuses them without the directive, or with an empty key.
    let bare = "mutation R($input: RefundInput!) { refundCreate(input: $input) { refund { id } } }";
    let refused = missing_idempotent(bare, &serde_json::json!({})).expect("refused");
    assert_eq!(refused["errors"][0]["path"], serde_json::json!(["refundCreate"]));
    let empty =
        "mutation R($input: RefundInput!) { refundCreate(input: $input) @idempotent(key: \" \") { refund { id } } }";
    assert!(missing_idempotent(empty, &serde_json::json!({})).is_some());
}
