//! The test server: the real router on a real listener, backed by SQLite in
//! a temp dir and a manual clock, plus a token minter and request helpers.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use presenced::app::App;
use presenced::auth::{mint_hs256, MintClaims};
use presenced::clock::{wall_now, Clock, ManualClock};
use presenced::config::{Config, FileConfig};
use presenced::notify::Notifier;
use presenced::store::sqlite::SqliteStore;
use presenced::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// The HS256 secret every test server trusts.
pub const SECRET: &[u8] = b"presenced-test-secret-0123456789abcdef";
/// The application id test tokens carry (and the sessionId apps must use).
pub const APP: &str = "22553876-f5ab-4529-bffb-cfe50aa89f87";
/// Delegated scopes that allow everything a user may do for themselves.
pub const ALL_SCOPES: &str = "Presence.ReadWrite Presence.Read.All";

/// The instant every test server's clock starts at.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
}

/// A running test server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// The server's presence clock.
    pub clock: ManualClock,
    /// A tenant of its own.
    pub tenant: Uuid,
    /// The app's notifier (subscriptions, scheduler pass, deliveries).
    pub notifier: Arc<Notifier>,
    /// The temp dir holding the database (deleted with the server).
    _dir: tempfile::TempDir,
    /// Dropping it (with the server) stops the server.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// A response: status, headers and parsed JSON (Null when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// Asserts a Graph error with `status` and `code` and returns its message.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
        assert_eq!(
            self.body["error"]["code"], code,
            "code; body: {}",
            self.text
        );
        let inner = &self.body["error"]["innerError"];
        assert!(
            inner["request-id"].as_str().is_some_and(|s| !s.is_empty()),
            "{}",
            self.text
        );
        assert!(inner["date"].is_string(), "{}", self.text);
        assert_eq!(
            self.headers["content-type"].to_str().unwrap(),
            "application/json",
            "errors are JSON"
        );
        self.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Asserts 200 with an empty body (Graph actions).
    #[track_caller]
    pub fn ok_empty(&self) {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.text);
        assert_eq!(self.text, "", "actions answer an empty body");
    }

    /// Asserts 200 and returns the JSON body.
    #[track_caller]
    pub fn ok_json(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.text);
        &self.body
    }
}

