//! The document's own checks: every routed action and error status is
//! described, every reference resolves, and it is OpenAPI 3.1.

use super::actions::action_doc;
use super::operation::Errors;
use super::*;

#[test]
fn every_action_of_the_router_is_documented() {
    for (name, _) in super::super::action_table() {
        assert!(
            action_doc(name).is_some(),
            "action {name} is routed but has no entry in action_doc"
        );
    }
}

#[test]
fn every_error_status_used_is_described() {
    for errors in [Errors::Public, Errors::Read, Errors::Write] {
        for status in errors.statuses() {
            assert!(
                ERROR_RESPONSES.iter().any(|(s, _)| s == status),
                "{status} has no shared response"
            );
        }
    }
}

#[test]
fn every_referenced_schema_exists() {
    let doc = document();
    let json = serde_json::to_value(&doc).expect("the document serialises");
    let schemas = &json["components"]["schemas"];
    let mut missing = Vec::new();
    let mut stack = vec![&json];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    let found = match r.strip_prefix("#/components/schemas/") {
                        Some(name) => schemas.get(name).is_some(),
                        None => r
                            .strip_prefix("#/components/responses/")
                            .is_some_and(|name| {
                                json["components"]["responses"].get(name).is_some()
                            }),
                    };
                    if !found {
                        missing.push(r.clone());
                    }
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    assert!(missing.is_empty(), "dangling references: {missing:?}");
}

#[test]
fn the_document_is_openapi_3_1() {
    let json: serde_json::Value =
        serde_json::from_str(document_json()).expect("the document is JSON");
    assert_eq!(json["openapi"], "3.1.0");
    assert!(json["paths"]["/{version}/users/{id}/presence/setPresence"]["post"].is_object());
    assert!(json["paths"]["/_presenced/openapi.json"]["get"].is_object());
}
