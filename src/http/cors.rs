//! CORS for browser apps (the Graph JS SDK, Graph Toolkit), which call
//! Graph cross-origin: preflights are answered for any origin, and calls
//! from a browser get `Access-Control-Allow-Origin: *` and may read the
//! request ids. Safe: credentials are bearer tokens, never cookies.
//!
//! Only requests that carry an `Origin` header (every preflight and every
//! cross-origin call a browser makes) go through tower-http's CORS layer.
//! The rest (SDKs on servers, `curl`, a page's same-origin reads) need no
//! CORS headers, and building them cost a few per cent of a getPresence
//! (issue #14); their responses say `Vary: Origin` instead, so a cache
//! never serves one to a browser call.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
use futures_util::future::{Either, FutureExt, Map};
use tower::{Layer, Service};
use tower_http::cors::{AllowHeaders, Any, CorsLayer};

/// The CORS policy: any origin, any method; the allowed request headers
/// are those the preflight asks for, not `*`: the Fetch standard never lets
/// `*` cover `Authorization`, so a wildcard would refuse every call with a
/// bearer token (Firefox refuses it; Chromium still lets it through, with a
/// deprecation warning).
fn policy() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            HeaderName::from_static("request-id"),
            HeaderName::from_static("client-request-id"),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// Puts [`BrowserCors`] around a service.
#[derive(Debug, Clone)]
pub(super) struct BrowserCorsLayer {
    policy: Arc<CorsLayer>,
}

impl BrowserCorsLayer {
    /// The layer with presenced's policy.
    pub(super) fn new() -> Self {
        Self {
            policy: Arc::new(policy()),
        }
    }
}

impl<S> Layer<S> for BrowserCorsLayer {
    type Service = BrowserCors<S>;

    fn layer(&self, inner: S) -> BrowserCors<S> {
        BrowserCors {
            policy: self.policy.clone(),
            inner,
        }
    }
}

/// Requests with an `Origin` go through the CORS layer, the rest straight
/// to the service (see the module doc).
///
/// The CORS service is built for the request that needs it: axum clones a
/// route's whole stack for every request, and a stack holding both the
/// CORS service and the plain one cloned the service inside twice, and the
/// policy's header values, for requests that use neither.
#[derive(Debug, Clone)]
pub(super) struct BrowserCors<S> {
    policy: Arc<CorsLayer>,
    inner: S,
}

/// A response to a request without `Origin`, marked as depending on it.
type Marked<F, E> = Map<F, fn(Result<Response, E>) -> Result<Response, E>>;

impl<S> Service<Request> for BrowserCors<S>
where
    S: Service<Request, Response = Response> + Clone,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<tower_http::cors::ResponseFuture<S::Future>, Marked<S::Future, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.headers().contains_key(header::ORIGIN) {
            // The service made ready goes to the CORS service; its clone
            // stays for the next request (tower's usual swap).
            let clone = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, clone);
            Either::Left(self.policy.layer(ready).call(req))
        } else {
            Either::Right(self.inner.call(req).map(vary_origin as fn(_) -> _))
        }
    }
}

/// Adds `Vary: Origin` to a response.
fn vary_origin<E>(result: Result<Response, E>) -> Result<Response, E> {
    result.map(|mut response| {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
        response
    })
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use axum::Router;

    use super::*;

    async fn serve() -> String {
        let routes = Router::new()
            .route("/x", get(|| async { "ok" }))
            .layer(BrowserCorsLayer::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, routes).await });
        format!("http://{addr}/x")
    }

    #[tokio::test]
    async fn a_call_from_a_browser_gets_the_cors_headers() {
        let url = serve().await;
        let resp = reqwest::Client::new()
            .get(&url)
            .header("origin", "https://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert_eq!(
            resp.headers()["access-control-expose-headers"],
            "request-id,client-request-id"
        );
        let vary = resp.headers()["vary"].to_str().unwrap();
        assert!(vary.starts_with("origin"), "{vary}");
    }

    #[tokio::test]
    async fn a_call_without_origin_gets_no_cors_headers_but_varies_on_origin() {
        let url = serve().await;
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            !resp.headers().contains_key("access-control-allow-origin"),
            "{:?}",
            resp.headers()
        );
        assert!(!resp.headers().contains_key("access-control-expose-headers"));
        let vary: Vec<_> = resp.headers().get_all("vary").iter().collect();
        assert_eq!(vary, ["origin"]);
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
}