impl TestServer {
    /// Starts a server with a fresh temp dir.
    pub async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap()).await
    }

    /// Starts a server whose clock reads `start`.
    pub async fn start_at(start: DateTime<Utc>) -> Self {
        Self::start_with(tempfile::tempdir().unwrap(), start).await
    }

    /// Starts a server on an existing data dir (restart tests).
    pub async fn start_in(dir: tempfile::TempDir) -> Self {
        Self::start_with(dir, t0()).await
    }

    async fn start_with(dir: tempfile::TempDir, start: DateTime<Utc>) -> Self {
        Self::start_configured(dir, start, |_| {}).await
    }

    /// Starts a server whose configuration `edit` adjusts (flags as in the
    /// config file), built exactly as the binary builds it: `App::build`
    /// over a SQLite store in `dir` and a manual clock reading `start`.
    pub async fn start_configured(
        dir: tempfile::TempDir,
        start: DateTime<Utc>,
        edit: impl FnOnce(&mut FileConfig),
    ) -> Self {
        let secret_file = dir.path().join("test-secret");
        std::fs::write(&secret_file, SECRET).unwrap();
        let mut flags = FileConfig {
            data_dir: Some(dir.path().to_path_buf()),
            jwt_secret_file: Some(secret_file),
            manual_clock: Some(true),
            ..FileConfig::default()
        };
        edit(&mut flags);
        let config = Config::merge(flags, FileConfig::default(), false).unwrap();
        let clock = ManualClock::new(start);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let app = App::build(&config, store, Arc::new(clock.clone()) as Arc<dyn Clock>)
            .await
            .unwrap();
        let notifier = app.notifier().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("{}://{}", app.scheme(), listener.local_addr().unwrap());
        let mut client = reqwest::Client::builder();
        if let Some(cert) = app.self_signed_certificate() {
            let pem = std::fs::read(cert).unwrap();
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        let client = client.build().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            app.serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            url,
            client,
            clock,
            tenant: Uuid::new_v4(),
            notifier,
            _dir: dir,
            _shutdown: tx,
        }
    }

    /// Moves the presence clock forward and processes every transition up
    /// to the new time (queueing their notifications), as the emulator's
    /// clock endpoint does.
    pub async fn tick(&self, by: TimeDelta) {
        let now = self.clock.advance(by).unwrap();
        self.notifier.run_due(now).await.unwrap();
    }

    /// Moves the presence clock forward.
    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by).unwrap();
    }

    /// A delegated token for `user` in this server's tenant.
    pub fn user_token(&self, user: Uuid, scopes: &str) -> String {
        token(self.tenant, Some(user), APP, Some(scopes), None)
    }

    /// An application token in this server's tenant.
    pub fn app_token(&self, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        token(self.tenant, None, APP, None, Some(&roles))
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{}", self.url, path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        reply(req.send().await.unwrap()).await
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(token), None).await
    }

    /// POST JSON with a token.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(token), Some(body)).await
    }

    /// PUT JSON with a token.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(token), Some(body)).await
    }

    /// PATCH JSON with a token.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// DELETE with a token.
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.send(Method::DELETE, path, Some(token), None).await
    }

    /// setPresence for `user` as the test app (delegated self token).
    pub async fn set_presence(
        &self,
        user: Uuid,
        availability: &str,
        activity: &str,
        duration: Option<&str>,
    ) -> Reply {
        let mut body =
            json!({ "sessionId": APP, "availability": availability, "activity": activity });
        if let Some(d) = duration {
            body["expirationDuration"] = json!(d);
        }
        let token = self.user_token(user, ALL_SCOPES);
        self.post(
            &format!("/v1.0/users/{user}/presence/setPresence"),
            &token,
            body,
        )
        .await
    }

    /// setUserPreferredPresence with `body` for `user` (delegated self token).
    pub async fn set_preferred(&self, user: Uuid, body: Value) -> Reply {
        let path = format!("/v1.0/users/{user}/presence/setUserPreferredPresence");
        self.post(&path, &self.user_token(user, ALL_SCOPES), body)
            .await
    }

    /// A subscription body for `users` delivered to `hook`, expiring in an
    /// hour of the server's clock, with client state `secret-state`.
    pub fn subscription_body(&self, hook: &str, users: &[Uuid]) -> Value {
        let resource = match users {
            [one] => format!("/communications/presences/{one}"),
            many => format!(
                "/communications/presences?$filter=id in ({})",
                many.iter()
                    .map(|u| format!("'{u}'"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        json!({
            "changeType": "updated",
            "notificationUrl": hook,
            "resource": resource,
            "expirationDateTime": (self.clock.now() + TimeDelta::minutes(60)).to_rfc3339(),
            "clientState": "secret-state",
        })
    }

    /// Creates a subscription as `watcher` (delegated, Presence.Read.All)
    /// and returns its id.
    pub async fn subscribe(&self, watcher: Uuid, body: Value) -> String {
        let token = self.user_token(watcher, ALL_SCOPES);
        let r = self.post("/v1.0/subscriptions", &token, body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// [`Self::subscribe`] with [`Self::subscription_body`]: `watcher`
    /// subscribes to `users`, delivered to `hook`; the subscription's id.
    pub async fn subscribe_to(&self, watcher: Uuid, hook: &str, users: &[Uuid]) -> String {
        self.subscribe(watcher, self.subscription_body(hook, users))
            .await
    }

    /// The (availability, activity) of `user` as the user sees it.
    pub async fn presence_of(&self, user: Uuid) -> (String, String) {
        let token = self.user_token(user, ALL_SCOPES);
        let r = self
            .get(&format!("/v1.0/users/{user}/presence"), &token)
            .await;
        let body = r.ok_json();
        (
            body["availability"].as_str().unwrap().to_string(),
            body["activity"].as_str().unwrap().to_string(),
        )
    }
}

/// Reads a response into a [`Reply`].
pub async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// An app built as `presenced serve` builds it (`App::open_store`,
/// `App::clock_for`, `App::build`) over a data dir in `dir` holding the
/// test [`SECRET`], with the flags `edit` sets; not serving.
pub async fn build_app(dir: &tempfile::TempDir, edit: impl FnOnce(&mut FileConfig)) -> App {
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let mut flags = FileConfig {
        data_dir: Some(dir.path().to_path_buf()),
        jwt_secret_file: Some(secret),
        ..FileConfig::default()
    };
    edit(&mut flags);
    let config = Config::merge(flags, FileConfig::default(), false).unwrap();
    let store = App::open_store(&config).await.unwrap();
    let clock = App::clock_for(&config, store.as_ref()).await.unwrap();
    App::build(&config, store, clock).await.unwrap()
}

/// Mints an HS256 token with [`SECRET`] valid for an hour of wall time.
pub fn token(
    tenant: Uuid,
    user: Option<Uuid>,
    app: &str,
    scopes: Option<&str>,
    roles: Option<&[String]>,
) -> String {
    let claims = MintClaims::new(
        tenant,
        user,
        app,
        scopes,
        roles,
        wall_now(),
        TimeDelta::hours(1),
    );
    mint_hs256(SECRET, &claims).unwrap()
}

/// Mints a token from hand-edited claims.
pub fn token_with(
    edit: impl FnOnce(&mut MintClaims),
    tenant: Uuid,
    user: Option<Uuid>,
    scopes: Option<&str>,
) -> String {
    let mut claims = MintClaims::new(
        tenant,
        user,
        APP,
        scopes,
        None,
        wall_now(),
        TimeDelta::hours(1),
    );
    edit(&mut claims);
    mint_hs256(SECRET, &claims).unwrap()
}

/// The three path families of a user's presence, in both API versions.
pub fn presence_paths(user: Uuid) -> Vec<String> {
    let mut out = vec![];
    for v in ["v1.0", "beta"] {
        out.push(format!("/{v}/users/{user}/presence"));
        out.push(format!("/{v}/communications/presences/{user}"));
        out.push(format!("/{v}/me/presence"));
    }
    out
}
