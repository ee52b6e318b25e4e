//! `GET /_presenced/users`: the tenant's users with their presence, paged
//! with `$top` and `@odata.nextLink`, filtered by availability, one tenant
//! at a time, for callers with Presence.Read.All.

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{token, TestServer, ALL_SCOPES, APP};

/// The ids of a listing page, in order.
fn ids(page: &Value) -> Vec<String> {
    page["value"]
        .as_array()
        .expect("value is an array")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect()
}

/// Follows nextLinks from `first` (a path), collecting every page.
async fn every_page(server: &TestServer, first: &str, token: &str) -> Vec<Value> {
    let mut pages = vec![];
    let mut next = Some(first.to_string());
    while let Some(path) = next {
        assert!(pages.len() < 20, "the nextLinks never end");
        let page = server.get(&path, token).await.ok_json().clone();
        next = page["@odata.nextLink"].as_str().map(|link| {
            link.strip_prefix(&server.url)
                .expect("the nextLink is on this server")
                .to_string()
        });
        pages.push(page);
    }
    pages
}

#[tokio::test]
async fn pages_through_the_tenants_users_in_id_order() {
    let server = TestServer::start().await;
    let mut users: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for user in &users {
        server
            .set_presence(*user, "Busy", "InACall", Some("PT1H"))
            .await
            .ok_empty();
    }
    users.sort();
    let reader = server.app_token(&["Presence.Read.All"]);

    let pages = every_page(&server, "/_presenced/users?$top=2", &reader).await;
    let sizes: Vec<usize> = pages.iter().map(|p| ids(p).len()).collect();
    assert_eq!(sizes, [2, 2, 1], "five users at two per page");
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    let expected: Vec<String> = users.iter().map(Uuid::to_string).collect();
    assert_eq!(listed, expected, "every user once, in id order");

    let first = &pages[0]["value"][0];
    assert_eq!(first["presence"]["availability"], "Busy");
    assert_eq!(first["presence"]["activity"], "InACall");
    assert_eq!(first["presence"]["id"], expected[0]);
    assert_eq!(first["sessionCount"], 1);
    assert_eq!(first["lastSeenDateTime"], "2026-01-01T09:00:00.0000000Z");
}

#[tokio::test]
async fn filters_by_effective_availability() {
    let server = TestServer::start().await;
    let (busy, away, available) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    server
        .set_presence(busy, "Busy", "InACall", Some("PT1H"))
        .await
        .ok_empty();
    server
        .set_presence(away, "Away", "Away", Some("PT1H"))
        .await
        .ok_empty();
    server
        .set_presence(available, "Available", "Available", Some("PT1H"))
        .await
        .ok_empty();
    let reader = server.app_token(&["Presence.Read.All"]);

    let page = server
        .get(
            "/_presenced/users?$filter=availability%20eq%20'busy'",
            &reader,
        )
        .await;
    assert_eq!(ids(page.ok_json()), [busy.to_string()]);

    let pages = every_page(
        &server,
        "/_presenced/users?$top=1&$filter=availability%20in%20('Away','Available')",
        &reader,
    )
    .await;
    let mut listed: Vec<String> = pages.iter().flat_map(ids).collect();
    listed.sort();
    let mut expected = vec![away.to_string(), available.to_string()];
    expected.sort();
    assert_eq!(listed, expected, "the filter holds across pages");

    // Ten minutes later the Available session has faded to Away.
    server.tick(chrono::TimeDelta::minutes(11)).await;
    let page = server
        .get(
            "/_presenced/users?$filter=availability%20eq%20'Available'",
            &reader,
        )
        .await;
    assert!(ids(page.ok_json()).is_empty(), "{}", page.text);
}

#[tokio::test]
async fn lists_only_the_callers_tenant() {
    let server = TestServer::start().await;
    let mine = Uuid::new_v4();
    server
        .set_presence(mine, "Busy", "InACall", Some("PT1H"))
        .await
        .ok_empty();
    let stranger_tenant = Uuid::new_v4();
    let stranger_user = Uuid::new_v4();
    let stranger = token(
        stranger_tenant,
        Some(stranger_user),
        APP,
        Some(ALL_SCOPES),
        None,
    );
    server
        .post(
            &format!("/v1.0/users/{stranger_user}/presence/setPresence"),
            &stranger,
            serde_json::json!({"sessionId": APP, "availability": "Away", "activity": "Away"}),
        )
        .await
        .ok_empty();

    let reader = server.app_token(&["Presence.Read.All"]);
    let page = server.get("/_presenced/users", &reader).await;
    assert_eq!(ids(page.ok_json()), [mine.to_string()]);
    assert!(page.body.get("@odata.nextLink").is_none(), "one page only");

    let theirs = token(
        stranger_tenant,
        None,
        APP,
        None,
        Some(&["Presence.Read.All".to_string()]),
    );
    let page = server.get("/_presenced/users", &theirs).await;
    assert_eq!(ids(page.ok_json()), [stranger_user.to_string()]);
}

#[tokio::test]
async fn needs_presence_read_all_and_a_valid_query() {
    let server = TestServer::start().await;
    let r = server
        .send(reqwest::Method::GET, "/_presenced/users", None, None)
        .await;
    r.error(401, "InvalidAuthenticationToken");
    let own_only = server.user_token(Uuid::new_v4(), "Presence.Read");
    let r = server.get("/_presenced/users", &own_only).await;
    assert_eq!(r.status, 403, "{}", r.text);

    let reader = server.app_token(&["Presence.Read.All"]);
    for (query, code, says) in [
        ("$top=0", "BadRequest", "$top '0'"),
        ("$top=1000", "BadRequest", "$top '1000'"),
        ("$filter=activity%20eq%20'Busy'", "BadRequest", "$filter"),
        (
            "$filter=availability%20eq%20'Sleeping'",
            "BadRequest",
            "'Sleeping'",
        ),
        ("$skiptoken=nope", "BadRequest", "$skiptoken 'nope'"),
        ("$orderby=id", "BadRequest", "'$orderby'"),
    ] {
        let r = server
            .get(&format!("/_presenced/users?{query}"), &reader)
            .await;
        let message = r.error(400, code);
        assert!(message.contains(says), "{query}: {message}");
    }
}
