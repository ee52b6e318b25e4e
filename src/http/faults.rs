//! Fault injection (SPEC §8), as Dev Proxy does for Graph: rules that
//! answer matching Graph requests with 429, 500, 503 or 504 before any
//! handler runs, so a faulted request changes nothing. Emulator mode only.
//!
//! A rule matches by method, path glob (`*` is one path segment or part
//! of one, `**` any number of segments) and calling application; it
//! answers the next `count` matching requests (then goes away) or, with
//! `probability`, each with that chance, drawn from one random generator
//! seeded with `--fault-seed` so a test can be deterministic. Rules never
//! match presenced's own paths under `/_presenced/`.

use std::sync::Mutex;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::admin::{Admin, Emulator};
use super::error::GraphError;
use super::extract::{GraphJson, GraphPath};
use super::AppState;
use crate::domain::parse_guid;

/// The statuses a rule may answer with.
pub const FAULT_STATUSES: [u16; 4] = [429, 500, 503, 504];

/// The longest injected delay, in milliseconds.
pub const MAX_DELAY_MS: u64 = 60_000;

/// The longest `Retry-After`, in seconds.
pub const MAX_RETRY_AFTER: u64 = 3_600;

/// The most rules kept at once.
pub const MAX_RULES: usize = 1_000;

/// Body of `POST /_presenced/faults`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultBody {
    /// Only requests with this method (any when absent).
    #[schema(example = "POST")]
    pub method: Option<String>,
    /// A path glob: `*` matches within one segment, `**` any segments.
    #[schema(example = "/v1.0/users/*/presence/setPresence")]
    pub path: String,
    /// 429, 500, 503 or 504.
    #[schema(example = 429)]
    pub status: u16,
    /// `Retry-After` seconds (default 1 for 429; none otherwise).
    pub retry_after_seconds: Option<u64>,
    /// Answer only the next N matching requests, then go away.
    pub count: Option<u32>,
    /// Answer each matching request with this chance, 0 to 1 (default 1).
    pub probability: Option<f64>,
    /// Wait this long before answering, in milliseconds.
    pub delay_ms: Option<u64>,
    /// Only requests of this application (`appid`/`azp`).
    pub app_id: Option<String>,
}

/// A rule as kept and listed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// The rule's id.
    pub id: Uuid,
    /// Only requests with this method; `null` for any.
    pub method: Option<String>,
    /// The path glob.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// `Retry-After` seconds, if sent.
    pub retry_after_seconds: Option<u64>,
    /// Matching requests still to answer; `null` for unlimited.
    pub count: Option<u32>,
    /// The chance of answering a matching request.
    pub probability: f64,
    /// Delay before answering, in milliseconds.
    pub delay_ms: u64,
    /// Only this application's requests; `null` for any.
    pub app_id: Option<String>,
}

/// The list answer of `GET /_presenced/faults`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FaultRuleCollection {
    /// The rules, oldest first.
    pub value: Vec<FaultRule>,
}

/// A field of a fault rule that breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FaultError {
    /// The field's name.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl From<FaultError> for GraphError {
    fn from(e: FaultError) -> Self {
        GraphError::bad_request(format!("The fault rule is invalid: {e}."))
    }
}

fn bad(field: &'static str, message: impl Into<String>) -> FaultError {
    FaultError {
        field,
        message: message.into(),
    }
}

impl TryFrom<FaultBody> for FaultRule {
    type Error = FaultError;

