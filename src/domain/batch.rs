//! Graph JSON batching (SPEC §3a): the body of `POST /{version}/$batch`,
//! checked. A batch is up to [`MAX_BATCH_REQUESTS`] requests, each with a
//! unique id, a method, a URL relative to the version, optional headers and
//! body, and optional `dependsOn` ids; a malformed batch is refused as a
//! whole. What each request then answers is the business of the request
//! itself, sent through the same router as if alone.

use std::collections::HashMap;

use base64::Engine;
use serde_json::Value;

use super::DomainError;

mod url;

use url::relative_url;

/// The most requests one batch may hold (Graph's limit).
pub const MAX_BATCH_REQUESTS: usize = 20;

/// The methods a batched request may use (Graph's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMethod {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl BatchMethod {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchMethod::Get => "GET",
            BatchMethod::Post => "POST",
            BatchMethod::Put => "PUT",
            BatchMethod::Patch => "PATCH",
            BatchMethod::Delete => "DELETE",
        }
    }

    /// Parses a method name, ignoring ASCII case.
    fn parse(text: &str) -> Option<Self> {
        [
            BatchMethod::Get,
            BatchMethod::Post,
            BatchMethod::Put,
            BatchMethod::Patch,
            BatchMethod::Delete,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(text))
    }
}

/// One request of a batch, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    /// The caller's id, echoed in the response.
    pub id: String,
    /// The method.
    pub method: BatchMethod,
    /// Path and query relative to the version, starting with `/`, every
    /// byte a valid URI character (others percent-encoded).
    pub url: String,
    /// Header names and values as given (names are HTTP tokens, values
    /// printable ASCII).
    pub headers: Vec<(String, String)>,
    /// The body bytes: a JSON body re-serialized, a string body
    /// base64-decoded; `None` without a body.
    pub body: Option<Vec<u8>>,
    /// Indexes (into the batch) of the requests this one runs after.
    pub depends_on: Vec<usize>,
    /// The version the url named in a `/v1.0` or `/beta` prefix (which
    /// [`BatchRequest::url`] no longer has); it must be the batch's own
    /// ([`Batch::check_version`]). The JavaScript client sends this form.
    pub version: Option<&'static str>,
}

/// A checked batch: its requests in the order given. Dependencies name
/// earlier or later requests of the batch and form no cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    requests: Vec<BatchRequest>,
}

impl Batch {
    /// The requests, in the order given.
    pub fn requests(&self) -> &[BatchRequest] {
        &self.requests
    }

    /// Takes the requests.
    pub fn into_requests(self) -> Vec<BatchRequest> {
        self.requests
    }

    /// Refuses a request whose url named a version other than the batch's
    /// own (`version`: `v1.0` or `beta`).
    pub fn check_version(&self, version: &str) -> Result<(), DomainError> {
        match self
            .requests
            .iter()
            .find(|r| r.version.is_some_and(|v| v != version))
        {
            Some(r) => Err(DomainError::BatchUrlOutsideVersion {
                id: r.id.clone(),
                url: format!("/{}{}", r.version.unwrap_or_default(), r.url),
            }),
            None => Ok(()),
        }
    }
}

impl TryFrom<&[u8]> for Batch {
    type Error = DomainError;

