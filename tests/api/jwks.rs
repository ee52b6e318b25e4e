//! Production-style keys end to end: the real binary verifying RS256 tokens
//! from a JWKS file and a JWKS URL, with a configured issuer and audience.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{reply, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_presenced");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const ISSUER: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";

/// A server process, its URL, and its data dir (deleted with it).
struct Proc(Child, String, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> Proc {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_path_buf();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.to_str().unwrap(),
        ])
        .args(args)
        .env_remove("PRESENCED_JWT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .trim_start_matches("presenced listening on ")
        .to_string();
    assert!(url.starts_with("http://"), "{line:?}");
    assert!(
        !dir.join("jwt-secret").exists(),
        "no dev secret when JWKS keys are configured"
    );
    Proc(child, url, temp)
}

fn rs256(claims: Value) -> String {
    let pem = std::fs::read(format!("{FIXTURES}/rsa-1.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    encode(&header, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn claims(tenant: Uuid, user: Uuid, aud: &str, iss: &str) -> Value {
    let now = presenced::clock::wall_now().timestamp();
    json!({
        "tid": tenant.to_string(), "oid": user.to_string(), "azp": "rs-app",
        "scp": "Presence.ReadWrite", "aud": aud, "iss": iss,
        "iat": now, "nbf": now, "exp": now + 3600,
    })
}

async fn me(url: &str, token: &str) -> Reply {
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1.0/me/presence"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    reply(resp).await
}

async fn check_rs256(url: &str) {
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    let issuer = ISSUER.replace("{tenantid}", &tenant.to_string());
    let good = rs256(claims(tenant, user, "api://presenced", &issuer));
    assert_eq!(me(url, &good).await.ok_json()["id"], user.to_string());
    let graph_aud = rs256(claims(tenant, user, "https://graph.microsoft.com", &issuer));
    me(url, &graph_aud).await.ok_json();
    let wrong_iss = rs256(claims(
        tenant,
        user,
        "api://presenced",
        "https://evil.example/",
    ));
    me(url, &wrong_iss)
        .await
        .error(401, "InvalidAuthenticationToken");
    let wrong_aud = rs256(claims(tenant, user, "api://other", &issuer));
    me(url, &wrong_aud)
        .await
        .error(401, "InvalidAuthenticationToken");
    // HS256 is refused when only JWKS keys are configured.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(tenant, user, "api://presenced", &issuer),
        &EncodingKey::from_secret(b"guessable-secret-guessable-secret"),
    )
    .unwrap();
    me(url, &hs).await.error(401, "InvalidAuthenticationToken");
}

#[tokio::test]
async fn rs256_tokens_verify_against_a_jwks_file() {
    let jwks = format!("{FIXTURES}/jwks.json");
    let server = start(&[
        "--jwks-file",
        &jwks,
        "--issuer",
        ISSUER,
        "--audience",
        "api://presenced",
    ]);
    check_rs256(&server.1).await;
}

#[tokio::test]
async fn rs256_tokens_verify_against_a_jwks_url() {
    let body = std::fs::read_to_string(format!("{FIXTURES}/jwks.json")).unwrap();
    let app = axum::Router::new().route(
        "/keys",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keys_url = format!("http://{}/keys", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = keys_url.clone();
    let server = tokio::task::spawn_blocking(move || {
        start(&[
            "--jwks-url",
            &url,
            "--issuer",
            ISSUER,
            "--audience",
            "api://presenced",
        ])
    })
    .await
    .unwrap();
    check_rs256(&server.1).await;
}
