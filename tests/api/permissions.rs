//! Who may do what (SPEC §3 permission column, §4 "Writing for another
//! user", §5 tenancy, §8 admin): every operation × every kind of caller,
//! tenant isolation, and what another reader may see of a status message.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

/// The message of the 400 an application token gets on `/me` (SPEC §4).
const ME_IS_DELEGATED_ONLY: &str = "/me request is only valid with delegated authentication flow.";

/// The operations of SPEC §3.
#[derive(Debug, Clone, Copy)]
enum Op {
    Get,
    GetMany,
    SetPresence,
    ClearPresence,
    SetPreferred,
    ClearPreferred,
    SetStatusMessage,
    SetManualLocation,
    SetAutomaticLocation,
    ClearLocation,
    ClearAutomaticLocation,
}

/// The columns of the table, in order.
const OPS: [Op; 11] = [
    Op::Get,
    Op::GetMany,
    Op::SetPresence,
    Op::ClearPresence,
    Op::SetPreferred,
    Op::ClearPreferred,
    Op::SetStatusMessage,
    Op::SetManualLocation,
    Op::SetAutomaticLocation,
    Op::ClearLocation,
    Op::ClearAutomaticLocation,
];

impl Op {
    /// The action's path segment and body (None for Get and GetMany).
    fn action(self) -> Option<(&'static str, Value)> {
        Some(match self {
            Op::Get | Op::GetMany => return None,
            Op::SetPresence => (
                "setPresence",
                json!({"sessionId": APP, "availability": "Busy", "activity": "InACall"}),
            ),
            Op::ClearPresence => ("clearPresence", json!({"sessionId": APP})),
            Op::SetPreferred => (
                "setUserPreferredPresence",
                json!({"availability": "Away", "activity": "Away"}),
            ),
            Op::ClearPreferred => ("clearUserPreferredPresence", json!({})),
            Op::SetStatusMessage => (
                "setStatusMessage",
                json!({"statusMessage": {"message": {"content": "Out to lunch", "contentType": "text"}}}),
            ),
            Op::SetManualLocation => ("setManualLocation", json!({"workLocationType": "office"})),
            Op::SetAutomaticLocation => (
                "setAutomaticLocation",
                json!({"workLocationType": "remote"}),
            ),
            Op::ClearLocation => ("clearLocation", json!({})),
            Op::ClearAutomaticLocation => ("clearAutomaticLocation", json!({})),
        })
    }
}

/// The three path families of SPEC §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Users,
    Communications,
    Me,
}

impl Family {
    /// The presence resource path of `user` in this family.
    fn base(self, user: Uuid) -> String {
        match self {
            Family::Users => format!("/v1.0/users/{user}/presence"),
            Family::Communications => format!("/v1.0/communications/presences/{user}"),
            Family::Me => "/v1.0/me/presence".to_string(),
        }
    }
}

/// What a request must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// 200.
    Ok,
    /// 403 `Forbidden`.
    No,
    /// 401 `InvalidAuthenticationToken`.
    Unauth,
}

use Want::{No, Ok as Yes, Unauth};

/// Whose token a caller holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// A delegated token of the subject user.
    Subject,
    /// A delegated token of another user of the tenant.
    OtherUser,
    /// An application token.
    App,
    /// No token at all.
    Nobody,
}

