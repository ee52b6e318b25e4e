//! `$select` on presence reads (SPEC §2): only the named properties plus
//! `id`, on the three read paths and on getPresencesByUserId items; unknown
//! properties and other OData options are Graph's 400.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn select_returns_only_the_named_properties_plus_id() {
    let server = TestServer::start().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    server
        .set_presence(alice, "Busy", "InACall", None)
        .await
        .ok_empty();
    let token = server.user_token(alice, ALL_SCOPES);
    for path in presence_paths(alice) {
        let r = server
            .get(&format!("{path}?$select=availability,activity"), &token)
            .await;
        let body = r.ok_json();
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            vec!["@odata.context", "activity", "availability", "id"],
            "{path}: {}",
            r.text
        );
        assert_eq!(body["availability"], "Busy");
        assert_eq!(body["id"], alice.to_string());
        assert!(
            body["@odata.context"].as_str().unwrap().ends_with(&format!(
                "$metadata#users('{alice}')/presence(availability,activity)/$entity"
            )),
            "{}",
            r.text
        );
    }
    // Encoded, any case; a null status message stays when selected.
    let r = server
        .get(
            &format!("/v1.0/users/{alice}/presence?%24SELECT=StatusMessage"),
            &token,
        )
        .await;
    let body = r.ok_json();
    assert_eq!(body["statusMessage"], Value::Null);
    assert!(body.as_object().unwrap().contains_key("statusMessage"));
    assert!(body.get("availability").is_none());
    // getPresencesByUserId applies it to each item.
    let r = server
        .post(
            "/v1.0/communications/getPresencesByUserId?$select=activity",
            &token,
            json!({"ids": [alice, bob]}),
        )
        .await;
    let value = r.ok_json()["value"].as_array().unwrap().clone();
    assert_eq!(
        value[0],
        json!({"id": alice.to_string(), "activity": "InACall"})
    );
    assert_eq!(
        value[1],
        json!({"id": bob.to_string(), "activity": "Offline"})
    );
}

#[tokio::test]
async fn unknown_select_properties_and_other_odata_options_are_400() {
    let server = TestServer::start().await;
    let alice = Uuid::new_v4();
    let token = server.user_token(alice, ALL_SCOPES);
    let r = server
        .get("/v1.0/me/presence?$select=availability,mood", &token)
        .await;
    assert_eq!(
        r.error(400, "BadRequest"),
        "Could not find a property named 'mood' on type 'microsoft.graph.presence'."
    );
    for option in [
        "$filter=availability eq 'Busy'",
        "$expand=x",
        "$orderby=id",
        "$top=1",
        "$skip=1",
        "$count=true",
        "$search=x",
    ] {
        let r = server
            .get(&format!("/v1.0/me/presence?{option}"), &token)
            .await;
        let name = option.split('=').next().unwrap();
        assert_eq!(
            r.error(400, "BadRequest"),
            format!("Query option '{name}' is not supported on presence; only $select is."),
            "{option}"
        );
    }
    let r = server
        .post(
            "/v1.0/communications/getPresencesByUserId?$top=5",
            &token,
            json!({"ids": [alice]}),
        )
        .await;
    r.error(400, "BadRequest");
    // Query parameters that are not OData's are ignored, as Graph does.
    server
        .get("/v1.0/me/presence?cachebuster=1", &token)
        .await
        .ok_json();
    // Without permission, the query is never looked at.
    let other = Uuid::new_v4();
    let r = server
        .get(
            &format!("/v1.0/users/{other}/presence?$select=mood"),
            &server.user_token(alice, "Presence.Read"),
        )
        .await;
    r.error(403, "Forbidden");
}
