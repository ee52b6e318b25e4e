//! The command-line client: `get`, `set`, `clear`, `status-message` and
//! `watch` talk to a running presenced over its Graph API and its event
//! stream (`GET /_presenced/events`, SPEC §8), with the caller's token.
//! Failures become one sentence that says what went wrong and what to do.

use std::time::Duration;

use base64::Engine as _;
use clap::Args;
use serde_json::{json, Value};
use uuid::Uuid;

use super::sse::SseParser;

/// How long a request (not `watch`'s stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server is and who the caller is; shared by every client command.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "PRESENCED_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub url: String,
    /// The bearer token (mint one with `presenced token`).
    #[arg(
        long,
        env = "PRESENCED_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

/// `presenced get USER… [--json]`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
    /// User object ids (GUIDs); several are read with one getPresencesByUserId.
    #[arg(required = true, value_name = "USER")]
    pub users: Vec<Uuid>,
    /// Print JSON: the presence for one user, `{"value":[…]}` for several.
    #[arg(long)]
    pub json: bool,
}

/// `presenced set USER --availability A --activity B [--duration D] [--session APP]`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
    /// User object id (GUID).
    #[arg(value_name = "USER")]
    pub user: Uuid,
    /// Availability, e.g. Available, Busy, DoNotDisturb, Away.
    #[arg(long)]
    pub availability: String,
    /// Activity, e.g. Available, InACall, Presenting, Away.
    #[arg(long)]
    pub activity: String,
    /// How long the session's presence lasts, ISO 8601 [default: the server's, PT5M].
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// The session id [default: the token's app id, its `appid` or `azp` claim].
    #[arg(long, value_name = "APP")]
    pub session: Option<String>,
}

/// `presenced clear USER --session APP`.
#[derive(Debug, Args)]
pub struct ClearArgs {
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
    /// User object id (GUID).
    #[arg(value_name = "USER")]
    pub user: Uuid,
    /// The session id to end (the app id that set it).
    #[arg(long, value_name = "APP")]
    pub session: String,
}

/// `presenced status-message USER TEXT [--expires DATETIME [--zone ZONE]]`.
#[derive(Debug, Args)]
pub struct StatusMessageArgs {
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
    /// User object id (GUID).
    #[arg(value_name = "USER")]
    pub user: Uuid,
    /// The message, plain text; an empty TEXT clears it.
    #[arg(value_name = "TEXT")]
    pub text: String,
    /// When the message expires, a date and time without offset, e.g. 2026-12-24T17:00:00.
    #[arg(long, value_name = "DATETIME")]
    pub expires: Option<String>,
    /// The time zone of --expires (IANA or Windows name) [default: UTC].
    #[arg(long, value_name = "ZONE", requires = "expires")]
    pub zone: Option<String>,
}

/// `presenced watch [USER…]`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Server and token.
    #[command(flatten)]
    pub client: ClientArgs,
    /// User object ids (GUIDs) to follow [default: every user of the
    /// token's tenant, which needs Presence.Read.All].
    #[arg(value_name = "USER")]
    pub users: Vec<Uuid>,
}

/// A connection to one server with one token.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(args: ClientArgs, timeout: Option<Duration>) -> anyhow::Result<Self> {
        let token = match args.token {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => anyhow::bail!(
                "no token: pass --token or set PRESENCED_TOKEN (mint one with `presenced token …`)"
            ),
        };
        let base = args.url.trim_end_matches('/').to_string();
        match reqwest::Url::parse(&base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => anyhow::bail!(
                "--url {base} is not an http(s) URL; give one like http://127.0.0.1:8080"
            ),
        }
        let mut builder = reqwest::Client::builder().connect_timeout(REQUEST_TIMEOUT);
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        let http = builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start an HTTP client: {e}"))?;
        Ok(Self { http, base, token })
    }

    /// Sends a request; a transport failure or a non-2xx answer becomes the
    /// error message the user sees.
    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| transport_error(&self.base, &e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(answer_error(status, &body))
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<reqwest::Response> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }
}

/// Reads a JSON answer body.
async fn json_body(resp: reqwest::Response) -> anyhow::Result<Value> {
    resp.json()
        .await
        .map_err(|e| anyhow::anyhow!("the server's answer is not the JSON expected: {e}"))
}

/// A request that got no answer, in words with what to do.
fn transport_error(base: &str, e: &reqwest::Error) -> anyhow::Error {
    if e.is_connect() {
        anyhow::anyhow!(
            "no presenced answers at {base}; start one with `presenced serve`, or point --url (PRESENCED_URL) at yours"
        )
    } else if e.is_timeout() {
        anyhow::anyhow!(
            "{base} did not answer within {}s; is the server overloaded or the URL wrong?",
            REQUEST_TIMEOUT.as_secs()
        )
    } else {
        anyhow::anyhow!("the request to {base} failed: {e}")
    }
}