    fn try_from(b: FaultBody) -> Result<Self, FaultError> {
        let method = match b.method {
            Some(m) => {
                let upper = m.to_ascii_uppercase();
                if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&upper.as_str()) {
                    return Err(bad(
                        "method",
                        format!("'{m}' is not one of GET, POST, PUT, PATCH or DELETE"),
                    ));
                }
                Some(upper)
            }
            None => None,
        };
        if !b.path.starts_with('/') || b.path.len() > 1024 {
            return Err(bad(
                "path",
                format!(
                    "'{}' is not a path glob such as /v1.0/users/*/presence/setPresence",
                    b.path
                ),
            ));
        }
        if !FAULT_STATUSES.contains(&b.status) {
            return Err(bad(
                "status",
                format!("{} is not one of 429, 500, 503 or 504", b.status),
            ));
        }
        let retry_after_seconds = match b.retry_after_seconds {
            Some(s) if s > MAX_RETRY_AFTER => {
                return Err(bad(
                    "retryAfterSeconds",
                    format!("{s} is more than {MAX_RETRY_AFTER}"),
                ))
            }
            Some(s) => Some(s),
            None if b.status == 429 => Some(1),
            None => None,
        };
        if b.count == Some(0) {
            return Err(bad("count", "must be at least 1"));
        }
        let probability = b.probability.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&probability) {
            return Err(bad(
                "probability",
                format!("{probability} is not between 0 and 1"),
            ));
        }
        let delay_ms = b.delay_ms.unwrap_or(0);
        if delay_ms > MAX_DELAY_MS {
            return Err(bad(
                "delayMs",
                format!("{delay_ms} is more than {MAX_DELAY_MS}"),
            ));
        }
        if b.app_id.as_deref() == Some("") {
            return Err(bad("appId", "must not be empty"));
        }
        Ok(FaultRule {
            id: Uuid::new_v4(),
            method,
            path: b.path,
            status: b.status,
            retry_after_seconds,
            count: b.count,
            probability,
            delay_ms,
            app_id: b.app_id,
        })
    }
}

/// Whether `path` matches `glob` (`*`: any characters but `/`; `**` as a
/// whole segment: any number of segments).
pub fn glob_matches(glob: &str, path: &str) -> bool {
    let g: Vec<&str> = glob.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    segments_match(&g, &p)
}

fn segments_match(g: &[&str], p: &[&str]) -> bool {
    match g.split_first() {
        None => p.is_empty(),
        Some((&"**", rest)) => (0..=p.len()).any(|skip| segments_match(rest, &p[skip..])),
        Some((first, rest)) => match p.split_first() {
            Some((segment, p_rest)) => {
                segment_matches(first.as_bytes(), segment.as_bytes())
                    && segments_match(rest, p_rest)
            }
            None => false,
        },
    }
}

fn segment_matches(g: &[u8], s: &[u8]) -> bool {
    match g.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|skip| segment_matches(rest, &s[skip..])),
        Some((c, rest)) => s
            .split_first()
            .is_some_and(|(d, s_rest)| c == d && segment_matches(rest, s_rest)),
    }
}

/// What a rule decided for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    /// The rule that answered.
    pub rule: Uuid,
    /// Its status.
    pub status: u16,
    /// Its `Retry-After`.
    pub retry_after: Option<u64>,
    /// Its delay.
    pub delay_ms: u64,
}

impl Injected {
    /// The Graph error the request is answered with.
    pub fn error(&self) -> GraphError {
        let mut e = match self.status {
            429 => {
                let mut e = GraphError::too_many_requests(self.retry_after.unwrap_or(1));
                e.message = format!("{} (injected by fault rule {})", e.message, self.rule);
                return e;
            }
            503 => GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The service is temporarily unavailable.",
            ),
            504 => GraphError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "gatewayTimeout",
                "The request timed out.",
            ),
            _ => GraphError::internal(),
        };
        e.message = format!("{} (injected by fault rule {})", e.message, self.rule);
        e.retry_after = self.retry_after;
        if e.status.is_server_error() {
            e.cause = Some(format!("injected by fault rule {}", self.rule));
        }
        e
    }
}

/// The rules and the seeded random generator behind `probability`.
#[derive(Debug)]
pub struct Faults {
    inner: Mutex<FaultsInner>,
}

#[derive(Debug)]
struct FaultsInner {
    rules: Vec<FaultRule>,
    rng: rand::rngs::StdRng,
}

