//! Production-style keys end to end: the real binary verifying RS256 tokens
//! from a JWKS file and a JWKS URL, with a configured issuer and audience,
//! and tokens minted for such a server by `presenced token --rs256-key/--es256-key`.

use std::process::Command;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{reply, Reply};
use crate::process::{serve_jwks_fixture, Proc, Serve, BIN};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const ISSUER: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";

/// A server process and its data dir (deleted after the process is gone).
struct Server {
    proc: Proc,
    _data: tempfile::TempDir,
}

/// `presenced serve` on a data dir of its own with `args` (the key
/// configuration under test); it must not create a dev secret.
fn start(args: &[&str]) -> Server {
    let data = tempfile::tempdir().unwrap();
    let proc = Serve::data_dir(data.path()).args(args).start();
    assert!(proc.url.starts_with("http://"), "{}", proc.url);
    assert!(
        !data.path().join("jwt-secret").exists(),
        "no dev secret when JWKS keys are configured"
    );
    Server { proc, _data: data }
}

/// [`start`] with the keys from `jwks_flag JWKS` (`--jwks-file` or
/// `--jwks-url`), for the issuer [`ISSUER`] and audience `api://presenced`.
fn start_verifying(jwks_flag: &str, jwks: &str) -> Server {
    start(&[
        jwks_flag,
        jwks,
        "--issuer",
        ISSUER,
        "--audience",
        "api://presenced",
    ])
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
    let server = start_verifying("--jwks-file", &jwks);
    check_rs256(&server.proc.url).await;
}

#[tokio::test]
async fn rs256_tokens_verify_against_a_jwks_url() {
    let keys_url = serve_jwks_fixture().await;
    let server = tokio::task::spawn_blocking(move || start_verifying("--jwks-url", &keys_url))
        .await
        .unwrap();
    check_rs256(&server.proc.url).await;
}

/// Runs `presenced token ARGS` (no secret in the environment).
fn token_cmd(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("token")
        .args(args)
        .env_remove("PRESENCED_JWT_SECRET")
        .output()
        .unwrap()
}

/// `presenced token` signing with `key_flag KEY` (and `--kid`), for a
/// delegated token of `user`; the printed token.
fn minted(key_flag: &str, key: &str, kid: &str, tenant: Uuid, user: Uuid) -> String {
    let (tenant, user) = (tenant.to_string(), user.to_string());
    let out = token_cmd(&[
        key_flag,
        &format!("{FIXTURES}/{key}"),
        "--kid",
        kid,
        "--tenant",
        &tenant,
        "--user",
        &user,
        "--app",
        "minted-app",
        "--scopes",
        "Presence.ReadWrite",
        "--audience",
        "api://presenced",
        "--issuer",
        ISSUER,
    ]);
    assert!(
        out.status.success(),
        "token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "no warning for known scopes");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn tokens_minted_with_rs256_and_es256_keys_are_accepted_by_a_jwks_server_and_refused_with_a_wrong_kid(
) {
    let jwks = format!("{FIXTURES}/jwks-rsa-ec.json");
    let server = start_verifying("--jwks-file", &jwks);
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    for (flag, key, kid) in [
        ("--rs256-key", "rsa-1.pem", "rsa-1"),
        ("--rs256-key", "rsa-1.pkcs1.pem", "rsa-1"),
        ("--es256-key", "ec-1.pem", "ec-1"),
        ("--es256-key", "ec-1.sec1.pem", "ec-1"),
    ] {
        let token = minted(flag, key, kid, tenant, user);
        assert_eq!(
            me(&server.proc.url, &token).await.ok_json()["id"],
            user.to_string(),
            "{flag} {key} --kid {kid}"
        );
    }
    for (flag, key, kid) in [
        ("--rs256-key", "rsa-1.pem", "rsa-9"),
        ("--rs256-key", "rsa-1.pem", "ec-1"),
        ("--es256-key", "ec-1.pem", "rsa-1"),
    ] {
        let token = minted(flag, key, kid, tenant, user);
        me(&server.proc.url, &token)
            .await
            .error(401, "InvalidAuthenticationToken");
    }
}

#[test]
fn token_refuses_a_key_of_the_wrong_kind_and_a_missing_file_naming_the_file() {
    let tenant = Uuid::new_v4().to_string();
    let base = [
        "--tenant",
        &tenant,
        "--app",
        "a",
        "--roles",
        "Presence.Read.All",
    ];
    let ec = format!("{FIXTURES}/ec-1.pem");
    let out = token_cmd(&[&["--rs256-key", ec.as_str()][..], &base].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("ec-1.pem") && stderr.contains("not an RSA private key"),
        "{stderr}"
    );
    let out = token_cmd(&[&["--es256-key", "/nonexistent/key.pem"][..], &base].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("/nonexistent/key.pem"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn token_warns_about_unknown_scope_and_role_names_and_still_prints_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a-development-secret-of-enough-length").unwrap();
    let secret = secret.to_str().unwrap();
    let tenant = Uuid::new_v4().to_string();
    let user = Uuid::new_v4().to_string();
    let out = token_cmd(&[
        "--jwt-secret-file",
        secret,
        "--tenant",
        &tenant,
        "--app",
        "a",
        "--roles",
        "Presence.ReadWrite.Al Presenced.Admin",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split('.')
            .count(),
        3
    );
    assert!(
        stderr.contains("warning") && stderr.contains("'Presence.ReadWrite.Al'"),
        "{stderr}"
    );
    assert!(!stderr.contains("'Presenced.Admin'"), "{stderr}");
    let out = token_cmd(&[
        "--jwt-secret-file",
        secret,
        "--tenant",
        &tenant,
        "--user",
        &user,
        "--app",
        "a",
        "--scopes",
        "Presence.Read presence.readwrite Presence.Raed.All",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("'Presence.Raed.All'"), "{stderr}");
}