/// A non-2xx answer in words: the Graph error's message, and for 401/403
/// what to do about the token.
fn answer_error(status: reqwest::StatusCode, body: &str) -> anyhow::Error {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    let code = error
        .and_then(|e| e["code"].as_str())
        .unwrap_or("")
        .to_string();
    let message = error
        .and_then(|e| e["message"].as_str())
        .map(sentence_part)
        .unwrap_or_else(|| format!("it answered {status} without a Graph error"));
    match status.as_u16() {
        401 => anyhow::anyhow!(
            "the server refused the token: {message}; mint a new one with `presenced token …` (or your identity provider)"
        ),
        403 => anyhow::anyhow!(
            "the token may not do this: {message}; use a token with the scope or role it names"
        ),
        _ if code.is_empty() => anyhow::anyhow!("the server answered {status}: {message}"),
        _ => anyhow::anyhow!("the server answered {status} ({code}): {message}"),
    }
}

/// A Graph message ("The access token has expired.") as part of a
/// sentence ("the access token has expired").
fn sentence_part(message: &str) -> String {
    let trimmed = message.trim().trim_end_matches('.');
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The app id a token was issued to (`appid` in v1 tokens, `azp` in v2),
/// read without verifying it: it only picks the default session id, the
/// server checks the token.
fn token_app_id(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    ["appid", "azp"]
        .iter()
        .find_map(|k| claims[*k].as_str().filter(|s| !s.is_empty()))
        .map(str::to_string)
}

/// A presence on one line: `ID  Availability  Activity  "status message"`.
fn presence_line(p: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let mut line = format!(
        "{}  {}  {}",
        text(&p["id"]),
        text(&p["availability"]),
        text(&p["activity"])
    );
    if let Some(content) = p["statusMessage"]["message"]["content"].as_str() {
        if !content.is_empty() {
            line.push_str(&format!("  {content:?}"));
        }
    }
    line
}

/// `presenced get`.
pub(super) async fn get(args: GetArgs) -> anyhow::Result<()> {
    let client = Client::new(args.client, Some(REQUEST_TIMEOUT))?;
    let presences = if let [user] = args.users.as_slice() {
        let p = json_body(client.get(&format!("/v1.0/users/{user}/presence")).await?).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&p)?);
            return Ok(());
        }
        vec![p]
    } else {
        let ids: Vec<String> = args.users.iter().map(Uuid::to_string).collect();
        let body = json_body(
            client
                .post(
                    "/v1.0/communications/getPresencesByUserId",
                    &json!({ "ids": ids }),
                )
                .await?,
        )
        .await?;
        let Some(value) = body["value"].as_array() else {
            anyhow::bail!("the server's answer has no `value` list");
        };
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "value": value }))?
            );
            return Ok(());
        }
        value.clone()
    };
    for p in &presences {
        println!("{}", presence_line(p));
    }
    Ok(())
}

/// `presenced set`.
pub(super) async fn set(args: SetArgs) -> anyhow::Result<()> {
    let client = Client::new(args.client, Some(REQUEST_TIMEOUT))?;
    let session = match args.session {
        Some(s) => s,
        None => token_app_id(&client.token).ok_or_else(|| {
            anyhow::anyhow!(
                "the token names no app id (`appid` or `azp`) to use as the session id; pass --session APP"
            )
        })?,
    };
    let mut body = json!({
        "sessionId": session,
        "availability": args.availability,
        "activity": args.activity,
    });
    if let Some(d) = args.duration {
        body["expirationDuration"] = Value::String(d);
    }
    client
        .post(
            &format!("/v1.0/users/{}/presence/setPresence", args.user),
            &body,
        )
        .await?;
    Ok(())
}

/// `presenced clear`.
pub(super) async fn clear(args: ClearArgs) -> anyhow::Result<()> {
    let client = Client::new(args.client, Some(REQUEST_TIMEOUT))?;
    client
        .post(
            &format!("/v1.0/users/{}/presence/clearPresence", args.user),
            &json!({ "sessionId": args.session }),
        )
        .await?;
    Ok(())
}