impl Faults {
    /// No rules; `seed` seeds the generator (a random seed when `None`).
    pub fn new(seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
            None => rand::rngs::StdRng::from_entropy(),
        };
        Self {
            inner: Mutex::new(FaultsInner {
                rules: Vec::new(),
                rng,
            }),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, FaultsInner>, GraphError> {
        self.inner.lock().map_err(|_| GraphError::internal())
    }

    /// Adds a rule (400 beyond [`MAX_RULES`]).
    pub fn add(&self, rule: FaultRule) -> Result<(), GraphError> {
        let mut inner = self.lock()?;
        if inner.rules.len() >= MAX_RULES {
            return Err(GraphError::bad_request(format!(
                "There are already {MAX_RULES} fault rules; delete some first."
            )));
        }
        inner.rules.push(rule);
        Ok(())
    }

    /// Every rule, oldest first.
    pub fn list(&self) -> Vec<FaultRule> {
        self.inner
            .lock()
            .map(|i| i.rules.clone())
            .unwrap_or_default()
    }

    /// Removes one rule (`false` when unknown) or, with `None`, all.
    pub fn remove(&self, id: Option<Uuid>) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        let before = inner.rules.len();
        match id {
            Some(id) => inner.rules.retain(|r| r.id != id),
            None => inner.rules.clear(),
        }
        inner.rules.len() != before || id.is_none()
    }

    /// Whether any rule exists (the common case of none costs one lock).
    pub fn is_empty(&self) -> bool {
        self.inner.lock().map_or(true, |i| i.rules.is_empty())
    }

    /// The first rule (oldest first) that answers this request, if any;
    /// its count goes down, and it goes away once used up.
    pub fn decide(&self, method: &str, path: &str, app_id: Option<&str>) -> Option<Injected> {
        if path.starts_with("/_presenced/") {
            return None;
        }
        let mut inner = self.inner.lock().ok()?;
        let FaultsInner { rules, rng } = &mut *inner;
        let mut hit = None;
        for (i, rule) in rules.iter_mut().enumerate() {
            let matches = rule.method.as_deref().is_none_or(|m| m == method)
                && rule.app_id.as_deref().is_none_or(|a| Some(a) == app_id)
                && glob_matches(&rule.path, path);
            if !matches {
                continue;
            }
            if rule.probability < 1.0 && rng.gen::<f64>() >= rule.probability {
                continue;
            }
            if let Some(count) = rule.count.as_mut() {
                *count -= 1;
            }
            hit = Some((
                i,
                Injected {
                    rule: rule.id,
                    status: rule.status,
                    retry_after: rule.retry_after_seconds,
                    delay_ms: rule.delay_ms,
                },
            ));
            break;
        }
        let (i, injected) = hit?;
        if rules[i].count == Some(0) {
            rules.remove(i);
        }
        Some(injected)
    }
}

fn faults(state: &AppState) -> Result<&Faults, GraphError> {
    state
        .emulator
        .as_ref()
        .map(|e| &e.faults)
        .ok_or_else(|| GraphError::not_found("Fault injection exists only in emulator mode."))
}

/// `POST /_presenced/faults`: adds a rule; `201` with it and its `id`.
pub async fn create(
    State(state): State<AppState>,
    _emulator: Emulator,
    _admin: Admin,
    GraphJson(body): GraphJson<FaultBody>,
) -> Result<(StatusCode, Json<FaultRule>), GraphError> {
    let rule = FaultRule::try_from(body)?;
    faults(&state)?.add(rule.clone())?;
    Ok((StatusCode::CREATED, Json(rule)))
}

/// `GET /_presenced/faults`: the rules, oldest first.
pub async fn list(
    State(state): State<AppState>,
    _emulator: Emulator,
    _admin: Admin,
) -> Result<Json<FaultRuleCollection>, GraphError> {
    Ok(Json(FaultRuleCollection {
        value: faults(&state)?.list(),
    }))
}

