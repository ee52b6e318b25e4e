//! Time rules (issue: hardening): no leap seconds, exactly 7 fractional
//! digits, the emulator clock's 1970…9999 range with a `sequenceNumber`
//! that orders changes at both ends, and one rule for daylight-saving gaps
//! and overlaps (the offset before a gap; the first of two readings).

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

const RANGE: &str =
    "the clock can only show instants from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z";

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn admin(server: &TestServer) -> String {
    server.app_token(&["Presenced.Admin"])
}

async fn move_clock(server: &TestServer, body: Value) -> Reply {
    server.post("/_presenced/clock", &admin(server), body).await
}

/// Sets `user`'s status message expiring at `date_time` in `zone`.
async fn set_status(server: &TestServer, user: Uuid, date_time: &str, zone: &str) -> Reply {
    let body = json!({"statusMessage": {
        "message": {"content": "back soon", "contentType": "text"},
        "expiryDateTime": {"dateTime": date_time, "timeZone": zone},
    }});
    let token = server.user_token(user, ALL_SCOPES);
    server
        .post("/v1.0/me/presence/setStatusMessage", &token, body)
        .await
}

/// `user`'s presence as the user reads it.
async fn own_presence(server: &TestServer, user: Uuid) -> Value {
    let token = server.user_token(user, ALL_SCOPES);
    server
        .get("/v1.0/me/presence", &token)
        .await
        .ok_json()
        .clone()
}

#[tokio::test]
async fn status_message_expiry_with_second_60_is_400() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    for leap in ["2026-06-30T23:59:60", "2026-06-30T23:59:60.5000000"] {
        let message = set_status(&server, user, leap, "UTC")
            .await
            .error(400, "invalidRequest");
        assert_eq!(
            message,
            format!("'{leap}' is not a valid dateTime; expected a local date and time without offset such as 2022-10-18T17:05:33.2079781")
        );
    }
    assert!(own_presence(&server, user).await["statusMessage"].is_null());
}

#[tokio::test]
async fn status_message_expiry_round_trips_with_seven_fractional_digits() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    for (sent, read) in [
        ("2026-01-02T10:00:00", "2026-01-02T10:00:00.0000000"),
        ("2026-01-02T10:00:00.5", "2026-01-02T10:00:00.5000000"),
        ("2026-01-02T10:00:59.2079781", "2026-01-02T10:00:59.2079781"),
    ] {
        set_status(&server, user, sent, "Pacific Standard Time")
            .await
            .ok_empty();
        let m = &own_presence(&server, user).await["statusMessage"];
        assert_eq!(
            m["expiryDateTime"],
            json!({"dateTime": read, "timeZone": "Pacific Standard Time"}),
            "{sent}"
        );
        assert_eq!(m["publishedDateTime"], "2026-01-01T09:00:00.0000000Z");
    }
}

#[tokio::test]
async fn clock_set_before_1970_is_400() {
    let server = TestServer::start_at(instant("1970-01-01T00:00:00Z")).await;
    let r = server.get("/_presenced/clock", &admin(&server)).await;
    assert_eq!(r.ok_json()["now"], "1970-01-01T00:00:00.0000000Z");
    for before in ["1969-12-31T23:59:59Z", "1970-01-01T00:59:59+01:00"] {
        let message = move_clock(&server, json!({ "set": before }))
            .await
            .error(400, "invalidRequest");
        assert_eq!(
            message,
            format!("'{before}' is outside the emulator clock's range; {RANGE}.")
        );
    }
    let r = server.get("/_presenced/clock", &admin(&server)).await;
    assert_eq!(r.ok_json()["now"], "1970-01-01T00:00:00.0000000Z");
}

#[tokio::test]
async fn clock_set_before_1970_names_the_range_even_from_a_later_time() {
    let server = TestServer::start().await;
    let message = move_clock(&server, json!({"set": "1969-07-20T20:17:40Z"}))
        .await
        .error(400, "invalidRequest");
    assert_eq!(
        message,
        format!("'1969-07-20T20:17:40Z' is outside the emulator clock's range; {RANGE}.")
    );
}

#[tokio::test]
async fn clock_past_the_end_of_9999_is_400_with_the_range() {
    let server = TestServer::start().await;
    let message = move_clock(&server, json!({"set": "9999-12-31T23:59:59.5Z"}))
        .await
        .error(400, "invalidRequest");
    assert_eq!(
        message,
        format!("'9999-12-31T23:59:59.5Z' is outside the emulator clock's range; {RANGE}.")
    );
    let message = move_clock(&server, json!({"advance": "P3000000D"}))
        .await
        .error(400, "invalidRequest");
    assert_eq!(message, format!("{RANGE}."));
}