/// `presenced status-message`.
pub(super) async fn status_message(args: StatusMessageArgs) -> anyhow::Result<()> {
    let client = Client::new(args.client, Some(REQUEST_TIMEOUT))?;
    let mut status = json!({ "message": { "content": args.text, "contentType": "text" } });
    if let Some(expires) = args.expires {
        status["expiryDateTime"] = json!({
            "dateTime": expires,
            "timeZone": args.zone.unwrap_or_else(|| "UTC".to_string()),
        });
    }
    client
        .post(
            &format!("/v1.0/users/{}/presence/setStatusMessage", args.user),
            &json!({ "statusMessage": status }),
        )
        .await?;
    Ok(())
}

/// How long `watch` waits before its first attempt to reconnect; each
/// failed attempt doubles it, up to [`RECONNECT_MAX_DELAY`].
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest wait between two attempts to reconnect.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);

/// `presenced watch`: follows the event stream and prints a line per
/// change until interrupted. A stream that breaks or ends (the server
/// restarted, a proxy cut it) is reconnected with `Last-Event-ID`, so no
/// change is missed or printed twice while the server's event log still
/// holds it (else the server says `reset`, and so does `watch`). Only the
/// first connection failing, or the server refusing a reconnection (an
/// expired token, say), ends it with an error.
pub(super) async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let client = Client::new(args.client, None)?;
    let path = if args.users.is_empty() {
        "/_presenced/events".to_string()
    } else {
        let ids: Vec<String> = args.users.iter().map(Uuid::to_string).collect();
        format!("/_presenced/events?ids={}", ids.join(","))
    };
    let mut resp = client.get(&path).await?;
    // The feed is registered before the server answers, so every change
    // from here on is printed.
    eprintln!("presenced: watching {} (Ctrl-C to stop)", client.base);
    let mut parser = SseParser::default();
    loop {
        let why = print_events(&client.base, &mut resp, &mut parser).await;
        parser.discard_partial();
        match parser.last_event_id() {
            Some(id) => eprintln!("presenced: {why}; reconnecting to resume after event {id}"),
            None => eprintln!("presenced: {why}; reconnecting"),
        }
        resp = reconnect(&client, &path, parser.last_event_id()).await?;
        eprintln!("presenced: reconnected to {}", client.base);
    }
}

/// Prints a line per presence event of `resp` until the stream breaks or
/// ends; returns why, in words.
async fn print_events(base: &str, resp: &mut reqwest::Response, parser: &mut SseParser) -> String {
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return format!("the server at {base} ended the event stream"),
            Err(e) => return format!("the event stream from {base} broke ({e})"),
        };
        for event in parser.push(&chunk) {
            match event.name.as_str() {
                "presence" => match serde_json::from_str::<Value>(&event.data) {
                    Ok(p) => println!("{}", presence_line(&p)),
                    Err(_) => eprintln!("presenced: skipped an event that is not a presence"),
                },
                "reset" => eprintln!(
                    "presenced: the server's event log moved past this stream; re-read with `presenced get`"
                ),
                _ => {}
            }
        }
    }
}

/// Opens the event stream again, resuming after `last_event_id`: retries
/// while no server answers (or it answers 503, still starting), with
/// growing waits; any other refusal is the error `watch` ends with.
async fn reconnect(
    client: &Client,
    path: &str,
    last_event_id: Option<&str>,
) -> anyhow::Result<reqwest::Response> {
    let mut delay = RECONNECT_FIRST_DELAY;
    loop {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX_DELAY);
        let mut req = client
            .http
            .get(format!("{}{path}", client.base))
            .bearer_auth(&client.token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(_) => continue,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            continue;
        }
        let body = resp.text().await.unwrap_or_default();
        return Err(answer_error(status, &body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_id_comes_from_appid_or_azp_without_verifying() {
        let enc = |v: Value| {
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!("h.{}.s", b.encode(v.to_string()))
        };
        assert_eq!(
            token_app_id(&enc(json!({"appid": "a1"}))).as_deref(),
            Some("a1")
        );
        assert_eq!(
            token_app_id(&enc(json!({"azp": "a2"}))).as_deref(),
            Some("a2")
        );
        assert_eq!(token_app_id(&enc(json!({"sub": "x"}))), None);
        assert_eq!(token_app_id("not-a-jwt"), None);
    }

    #[test]
    fn an_expired_token_says_what_to_do() {
        let body = r#"{"error":{"code":"InvalidAuthenticationToken","message":"The access token has expired."}}"#;
        let e = answer_error(reqwest::StatusCode::UNAUTHORIZED, body).to_string();
        assert!(
            e.starts_with("the server refused the token: the access token has expired; mint a new one with `presenced token"),
            "{e}"
        );
        let e = answer_error(reqwest::StatusCode::BAD_GATEWAY, "<html>").to_string();
        assert!(
            e.contains("502") && e.contains("without a Graph error"),
            "{e}"
        );
    }
}
