//! Unit tests of the state document.

use super::*;

fn doc(json: serde_json::Value) -> Result<CheckedState, String> {
    let doc = StateDocument::from_json(json.to_string().as_bytes())?;
    doc.check(chrono::DateTime::UNIX_EPOCH)
        .map_err(|e| e.to_string())
}

const T: &str = "5b8e2f61-3c4d-4e7a-9f10-2a6b7c8d9e01";
const U: &str = "0d6f4a2b-7e91-4c3a-8b5d-6e2f1a9c7b44";

fn session(av: &str, ac: &str) -> serde_json::Value {
    serde_json::json!({"kind": "application", "id": "app", "availability": av, "activity": ac,
        "lastActiveDateTime": "2026-01-01T09:00:00Z", "expirationDateTime": "2026-01-01T10:00:00Z"})
}

#[test]
fn a_minimal_seed_counts_as_one_write_at_its_latest_instant() {
    let checked = doc(serde_json::json!({"version": 1, "tenants": [
        {"id": T, "users": [{"id": U, "sessions": [session("Busy", "InACall")]}]}]}))
    .unwrap();
    let (key, facts) = &checked.contents.users[0];
    assert_eq!(key.user.to_string(), U);
    assert_eq!(facts.version, 1);
    let nine = facts.sessions[0].last_active;
    assert_eq!(
        (facts.updated_at, facts.settled_at),
        (Some(nine), Some(nine))
    );
    assert_eq!(checked.clock, None);
}

#[test]
fn the_example_in_the_spec_is_a_valid_document_that_round_trips() {
    let spec = include_str!("../../../docs/SPEC.md");
    let from = spec
        .find("**State document**")
        .expect("the spec documents the state document");
    let block = &spec[from..];
    let start = block.find("```json\n").expect("with an example") + "```json\n".len();
    let end = block[start..].find("```").expect("a closed block") + start;
    let checked = doc(serde_json::from_str(&block[start..end]).unwrap()).unwrap();
    assert_eq!(checked.contents.users[0].1.sessions.len(), 2);
    assert_eq!(checked.contents.subscriptions.len(), 1);
    let clock = checked.clock.unwrap();
    let exported = StateDocument::export(checked.contents.clone(), clock);
    let again = exported.check(chrono::DateTime::UNIX_EPOCH).unwrap();
    assert_eq!(again, checked);
}

#[test]
fn bad_documents_name_the_field() {
    let cases = [
        (serde_json::json!({"version": 2, "tenants": []}), "version:"),
        (
            serde_json::json!({"version": 1, "tenants": [{"id": T, "users": [{"id": U, "sessions": [session("Busy", "Away")]}]}]}),
            "tenants[0].users[0].sessions[0].activity",
        ),
        (
            serde_json::json!({"version": 1, "tenants": [{"id": T, "users": [{"id": U, "sessions": [session("Busy", "Nap")]}]}]}),
            "tenants[0].users[0].sessions[0].activity",
        ),
        (
            serde_json::json!({"version": 1, "tenants": [{"id": T, "users": [{"id": U}, {"id": U}]}]}),
            "tenants[0].users[1].id",
        ),
        (
            serde_json::json!({"version": 1, "tenants": [{"id": T, "users": [{"id": U, "version": u64::MAX}]}]}),
            "tenants[0].users[0].version",
        ),
        (
            serde_json::json!({"version": 1, "tenants": [{"id": "nope"}]}),
            "tenants[0].id",
        ),
        (
            serde_json::json!({"version": 1, "clock": "yesterday", "tenants": []}),
            "clock",
        ),
        (
            serde_json::json!({"version": 1, "tenants": [], "extra": true}),
            "extra",
        ),
        (
            serde_json::json!({"version": 1, "tenants": [{"id": T, "subscriptions": [{
                "id": U, "applicationId": "a", "creatorId": "a", "resource": "/users",
                "changeType": "updated", "notificationUrl": "https://x.example/",
                "expirationDateTime": "2026-01-01T10:00:00Z"}]}]}),
            "tenants[0].subscriptions[0].resource",
        ),
        (
            serde_json::json!({"version": 1, "tenants": [{"id": T, "subscriptions": [{
                "id": U, "applicationId": "a", "creatorId": "a",
                "resource": format!("/communications/presences/{U}"),
                "changeType": "updated", "notificationUrl": "http://hooks.example/",
                "expirationDateTime": "2026-01-01T10:00:00Z"}]}]}),
            "tenants[0].subscriptions[0].notificationUrl",
        ),
    ];
    for (json, path) in cases {
        let err = doc(json.clone()).unwrap_err();
        assert!(err.contains(path), "{json}: {err}");
    }
}