/// `DELETE /_presenced/faults`: removes every rule.
pub async fn delete_all(
    State(state): State<AppState>,
    _emulator: Emulator,
    _admin: Admin,
) -> Result<StatusCode, GraphError> {
    faults(&state)?.remove(None);
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /_presenced/faults/{id}`: removes one rule (404 when unknown).
pub async fn delete(
    State(state): State<AppState>,
    _emulator: Emulator,
    _admin: Admin,
    GraphPath(id): GraphPath<String>,
) -> Result<StatusCode, GraphError> {
    let id = parse_guid(&id)?;
    if faults(&state)?.remove(Some(id)) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(GraphError::not_found(format!(
            "There is no fault rule {id}."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: serde_json::Value) -> Result<FaultRule, FaultError> {
        FaultRule::try_from(serde_json::from_value::<FaultBody>(json).unwrap())
    }

    #[test]
    fn globs_match_within_and_across_segments() {
        let g = "/v1.0/users/*/presence/setPresence";
        assert!(glob_matches(g, "/v1.0/users/abc/presence/setPresence"));
        assert!(!glob_matches(g, "/v1.0/users/a/b/presence/setPresence"));
        assert!(!glob_matches(g, "/v1.0/users/abc/presence/clearPresence"));
        assert!(glob_matches("/v1.0/**", "/v1.0/users/a/presence"));
        assert!(glob_matches("/**/presence", "/beta/me/presence"));
        assert!(glob_matches(
            "/*/me/presence/set*",
            "/beta/me/presence/setStatusMessage"
        ));
        assert!(!glob_matches("/v1.0/me", "/v1.0/me/presence"));
    }

    #[test]
    fn bad_rules_name_the_field() {
        let base = || serde_json::json!({"path": "/v1.0/**", "status": 429});
        let cases = [
            ("status", serde_json::json!({"path": "/x", "status": 404})),
            ("path", serde_json::json!({"path": "x", "status": 500})),
            ("method", {
                let mut b = base();
                b["method"] = "FETCH".into();
                b
            }),
            ("count", {
                let mut b = base();
                b["count"] = 0.into();
                b
            }),
            ("probability", {
                let mut b = base();
                b["probability"] = 1.5.into();
                b
            }),
            ("delayMs", {
                let mut b = base();
                b["delayMs"] = 60_001.into();
                b
            }),
            ("retryAfterSeconds", {
                let mut b = base();
                b["retryAfterSeconds"] = 3_601.into();
                b
            }),
        ];
        for (field, json) in cases {
            assert_eq!(rule(json).unwrap_err().field, field);
        }
        let ok = rule(base()).unwrap();
        assert_eq!(ok.retry_after_seconds, Some(1), "429 says when to retry");
        assert_eq!(ok.probability, 1.0);
    }

    #[test]
    fn a_counted_rule_answers_n_requests_then_goes_away() {
        let faults = Faults::new(Some(1));
        let r = rule(serde_json::json!({"method": "post", "path": "/v1.0/users/*/presence/setPresence", "status": 503, "count": 2, "appId": "a"})).unwrap();
        faults.add(r.clone()).unwrap();
        let path = "/v1.0/users/u/presence/setPresence";
        assert_eq!(faults.decide("GET", path, Some("a")), None);
        assert_eq!(faults.decide("POST", path, Some("b")), None);
        assert_eq!(faults.decide("POST", path, None), None);
        let hit = faults.decide("POST", path, Some("a")).unwrap();
        assert_eq!((hit.rule, hit.status), (r.id, 503));
        assert_eq!(faults.list()[0].count, Some(1));
        assert!(faults.decide("POST", path, Some("a")).is_some());
        assert!(faults.is_empty());
        assert_eq!(faults.decide("POST", path, Some("a")), None);
    }

    #[test]
    fn probability_draws_from_the_seeded_generator() {
        let run = |seed| {
            let faults = Faults::new(Some(seed));
            faults
                .add(
                    rule(serde_json::json!({"path": "/**", "status": 500, "probability": 0.3}))
                        .unwrap(),
                )
                .unwrap();
            (0..200)
                .map(|_| faults.decide("GET", "/v1.0/me/presence", None).is_some())
                .collect::<Vec<bool>>()
        };
        let a = run(7);
        assert_eq!(a, run(7), "the same seed, the same faults");
        let hits = a.iter().filter(|h| **h).count();
        assert!((30..=90).contains(&hits), "{hits} of 200 at 0.3");
        assert_ne!(a, run(8));
    }

    #[test]
    fn presenceds_own_paths_are_never_faulted() {
        let faults = Faults::new(Some(1));
        faults
            .add(rule(serde_json::json!({"path": "/**", "status": 500})).unwrap())
            .unwrap();
        assert_eq!(faults.decide("GET", "/_presenced/faults", None), None);
        assert!(faults.decide("GET", "/v1.0/me/presence", None).is_some());
    }
}
