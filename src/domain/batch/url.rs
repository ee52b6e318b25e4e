//! The `url` of a batched request: relative to the batch's version, never
//! leaving it, never another batch (SPEC §3a).

use crate::domain::DomainError;

/// Checks a request's `url` and returns it as `/path?query` relative to the
/// version, with the version it named in a `/v1.0/` or `/beta/` prefix, if
/// any (the prefix is taken off). Absolute URLs, `.` or `..` segments (which
/// would leave the version) and nested `$batch` requests are refused. Bytes
/// that are not URI characters (spaces in a `$filter`, say) are
/// percent-encoded; a fragment is dropped.
pub(super) fn relative_url(
    id: &str,
    url: &str,
) -> Result<(String, Option<&'static str>), DomainError> {
    let text = url.trim();
    let lower = text.to_ascii_lowercase();
    let scheme = lower
        .split_once(':')
        .is_some_and(|(s, _)| !s.is_empty() && !s.contains(['/', '?']));
    if scheme || lower.starts_with("//") || lower.starts_with("\\\\") {
        return Err(DomainError::BatchUrlAbsolute {
            id: id.to_string(),
            url: url.to_string(),
        });
    }
    let text = text.split('#').next().unwrap_or_default();
    let mut out = String::with_capacity(text.len() + 1);
    if !text.starts_with('/') {
        out.push('/');
    }
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/?[]@!$&'()*+,;=%".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    let path = out.split('?').next().unwrap_or_default();
    let segments: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| {
            crate::domain::query::decode(s)
                .unwrap_or_else(|| s.to_string())
                .to_ascii_lowercase()
        })
        .collect();
    if segments
        .iter()
        .any(|s| s == "." || s == ".." || s.contains('\\'))
    {
        return Err(DomainError::BatchUrlOutsideVersion {
            id: id.to_string(),
            url: url.to_string(),
        });
    }
    if segments.iter().any(|s| s == "$batch") {
        return Err(DomainError::NestedBatch(id.to_string()));
    }
    let version = match segments.first().map(String::as_str) {
        Some("v1.0") => Some("v1.0"),
        Some("beta") => Some("beta"),
        _ => None,
    };
    if let Some(v) = version {
        out.replace_range(..=v.len(), "");
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
    }
    Ok((out, version))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::domain::{Batch, DomainError};

    fn parse(body: Value) -> Result<Batch, DomainError> {
        Batch::try_from(serde_json::to_vec(&body).unwrap().as_slice())
    }

    fn get(id: &str) -> Value {
        json!({"id": id, "method": "GET", "url": "/me/presence"})
    }

    #[test]
    fn absolute_urls_are_refused() {
        for url in [
            "https://graph.microsoft.com/v1.0/me/presence",
            "http://127.0.0.1/v1.0/me/presence",
            "//evil.example/v1.0/me",
            "mailto:x",
        ] {
            let err =
                parse(json!({"requests": [{"id": "1", "method": "GET", "url": url}]})).unwrap_err();
            assert!(
                matches!(err, DomainError::BatchUrlAbsolute { .. }),
                "{url}: {err:?}"
            );
        }
    }

    #[test]
    fn a_version_prefix_is_taken_off_and_must_be_the_batchs_own() {
        let batch = parse(json!({"requests": [
            get("1"),
            {"id": "2", "method": "GET", "url": "/v1.0/users/x/presence?$select=id"},
            {"id": "3", "method": "GET", "url": "beta"},
        ]}))
        .unwrap();
        let r = batch.requests();
        assert_eq!((r[0].url.as_str(), r[0].version), ("/me/presence", None));
        assert_eq!(
            (r[1].url.as_str(), r[1].version),
            ("/users/x/presence?$select=id", Some("v1.0"))
        );
        assert_eq!((r[2].url.as_str(), r[2].version), ("/", Some("beta")));
        let err = batch.check_version("v1.0").unwrap_err();
        assert_eq!(
            err,
            DomainError::BatchUrlOutsideVersion {
                id: "3".to_string(),
                url: "/beta/".to_string()
            }
        );
        let batch = parse(json!({"requests": [
            {"id": "1", "method": "GET", "url": "/beta/me/presence"},
        ]}))
        .unwrap();
        assert!(batch.check_version("beta").is_ok());
        assert!(batch.check_version("v1.0").is_err());
    }

    #[test]
    fn urls_that_leave_the_version_are_refused() {
        for url in [
            "/../_presenced/clock",
            "/users/%2E%2E/%2e%2e/_presenced/state",
            "/me/./presence",
            "/me\\..\\x",
        ] {
            let err =
                parse(json!({"requests": [{"id": "1", "method": "GET", "url": url}]})).unwrap_err();
            assert!(
                matches!(err, DomainError::BatchUrlOutsideVersion { .. }),
                "{url}: {err:?}"
            );
        }
    }

    #[test]
    fn a_nested_batch_is_refused() {
        for url in ["/$batch", "%24batch", "/$BATCH?x=1"] {
            let err = parse(json!({"requests": [{"id": "7", "method": "POST", "url": url}]}))
                .unwrap_err();
            assert_eq!(err, DomainError::NestedBatch("7".to_string()), "{url}");
        }
    }
}
