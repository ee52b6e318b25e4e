//! Status messages (expiry, zones, the end of time) and work location
//! (manual over automatic, clearing).

use chrono::TimeDelta;
use serde_json::json;
use uuid::Uuid;

use super::minutes;
use crate::helpers::*;

#[tokio::test]
async fn status_message_without_expiry_reads_9999_for_its_owner() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let body = json!({"statusMessage": {"message": {"content": "<p>Out &amp; about</p>", "contentType": "html"}}});
    server
        .post("/v1.0/me/presence/setStatusMessage", &token, body)
        .await
        .ok_empty();
    let r = server.get("/v1.0/me/presence", &token).await;
    let m = &r.ok_json()["statusMessage"];
    assert_eq!(
        m["message"],
        json!({"content": "Out & about", "contentType": "text"})
    );
    assert_eq!(
        m["expiryDateTime"],
        json!({"dateTime": "9999-12-31T23:59:59.9999999", "timeZone": "UTC"})
    );
    assert_eq!(m["publishedDateTime"], "2026-01-01T09:00:00.0000000Z");
    server.advance(TimeDelta::days(3650));
    assert!(server.get("/v1.0/me/presence", &token).await.ok_json()["statusMessage"].is_object());
    // Empty content clears it.
    let clear = json!({"statusMessage": {"message": {"content": "", "contentType": "text"}}});
    server
        .post("/v1.0/me/presence/setStatusMessage", &token, clear)
        .await
        .ok_empty();
    assert!(server.get("/v1.0/me/presence", &token).await.ok_json()["statusMessage"].is_null());
}

#[tokio::test]
async fn status_message_expiry_accepts_iana_zones_and_echoes_them() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let body = json!({"statusMessage": {
        "message": {"content": "lunch", "contentType": "text"},
        "expiryDateTime": {"dateTime": "2026-01-01T10:30:00", "timeZone": "Europe/Berlin"}
    }});
    server
        .post("/v1.0/me/presence/setStatusMessage", &token, body)
        .await
        .ok_empty();
    let m = server.get("/v1.0/me/presence", &token).await.ok_json()["statusMessage"].clone();
    assert_eq!(
        m["expiryDateTime"],
        json!({"dateTime": "2026-01-01T10:30:00.0000000", "timeZone": "Europe/Berlin"})
    );
    // 10:30 in Berlin is 09:30 UTC.
    server.advance(minutes(29));
    assert!(server.get("/v1.0/me/presence", &token).await.ok_json()["statusMessage"].is_object());
    server.advance(minutes(1));
    assert!(server.get("/v1.0/me/presence", &token).await.ok_json()["statusMessage"].is_null());
}

#[tokio::test]
async fn work_location_manual_overrides_automatic_and_clears() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let read = || async {
        server.get("/v1.0/me/presence", &token).await.ok_json()["workLocation"].clone()
    };
    server
        .post(
            "/v1.0/me/presence/setAutomaticLocation",
            &token,
            json!({"workLocationType": "office", "placeId": "bldg-7"}),
        )
        .await
        .ok_empty();
    assert_eq!(
        read().await,
        json!({"workLocationType": "office", "source": "automatic", "placeId": "bldg-7"})
    );
    server
        .post(
            "/v1.0/me/presence/setManualLocation",
            &token,
            json!({"workLocationType": "Remote"}),
        )
        .await
        .ok_empty();
    assert_eq!(
        read().await,
        json!({"workLocationType": "remote", "source": "manual", "placeId": null})
    );
    server
        .post(
            "/v1.0/me/presence/clearAutomaticLocation",
            &token,
            json!({}),
        )
        .await
        .ok_empty();
    assert_eq!(read().await["source"], "manual");
    server
        .post(
            "/v1.0/me/presence/setAutomaticLocation",
            &token,
            json!({"workLocationType": "timeOff"}),
        )
        .await
        .ok_empty();
    server
        .post("/v1.0/me/presence/clearLocation", &token, json!({}))
        .await
        .ok_empty();
    assert_eq!(
        read().await,
        json!({"workLocationType": "unspecified", "source": "none", "placeId": null})
    );
}

#[tokio::test]
async fn status_message_expiry_at_the_end_of_time_means_no_expiry_and_out_of_range_is_400() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let token = server.user_token(user, ALL_SCOPES);
    let with_expiry = |date_time: &str, zone: &str| {
        json!({"statusMessage": {
            "message": {"content": "hi", "contentType": "text"},
            "expiryDateTime": {"dateTime": date_time, "timeZone": zone}
        }})
    };
    // The owner's read-back of "no expiry", sent again in a zone west of UTC.
    let body = with_expiry("9999-12-31T23:59:59.9999999", "Pacific Standard Time");
    server
        .post("/v1.0/me/presence/setStatusMessage", &token, body)
        .await
        .ok_empty();
    let m = server.get("/v1.0/me/presence", &token).await.ok_json()["statusMessage"].clone();
    assert_eq!(
        m["expiryDateTime"],
        json!({"dateTime": "9999-12-31T23:59:59.9999999", "timeZone": "UTC"})
    );
    // Before year 1 in UTC: refused, and the stored message is untouched.
    let body = with_expiry("0001-01-01T00:00:00", "Tokyo Standard Time");
    let message = server
        .post("/v1.0/me/presence/setStatusMessage", &token, body)
        .await
        .error(400, "invalidRequest");
    assert!(message.contains("outside the supported range"), "{message}");
    let r = server.get("/v1.0/me/presence", &token).await;
    assert_eq!(r.ok_json()["statusMessage"]["message"]["content"], "hi");
}