    /// Parses and checks a batch body (rules of SPEC §3a).
    fn try_from(bytes: &[u8]) -> Result<Self, DomainError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| DomainError::BatchNotJson(e.to_string()))?;
        let list = match value.get("requests") {
            Some(Value::Array(list)) => list,
            Some(_) | None => return Err(DomainError::BatchMissingRequests),
        };
        if list.is_empty() || list.len() > MAX_BATCH_REQUESTS {
            return Err(DomainError::BatchSize {
                count: list.len(),
                max: MAX_BATCH_REQUESTS,
            });
        }
        let mut index_of: HashMap<String, usize> = HashMap::new();
        let mut parsed = Vec::with_capacity(list.len());
        for (index, item) in list.iter().enumerate() {
            let raw = RawRequest::parse(index, item)?;
            if index_of
                .insert(raw.id.to_ascii_lowercase(), index)
                .is_some()
            {
                return Err(DomainError::DuplicateBatchId(raw.id));
            }
            parsed.push(raw);
        }
        let mut requests = Vec::with_capacity(parsed.len());
        for raw in parsed {
            let mut depends_on = Vec::with_capacity(raw.depends_on.len());
            for dependency in &raw.depends_on {
                let index = *index_of
                    .get(&dependency.to_ascii_lowercase())
                    .ok_or_else(|| DomainError::UnknownBatchDependency {
                        id: raw.id.clone(),
                        depends_on: dependency.clone(),
                    })?;
                if !depends_on.contains(&index) {
                    depends_on.push(index);
                }
            }
            requests.push(BatchRequest {
                id: raw.id,
                method: raw.method,
                url: raw.url,
                headers: raw.headers,
                body: raw.body,
                depends_on,
                version: raw.version,
            });
        }
        check_acyclic(&requests)?;
        Ok(Batch { requests })
    }
}

/// One request as parsed, before its dependencies are resolved.
struct RawRequest {
    id: String,
    method: BatchMethod,
    url: String,
    version: Option<&'static str>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    depends_on: Vec<String>,
}

impl RawRequest {
    fn parse(index: usize, item: &Value) -> Result<Self, DomainError> {
        let invalid = |reason: &str| DomainError::BatchRequestInvalid {
            index,
            reason: reason.to_string(),
        };
        let Value::Object(fields) = item else {
            return Err(invalid("a request must be a JSON object"));
        };
        let id = match fields.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => return Err(invalid("id is required and must be a non-empty string")),
        };
        let method = match fields.get("method") {
            Some(Value::String(m)) => {
                BatchMethod::parse(m).ok_or_else(|| DomainError::UnknownBatchMethod {
                    id: id.clone(),
                    method: m.clone(),
                })?
            }
            _ => return Err(invalid("method is required and must be a string")),
        };
        let (url, version) = match fields.get("url") {
            Some(Value::String(u)) if !u.trim().is_empty() => relative_url(&id, u)?,
            _ => return Err(invalid("url is required and must be a non-empty string")),
        };
        let headers = match fields.get("headers") {
            None | Some(Value::Null) => vec![],
            Some(Value::Object(map)) => {
                let mut headers = Vec::with_capacity(map.len());
                for (name, value) in map {
                    let value = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return Err(invalid("header values must be strings")),
                    };
                    let printable = value
                        .bytes()
                        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
                    if !is_token(name) || !printable {
                        return Err(invalid(
                            "headers must be valid HTTP header names and values",
                        ));
                    }
                    headers.push((name.clone(), value));
                }
                headers
            }
            Some(_) => return Err(invalid("headers must be a JSON object")),
        };
        let body = match fields.get("body") {
            None | Some(Value::Null) => None,
            // Graph's other body form: base64 (standard or URL-safe).
            Some(Value::String(text)) => Some(decode_base64(text).ok_or_else(|| {
                invalid("a string body must be base64-encoded; send JSON bodies as JSON")
            })?),
            Some(json) => Some(serde_json::to_vec(json).map_err(|e| invalid(&e.to_string()))?),
        };
        let depends_on = match fields.get("dependsOn") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("dependsOn must be an array of request ids"))?,
            Some(_) => return Err(invalid("dependsOn must be an array of request ids")),
        };
        Ok(RawRequest {
            id,
            method,
            url,
            version,
            headers,
            body,
            depends_on,
        })
    }
}

