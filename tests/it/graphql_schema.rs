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
    let docs = channeld::shopify::queries::all();
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
    let rest: channeld::shopify::order::ShopifyOrder = serde_json::from_value(rest["order"].clone()).unwrap();
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