#[tokio::test]
async fn clock_set_to_second_60_is_400() {
    let server = TestServer::start().await;
    let message = move_clock(&server, json!({"set": "2026-06-30T23:59:60Z"}))
        .await
        .error(400, "invalidRequest");
    assert_eq!(
        message,
        "'2026-06-30T23:59:60Z' is not an RFC 3339 instant such as 2026-01-01T09:00:00Z."
    );
}

/// setPresence Available at the clock's time, then a fade 5 minutes on: the
/// sequence number holds until the fade and then sorts higher.
async fn sequence_number_rises_with_a_fade(server: &TestServer) {
    let user = Uuid::new_v4();
    server
        .set_presence(user, "Available", "Available", Some("PT15M"))
        .await
        .ok_empty();
    let written = own_presence(server, user).await["sequenceNumber"].clone();
    server.tick(TimeDelta::seconds(299)).await;
    let held = own_presence(server, user).await;
    assert_eq!(held["sequenceNumber"], written);
    server.tick(TimeDelta::seconds(1)).await;
    let faded = own_presence(server, user).await;
    assert_eq!(faded["activity"], "AvailableInactive");
    let (written, faded) = (
        written.as_str().unwrap(),
        faded["sequenceNumber"].as_str().unwrap(),
    );
    assert!(faded > written, "{faded} > {written}");
}

#[tokio::test]
async fn sequence_number_rises_at_the_start_of_the_clock_range() {
    let server = TestServer::start_at(instant("1970-01-01T00:00:00Z")).await;
    sequence_number_rises_with_a_fade(&server).await;
}

#[tokio::test]
async fn sequence_number_rises_at_the_end_of_the_clock_range() {
    let server = TestServer::start().await;
    move_clock(&server, json!({"set": "9999-12-31T23:54:59Z"}))
        .await
        .ok_json();
    sequence_number_rises_with_a_fade(&server).await;
    let r = server.get("/_presenced/clock", &admin(&server)).await;
    assert_eq!(r.ok_json()["now"], "9999-12-31T23:59:59.0000000Z");
}

#[tokio::test]
async fn status_message_expiring_in_a_dst_gap_reads_back_consistently() {
    // Berlin springs forward on 2026-03-29 (02:00 CET → 03:00 CEST), Los
    // Angeles on 2026-03-08 (02:00 PST → 03:00 PDT). A time in the gap is
    // read with the offset before it: moved forward by the gap's hour.
    for (zone, sent, read, expires) in [
        (
            "W. Europe Standard Time",
            "2026-03-29T02:15:00",
            "2026-03-29T03:15:00.0000000",
            "2026-03-29T01:15:00Z",
        ),
        (
            "W. Europe Standard Time",
            "2026-03-29T02:30:00",
            "2026-03-29T03:30:00.0000000",
            "2026-03-29T01:30:00Z",
        ),
        (
            "Pacific Standard Time",
            "2026-03-08T02:30:00",
            "2026-03-08T03:30:00.0000000",
            "2026-03-08T10:30:00Z",
        ),
    ] {
        let server = TestServer::start().await;
        let user = Uuid::new_v4();
        set_status(&server, user, sent, zone).await.ok_empty();
        let m = &own_presence(&server, user).await["statusMessage"];
        assert_eq!(
            m["expiryDateTime"],
            json!({"dateTime": read, "timeZone": zone}),
            "{sent} in {zone}"
        );
        // It shows until that instant and not at it.
        let expires = instant(expires);
        server.tick(expires - t0() - TimeDelta::seconds(1)).await;
        let before = own_presence(&server, user).await;
        assert!(before["statusMessage"].is_object(), "{sent} in {zone}");
        server.tick(TimeDelta::seconds(1)).await;
        let after = own_presence(&server, user).await;
        assert!(after["statusMessage"].is_null(), "{sent} in {zone}");
    }
}

#[tokio::test]
async fn status_message_expiring_in_a_dst_overlap_expires_at_the_first_occurrence() {
    // Los Angeles falls back on 2026-11-01 (02:00 PDT → 01:00 PST): 01:30
    // happens twice; the first, 08:30Z, is the expiry.
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let zone = "Pacific Standard Time";
    set_status(&server, user, "2026-11-01T01:30:00", zone)
        .await
        .ok_empty();
    let m = &own_presence(&server, user).await["statusMessage"];
    assert_eq!(
        m["expiryDateTime"],
        json!({"dateTime": "2026-11-01T01:30:00.0000000", "timeZone": zone})
    );
    server
        .tick(instant("2026-11-01T08:30:00Z") - t0() - TimeDelta::seconds(1))
        .await;
    assert!(own_presence(&server, user).await["statusMessage"].is_object());
    server.tick(TimeDelta::seconds(1)).await;
    assert!(own_presence(&server, user).await["statusMessage"].is_null());
}