/// Whether `name` is an HTTP token (a valid header name).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Decodes standard or URL-safe base64, padded or not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// Refuses dependencies that form a cycle, naming the requests on it.
fn check_acyclic(requests: &[BatchRequest]) -> Result<(), DomainError> {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    fn visit(
        at: usize,
        requests: &[BatchRequest],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        state[at] = 1;
        path.push(at);
        for &next in &requests[at].depends_on {
            match state[next] {
                1 => {
                    let start = path.iter().position(|&i| i == next).unwrap_or(0);
                    return Err(path[start..].to_vec());
                }
                0 => visit(next, requests, state, path)?,
                _ => {}
            }
        }
        path.pop();
        state[at] = 2;
        Ok(())
    }
    let mut state = vec![0u8; requests.len()];
    for start in 0..requests.len() {
        if state[start] == 0 {
            let mut path = vec![];
            visit(start, requests, &mut state, &mut path).map_err(|cycle| {
                DomainError::BatchDependencyCycle(
                    cycle.iter().map(|&i| requests[i].id.clone()).collect(),
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<Batch, DomainError> {
        Batch::try_from(serde_json::to_vec(&body).unwrap().as_slice())
    }

    fn get(id: &str) -> Value {
        json!({"id": id, "method": "GET", "url": "/me/presence"})
    }

    #[test]
    fn a_batch_of_requests_parses_with_urls_headers_bodies_and_dependencies() {
        let batch = parse(json!({"requests": [
            {"id": "1", "method": "post", "url": "users/abc/presence/setPresence",
             "headers": {"Content-Type": "application/json"},
             "body": {"sessionId": "s", "availability": "Busy"}},
            {"id": "2", "method": "GET", "url": "/communications/presences?$filter=id eq 'x'#frag",
             "dependsOn": ["1"]},
            {"id": "3", "method": "POST", "url": "/me/presence/clearUserPreferredPresence",
             "headers": {"content-type": "application/json"}, "body": "e30="},
        ]}))
        .unwrap();
        let r = batch.requests();
        assert_eq!(r[0].method, BatchMethod::Post);
        assert_eq!(r[0].url, "/users/abc/presence/setPresence");
        assert_eq!(
            r[0].headers,
            vec![("Content-Type".to_string(), "application/json".to_string())]
        );
        let body: Value = serde_json::from_slice(r[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(body["availability"], "Busy");
        assert_eq!(r[1].url, "/communications/presences?$filter=id%20eq%20'x'");
        assert_eq!(r[1].depends_on, vec![0]);
        assert_eq!(r[1].body, None);
        assert_eq!(r[2].body.as_deref(), Some(&b"{}"[..]));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_are_refused_without_panicking(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = Batch::try_from(bytes.as_slice());
        }

        #[test]
        fn any_url_method_and_dependencies_parse_or_are_refused(
            url in "\\PC{0,40}",
            method in "[A-Za-z]{0,7}",
            deps in proptest::collection::vec("[0-3]", 0..4),
        ) {
            let body = json!({"requests": [
                {"id": "0", "method": method, "url": url, "dependsOn": deps},
                {"id": "1", "method": "GET", "url": "/me/presence", "dependsOn": ["0"]},
            ]});
            if let Ok(batch) = parse(body) {
                let url = &batch.requests()[0].url;
                proptest::prop_assert!(url.starts_with('/'));
                proptest::prop_assert!(url.bytes().all(|b| b.is_ascii_graphic()));
            }
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_refused() {
        let err = Batch::try_from(&b"{nope"[..]).unwrap_err();
        assert!(matches!(err, DomainError::BatchNotJson(_)), "{err:?}");
        assert!(err
            .to_string()
            .starts_with("The batch body is not valid JSON"));
    }

    #[test]
    fn a_batch_without_a_requests_array_is_refused() {
        for body in [json!({}), json!({"requests": {}}), json!({"request": []})] {
            assert_eq!(parse(body).unwrap_err(), DomainError::BatchMissingRequests);
        }
    }

    #[test]
    fn a_batch_holds_one_to_twenty_requests() {
        let requests =
            |n: usize| -> Value { Value::Array((0..n).map(|i| get(&i.to_string())).collect()) };
        assert!(parse(json!({ "requests": requests(20) })).is_ok());
        let err = parse(json!({ "requests": requests(21) })).unwrap_err();
        assert_eq!(err, DomainError::BatchSize { count: 21, max: 20 });
        assert_eq!(
            err.to_string(),
            "A batch holds between 1 and 20 requests; this one holds 21."
        );
        assert_eq!(
            parse(json!({"requests": []})).unwrap_err(),
            DomainError::BatchSize { count: 0, max: 20 }
        );
    }

    #[test]
    fn ids_must_be_unique_ignoring_case() {
        let err = parse(json!({"requests": [get("a"), get("A")]})).unwrap_err();
        assert_eq!(err, DomainError::DuplicateBatchId("A".to_string()));
    }

    #[test]
    fn missing_or_ill_typed_fields_are_refused_with_the_request_index() {
        for (request, reason) in [
            (
                json!({"method": "GET", "url": "/me/presence"}),
                "id is required",
            ),
            (
                json!({"id": 1, "method": "GET", "url": "/me/presence"}),
                "id is required",
            ),
            (
                json!({"id": "1", "url": "/me/presence"}),
                "method is required",
            ),
            (json!({"id": "1", "method": "GET"}), "url is required"),
            (
                json!({"id": "1", "method": "GET", "url": "/x", "headers": []}),
                "headers must",
            ),
            (
                json!({"id": "1", "method": "GET", "url": "/x", "headers": {"a b": "c"}}),
                "headers must",
            ),
            (
                json!({"id": "1", "method": "GET", "url": "/x", "headers": {"a": "c\r\nd: e"}}),
                "headers must",
            ),
            (
                json!({"id": "1", "method": "GET", "url": "/x", "body": "not base64!"}),
                "base64",
            ),
            (
                json!({"id": "1", "method": "GET", "url": "/x", "dependsOn": "2"}),
                "dependsOn",
            ),
            (json!("a string"), "JSON object"),
        ] {
            let err = parse(json!({ "requests": [request] })).unwrap_err();
            let DomainError::BatchRequestInvalid {
                index: 0,
                reason: got,
            } = &err
            else {
                panic!("{err:?}");
            };
            assert!(got.contains(reason), "{got} / {reason}");
            assert!(err.to_string().starts_with("requests[0]: "), "{err}");
        }
    }

    #[test]
    fn an_unknown_method_is_refused_by_name() {
        let err =
            parse(json!({"requests": [{"id": "1", "method": "TRACE", "url": "/me/presence"}]}))
                .unwrap_err();
        assert_eq!(
            err,
            DomainError::UnknownBatchMethod {
                id: "1".to_string(),
                method: "TRACE".to_string()
            }
        );
    }

    #[test]
    fn a_dependency_on_an_unknown_id_is_refused() {
        let mut second = get("2");
        second["dependsOn"] = json!(["9"]);
        let err = parse(json!({"requests": [get("1"), second]})).unwrap_err();
        assert_eq!(
            err,
            DomainError::UnknownBatchDependency {
                id: "2".to_string(),
                depends_on: "9".to_string()
            }
        );
    }

    #[test]
    fn dependency_cycles_are_refused_naming_the_requests_on_them() {
        let with = |id: &str, deps: &[&str]| {
            let mut r = get(id);
            r["dependsOn"] = json!(deps);
            r
        };
        let err =
            parse(json!({"requests": [with("1", &["3"]), with("2", &["1"]), with("3", &["2"])]}))
                .unwrap_err();
        let DomainError::BatchDependencyCycle(ids) = &err else {
            panic!("{err:?}");
        };
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, vec!["1", "2", "3"]);
        let err = parse(json!({"requests": [with("1", &["1"])]})).unwrap_err();
        assert_eq!(
            err,
            DomainError::BatchDependencyCycle(vec!["1".to_string()])
        );
        // A diamond is no cycle; dependencies are case-insensitive.
        assert!(parse(json!({"requests": [
            get("a"), with("b", &["A"]), with("c", &["a"]), with("d", &["b", "c"])
        ]}))
        .is_ok());
    }
}