#[tokio::test]
async fn every_operation_answers_each_caller_as_the_permission_table_says() {
    let server = TestServer::start().await;
    let subject = Uuid::new_v4();
    let other = Uuid::new_v4();
    let owner = server.user_token(subject, ALL_SCOPES);

    // Columns: get, getMany, setPresence, clearPresence, setUserPreferred,
    // clearUserPreferred, setStatusMessage, setManualLocation,
    // setAutomaticLocation, clearLocation, clearAutomaticLocation.
    #[rustfmt::skip]
    let table: Vec<(&str, Who, &str, [Want; 11])> = vec![
        ("self, Presence.Read", Who::Subject, "Presence.Read",
            [Yes, No, No, No, No, No, No, No, No, No, No]),
        ("self, Presence.Read.All", Who::Subject, "Presence.Read.All",
            [Yes, Yes, No, No, No, No, No, No, No, No, No]),
        ("self, Presence.ReadWrite", Who::Subject, "Presence.ReadWrite",
            [Yes, No, Yes, Yes, Yes, Yes, Yes, Yes, Yes, Yes, Yes]),
        ("self, User.Read", Who::Subject, "User.Read",
            [No, No, No, No, No, No, No, No, No, No, No]),
        ("other user, Presence.Read.All", Who::OtherUser, "Presence.Read.All",
            [Yes, Yes, No, No, No, No, No, No, No, No, No]),
        ("other user, Presence.ReadWrite", Who::OtherUser, "Presence.ReadWrite",
            [No, No, No, No, No, No, No, No, No, No, No]),
        ("app, Presence.Read.All", Who::App, "Presence.Read.All",
            [Yes, Yes, No, No, No, No, No, No, No, No, No]),
        ("app, Presence.ReadWrite.All", Who::App, "Presence.ReadWrite.All",
            [Yes, Yes, Yes, Yes, Yes, Yes, Yes, No, No, No, No]),
        ("app, no role", Who::App, "",
            [No, No, No, No, No, No, No, No, No, No, No]),
        ("no token", Who::Nobody, "",
            [Unauth, Unauth, Unauth, Unauth, Unauth, Unauth, Unauth, Unauth, Unauth, Unauth, Unauth]),
    ];

    let mut failures = Vec::new();
    let mut checked = 0;
    for (caller, who, grant, wants) in table {
        let token = match who {
            Who::Subject => Some(server.user_token(subject, grant)),
            Who::OtherUser => Some(server.user_token(other, grant)),
            Who::App => {
                let roles: Vec<&str> = grant.split_whitespace().collect();
                Some(server.app_token(&roles))
            }
            Who::Nobody => None,
        };
        for (op, want) in OPS.into_iter().zip(wants) {
            // /me names the caller, so it only reaches "the subject" for the
            // subject's own token (and an application token, refused).
            let families: &[Family] = match (op, who) {
                (Op::GetMany, _) => &[Family::Users],
                (_, Who::OtherUser) => &[Family::Users, Family::Communications],
                _ => &[Family::Users, Family::Communications, Family::Me],
            };
            for &family in families {
                // Let clearPresence find a session to clear when allowed.
                if matches!(op, Op::ClearPresence) {
                    server
                        .set_presence(subject, "Available", "Available", Some("PT1H"))
                        .await
                        .ok_empty();
                }
                let before = owner_view(&server, subject, &owner).await;
                let (method, path, body) = match op.action() {
                    None if matches!(op, Op::GetMany) => (
                        Method::POST,
                        "/v1.0/communications/getPresencesByUserId".to_string(),
                        Some(json!({"ids": [subject.to_string()]})),
                    ),
                    None => (Method::GET, family.base(subject), None),
                    Some((action, body)) => (
                        Method::POST,
                        format!("{}/{action}", family.base(subject)),
                        Some(body),
                    ),
                };
                let r = server
                    .send(method.clone(), &path, token.as_deref(), body)
                    .await;
                checked += 1;
                let label = format!("{caller} → {op:?} ({method} {path})");
                let app_on_me = who == Who::App && family == Family::Me;
                let problem = if app_on_me {
                    expect_error(&r, 400, "invalidRequest", Some(ME_IS_DELEGATED_ONLY))
                } else {
                    match want {
                        Yes => expect_success(&r, op, subject),
                        No => expect_error(&r, 403, "Forbidden", None),
                        Unauth => expect_error(&r, 401, "InvalidAuthenticationToken", None),
                    }
                };
                if let Some(problem) = problem {
                    failures.push(format!("{label}: {problem}"));
                }
                let refused = app_on_me || want != Yes;
                if refused {
                    let after = owner_view(&server, subject, &owner).await;
                    if after != before {
                        failures.push(format!(
                            "{label}: refused, yet changed the presence from {before} to {after}"
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 250, "only {checked} requests checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} permission checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The subject's presence as its owner reads it.
async fn owner_view(server: &TestServer, user: Uuid, owner: &str) -> Value {
    server
        .get(&format!("/v1.0/users/{user}/presence"), owner)
        .await
        .ok_json()
        .clone()
}

/// What is wrong with `r` as an allowed `op` on `subject`, if anything.
fn expect_success(r: &Reply, op: Op, subject: Uuid) -> Option<String> {
    let got = || format!("expected 200, got {} {}", r.status.as_u16(), r.text);
    if r.status.as_u16() != 200 {
        return Some(got());
    }
    match op {
        Op::Get => (r.body["id"] != subject.to_string()).then(got),
        Op::GetMany => (r.body["value"][0]["id"] != subject.to_string()).then(got),
        _ => (!r.text.is_empty()).then(|| format!("expected an empty body, got {}", r.text)),
    }
}

/// What is wrong with `r` as a Graph error, if anything.
fn expect_error(r: &Reply, status: u16, code: &str, message: Option<&str>) -> Option<String> {
    let got = format!("got {} {}", r.status.as_u16(), r.text);
    let error = &r.body["error"];
    if r.status.as_u16() != status || error["code"] != code {
        return Some(format!("expected {status} {code}, {got}"));
    }
    let text = error["message"].as_str().unwrap_or_default();
    match message {
        Some(m) if text != m => Some(format!("expected message {m:?}, {got}")),
        None if text.is_empty() => Some(format!("expected a message, {got}")),
        _ => None,
    }
}

#[tokio::test]
async fn admin_endpoints_need_an_application_token_with_presenced_admin() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let admin = server.app_token(&["Presenced.Admin"]);
    let app_without_admin = server.app_token(&["Presence.ReadWrite.All", "Presence.Read.All"]);
    let delegated = server.user_token(user, ALL_SCOPES);
    // A delegated token carrying the role anyway: roles never count on a
    // delegated token.
    let delegated_with_role = token_with(
        |c| c.roles = Some(vec!["Presenced.Admin".to_string()]),
        server.tenant,
        Some(user),
        Some(ALL_SCOPES),
    );
    let session_path = format!("/_presenced/users/{user}/clientSessions/desktop");
    let requests: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/_presenced/clock", None),
        (
            Method::POST,
            "/_presenced/clock",
            Some(json!({"advance": "PT1M"})),
        ),
        (
            Method::PUT,
            &session_path,
            Some(json!({"availability": "Busy", "activity": "InAMeeting"})),
        ),
    ];
    let callers: Vec<(&str, Option<&str>, u16, &str)> = vec![
        ("delegated", Some(&delegated), 403, "Forbidden"),
        (
            "delegated with the role claim",
            Some(&delegated_with_role),
            403,
            "Forbidden",
        ),
        (
            "app without the role",
            Some(&app_without_admin),
            403,
            "Forbidden",
        ),
        ("no token", None, 401, "InvalidAuthenticationToken"),
    ];
    for (caller, token, status, code) in callers {
        for (method, path, body) in &requests {
            let r = server.send(method.clone(), path, token, body.clone()).await;
            let message = r.error(status, code);
            assert!(!message.is_empty(), "{caller} {method} {path}");
        }
    }
    // Nothing the refused callers sent took effect.
    assert_eq!(presenced::clock::Clock::now(&server.clock), t0());
    assert_eq!(
        server.presence_of(user).await,
        ("Offline".into(), "Offline".into())
    );

    // The admin may do all three.
    for (method, path, body) in &requests {
        let r = server
            .send(method.clone(), path, Some(&admin), body.clone())
            .await;
        assert_eq!(r.status.as_u16(), 200, "admin {method} {path}: {}", r.text);
    }
    assert_eq!(
        presenced::clock::Clock::now(&server.clock),
        t0() + chrono::TimeDelta::minutes(1)
    );
    assert_eq!(
        server.presence_of(user).await,
        ("Busy".into(), "InAMeeting".into())
    );
}

/// A token of `tenant` (delegated when `user` is given, else an application
/// token with `roles`).
fn tenant_token(tenant: Uuid, user: Option<Uuid>, roles: &[&str]) -> String {
    match user {
        Some(_) => token(tenant, user, APP, Some(ALL_SCOPES), None),
        None => {
            let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
            token(tenant, None, APP, None, Some(&roles))
        }
    }
}

#[tokio::test]
async fn another_tenant_can_neither_read_nor_write_this_tenants_presence() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let tenant_b = Uuid::new_v4();
    let a_user = server.user_token(user, ALL_SCOPES);
    // The same user GUID, in tenant B.
    let b_user = tenant_token(tenant_b, Some(user), &[]);
    let b_app = tenant_token(tenant_b, None, &["Presence.ReadWrite.All"]);
    let base = format!("/v1.0/users/{user}/presence");

    server
        .set_presence(user, "Busy", "InACall", Some("PT1H"))
        .await
        .ok_empty();
    server
        .post(
            &format!("{base}/setStatusMessage"),
            &a_user,
            json!({"statusMessage": {"message": {"content": "Tenant A secret", "contentType": "text"}}}),
        )
        .await
        .ok_empty();
    let a_before = server.get(&base, &a_user).await.ok_json().clone();
    assert_eq!(a_before["availability"], "Busy");

    // B reads nothing of A, by any path and either token kind.
    let b_reads = [
        (b_user.as_str(), "/v1.0/me/presence".to_string()),
        (b_user.as_str(), base.clone()),
        (b_app.as_str(), base.clone()),
        (
            b_app.as_str(),
            format!("/v1.0/communications/presences/{user}"),
        ),
    ];
    for (token, path) in &b_reads {
        let r = server.get(path, token).await;
        let body = r.ok_json();
        assert_eq!(body["availability"], "Offline", "{path}: {body}");
        assert_eq!(body["activity"], "Offline", "{path}: {body}");
        assert_eq!(body["statusMessage"], Value::Null, "{path}: {body}");
        assert!(!r.text.contains("Tenant A secret"), "{path}: {}", r.text);
    }
    for token in [&b_user, &b_app] {
        let r = server
            .post(
                "/v1.0/communications/getPresencesByUserId",
                token,
                json!({"ids": [user.to_string()]}),
            )
            .await;
        let v = &r.ok_json()["value"][0];
        assert_eq!(v["availability"], "Offline", "{v}");
        assert_eq!(v["statusMessage"], Value::Null, "{v}");
    }
    // B has no session of its own to clear, whatever A has.
    server
        .post(
            &format!("{base}/clearPresence"),
            &b_user,
            json!({"sessionId": APP}),
        )
        .await
        .error(404, "itemNotFound");

    // B writes; they land in B only.
    server
        .post(
            &format!("{base}/setPresence"),
            &b_user,
            json!({"sessionId": APP, "availability": "Available", "activity": "Available", "expirationDuration": "PT1H"}),
        )
        .await
        .ok_empty();
    server
        .post(
            &format!("{base}/setStatusMessage"),
            &b_user,
            json!({"statusMessage": {"message": {"content": "Tenant B note", "contentType": "text"}}}),
        )
        .await
        .ok_empty();
    server
        .post(
            &format!("{base}/setManualLocation"),
            &b_user,
            json!({"workLocationType": "remote"}),
        )
        .await
        .ok_empty();
    server
        .post(
            &format!("{base}/setUserPreferredPresence"),
            &b_app,
            json!({"availability": "BeRightBack", "activity": "BeRightBack"}),
        )
        .await
        .ok_empty();

    let a_after = server.get(&base, &a_user).await.ok_json().clone();
    assert_eq!(a_after, a_before, "tenant B's writes changed tenant A");

    let b_view = server.get(&base, &b_user).await.ok_json().clone();
    assert_eq!(b_view["availability"], "BeRightBack", "{b_view}");
    assert_eq!(
        b_view["statusMessage"]["message"]["content"],
        "Tenant B note"
    );
    assert_eq!(b_view["workLocation"]["workLocationType"], "remote");

    // B clearing its own session leaves A's in place.
    server
        .post(
            &format!("{base}/clearPresence"),
            &b_user,
            json!({"sessionId": APP}),
        )
        .await
        .ok_empty();
    assert_eq!(
        server.presence_of(user).await,
        ("Busy".into(), "InACall".into())
    );
    let b_view = server.get(&base, &b_user).await.ok_json().clone();
    assert_eq!(b_view["availability"], "Offline", "{b_view}");
}

#[tokio::test]
async fn only_the_owner_sees_when_a_status_message_expires_and_was_published() {
    let server = TestServer::start().await;
    let user = Uuid::new_v4();
    let reader = Uuid::new_v4();
    let owner = server.user_token(user, ALL_SCOPES);
    let other = server.user_token(reader, "Presence.Read.All");
    let app = server.app_token(&["Presence.Read.All"]);
    server
        .post(
            &format!("/v1.0/users/{user}/presence/setStatusMessage"),
            &owner,
            json!({"statusMessage": {
                "message": {"content": "Back at 3", "contentType": "text"},
                "expiryDateTime": {"dateTime": "2026-01-01T15:00:00", "timeZone": "W. Europe Standard Time"}
            }}),
        )
        .await
        .ok_empty();

    let single_paths = [
        format!("/v1.0/users/{user}/presence"),
        format!("/beta/communications/presences/{user}"),
    ];
    let many = json!({"ids": [user.to_string()]});
    let get_many = "/v1.0/communications/getPresencesByUserId";

    // Other readers: the message, but not its expiry nor publication.
    for (who, token) in [("another user", &other), ("an application", &app)] {
        let mut seen = Vec::new();
        for path in &single_paths {
            seen.push((
                path.clone(),
                server.get(path, token).await.ok_json()["statusMessage"].clone(),
            ));
        }
        let r = server.post(get_many, token, many.clone()).await;
        seen.push((
            get_many.to_string(),
            r.ok_json()["value"][0]["statusMessage"].clone(),
        ));
        for (path, m) in seen {
            assert_eq!(m["message"]["content"], "Back at 3", "{who} {path}: {m}");
            assert_eq!(m["message"]["contentType"], "text", "{who} {path}: {m}");
            assert!(
                m.get("expiryDateTime").is_none(),
                "{who} {path} sees expiryDateTime: {m}"
            );
            assert!(
                m.get("publishedDateTime").is_none(),
                "{who} {path} sees publishedDateTime: {m}"
            );
        }
    }

    // The owner sees both, by every path (getPresencesByUserId included).
    let mut seen = Vec::new();
    for path in single_paths
        .iter()
        .cloned()
        .chain(["/v1.0/me/presence".to_string()])
    {
        let m = server.get(&path, &owner).await.ok_json()["statusMessage"].clone();
        seen.push((path, m));
    }
    let r = server.post(get_many, &owner, many).await;
    seen.push((
        get_many.to_string(),
        r.ok_json()["value"][0]["statusMessage"].clone(),
    ));
    for (path, m) in seen {
        assert_eq!(m["message"]["content"], "Back at 3", "{path}: {m}");
        assert_eq!(
            m["expiryDateTime"],
            json!({"dateTime": "2026-01-01T15:00:00.0000000", "timeZone": "W. Europe Standard Time"}),
            "{path}: {m}"
        );
        assert_eq!(
            m["publishedDateTime"], "2026-01-01T09:00:00.0000000Z",
            "{path}: {m}"
        );
    }
}
