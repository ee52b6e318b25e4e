//! A real webhook receiver on 127.0.0.1 for notification tests: answers
//! Graph's validation handshake and records every notification POST.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// How the receiver answers validation requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// 200 with the token: passes.
    Echo,
    /// 200 with something else.
    WrongEcho,
    /// This status with the token.
    Status(u16),
    /// Never answers (until the test ends).
    Hang,
}

#[derive(Debug)]
struct Behaviour {
    validation: Validation,
    status: u16,
    delay: Duration,
}

/// One recorded notification POST.
#[derive(Debug, Clone)]
pub struct Post {
    /// The request's content type.
    pub content_type: String,
    /// The request's path and query.
    pub path: String,
    /// The JSON body.
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    posts: Mutex<Vec<Post>>,
    validations: Mutex<Vec<(String, String)>>,
    behaviour: Mutex<Option<Behaviour>>,
    answered: Mutex<usize>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`; notification URLs are `{url}/hook…`.
    pub url: String,
    shared: Arc<Shared>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn hook(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (validation, status, delay) = {
        let b = shared.behaviour.lock().unwrap();
        let b = b.as_ref().unwrap();
        (b.validation, b.status, b.delay)
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if let Some(token) = query.get("validationToken") {
        shared
            .validations
            .lock()
            .unwrap()
            .push((token.clone(), content_type));
        return match validation {
            Validation::Echo => (StatusCode::OK, token.clone()).into_response(),
            Validation::WrongEcho => (StatusCode::OK, "not the token").into_response(),
            Validation::Status(s) => {
                (StatusCode::from_u16(s).unwrap(), token.clone()).into_response()
            }
            Validation::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                StatusCode::OK.into_response()
            }
        };
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.posts.lock().unwrap().push(Post {
        content_type,
        path: uri.to_string(),
        body,
    });
    tokio::time::sleep(delay).await;
    *shared.answered.lock().unwrap() += 1;
    StatusCode::from_u16(status).unwrap().into_response()
}

impl Receiver {
    /// Starts a receiver that validates and answers notifications `202`.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        *shared.behaviour.lock().unwrap() = Some(Behaviour {
            validation: Validation::Echo,
            status: 202,
            delay: Duration::ZERO,
        });
        let app = axum::Router::new()
            .fallback(axum::routing::post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            url,
            shared,
            _shutdown: tx,
        }
    }

    /// The notification URL `{url}/hook`.
    pub fn hook(&self) -> String {
        format!("{}/hook", self.url)
    }

    /// Sets how validation requests are answered.
    pub fn validate_with(&self, v: Validation) {
        self.shared
            .behaviour
            .lock()
            .unwrap()
            .as_mut()
            .unwrap()
            .validation = v;
    }

    /// Sets the status and delay of answers to notifications.
    pub fn answer_with(&self, status: u16, delay: Duration) {
        let mut b = self.shared.behaviour.lock().unwrap();
        let b = b.as_mut().unwrap();
        b.status = status;
        b.delay = delay;
    }

    /// Every notification POST so far.
    pub fn posts(&self) -> Vec<Post> {
        self.shared.posts.lock().unwrap().clone()
    }

    /// Every notification item so far, across POSTs, in arrival order.
    pub fn items(&self) -> Vec<Value> {
        self.posts()
            .iter()
            .flat_map(|p| p.body["value"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Notification POSTs answered so far (after their delay).
    pub fn answered(&self) -> usize {
        *self.shared.answered.lock().unwrap()
    }

    /// Validation requests so far: (token, content type).
    pub fn validations(&self) -> Vec<(String, String)> {
        self.shared.validations.lock().unwrap().clone()
    }

    /// Waits until at least `n` items arrived, with a deadline.
    pub async fn wait_for_items(&self, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let items = self.items();
            if items.len() >= n {
                return items;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} notification items within 15 s, got {}: {items:#?}",
                items.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asserts nothing more than `n` items arrives within a short while.
    pub async fn assert_stays_at(&self, n: usize) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let items = self.items();
        assert_eq!(items.len(), n, "unexpected notifications: {items:#?}");
    }
}
