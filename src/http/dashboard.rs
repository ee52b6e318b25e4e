//! The dashboard (SPEC §8): a page at `GET /` and its assets under
//! `/_presenced/ui/`, plain HTML, CSS and ES modules from `ui/`, embedded
//! in the binary. No CDN and no build step: what is committed is what the
//! browser runs. The page reads the API with the token the person gives
//! it (Authorization header only), so these routes need none.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::error::GraphError;
use super::extract::GraphPath;

/// The policy every dashboard answer carries: everything from this origin
/// only, no inline script or style, no plugins, no framing, no forms.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page itself.
const INDEX: &str = include_str!("../../ui/index.html");

/// The assets under `/_presenced/ui/`, by file name, with their content
/// types.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/api.js"),
    ),
    (
        "sse.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/sse.js"),
    ),
    (
        "view.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/view.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../ui/favicon.svg"),
    ),
];

/// A dashboard answer: `body` as `content_type`, revalidated on every use
/// (the files are small and change with the binary), under the policy.
fn answer(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard page. Public: it holds no data, and reads the
/// API with the token pasted into it.
pub async fn index() -> Response {
    answer("text/html; charset=utf-8", INDEX)
}

/// `GET /_presenced/ui/{file}`: one of the page's assets; any other name
/// is Graph's 404.
pub async fn asset(GraphPath(file): GraphPath<String>) -> Result<Response, GraphError> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, content_type, body)| answer(content_type, body))
        .ok_or_else(|| {
            GraphError::not_found(format!(
                "Resource not found for the segment '/_presenced/ui/{file}'."
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_served() {
        for (name, _, _) in ASSETS {
            let named = INDEX.contains(&format!("/_presenced/ui/{name}"))
                || ASSETS
                    .iter()
                    .any(|(_, _, body)| body.contains(&format!("./{name}")));
            assert!(named, "{name} is served but nothing loads it");
        }
        for line in INDEX.lines().chain(ASSETS.iter().flat_map(|a| a.2.lines())) {
            for (at, _) in line.match_indices("/_presenced/ui/") {
                let rest = &line[at + "/_presenced/ui/".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                    .collect();
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == name),
                    "the page loads /_presenced/ui/{name}, which is not served"
                );
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        assert!(!INDEX.contains("<script>"), "inline script");
        assert!(!INDEX.contains("<style"), "inline style");
        assert!(!INDEX.contains(" style="), "inline style attribute");
        let handler = INDEX
            .split(|c: char| c.is_whitespace())
            .any(|word| word.starts_with("on") && word.contains('='));
        assert!(!handler, "inline event handler");
        for (name, _, body) in ASSETS {
            assert!(!body.contains("innerHTML"), "{name} uses innerHTML");
        }
    }
}
