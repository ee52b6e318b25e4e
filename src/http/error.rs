//! [`GraphError`], the only error type the HTTP layer answers with, and the
//! one function that renders Graph's error JSON (SPEC §6).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::model::{ErrorDetail, ErrorResponse, InnerError};
use crate::auth::AuthError;
use crate::clock::Instant;
use crate::domain::DomainError;
use crate::store::StoreError;

/// Seconds a client is asked to wait when the store is unavailable.
const STORE_RETRY_AFTER: u64 = 5;

/// A Graph-style error: status, code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// HTTP status.
    pub status: StatusCode,
    /// Graph error code (`invalidRequest`, `Forbidden`, …).
    pub code: &'static str,
    /// Human-readable message; never contains tokens or driver text.
    pub message: String,
    /// Seconds to wait before retrying (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
    /// Why a server error happened, for the one log line the edge writes
    /// about it (never sent to the client).
    pub cause: Option<String>,
}

impl GraphError {
    /// 400 `invalidRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalidRequest", message)
    }

    /// 403 `Forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 404 `itemNotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "itemNotFound", message)
    }

    /// 500 `generalException` with a generic message (the cause is logged,
    /// never sent).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "generalException",
            "An internal server error occurred.",
        )
    }

    /// 503 `serviceNotAvailable` with `Retry-After`: the store cannot serve
    /// requests now (Redis unreachable, a failing disk); the cause is
    /// logged, never sent.
    pub fn unavailable(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                format!("The service is unavailable; retry after {retry_after} seconds."),
            )
        }
    }

    /// 429 `TooManyRequests` with `Retry-After` (SPEC §6).
    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!(
                    "Too many requests from this application in this tenant; retry after {retry_after} seconds."
                ),
            )
        }
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            cause: None,
        }
    }

    /// The error with `cause` kept for the log (never sent).
    pub fn with_cause(self, cause: impl std::fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..self
        }
    }

    /// The body `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.
    pub fn body(&self, date: Instant, request_id: &str, client_request_id: &str) -> ErrorResponse {
        ErrorResponse {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                inner_error: InnerError {
                    date: date.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    request_id: request_id.to_string(),
                    client_request_id: client_request_id.to_string(),
                },
            },
        }
    }

    /// Renders the error: status, [`Self::body`], and `Retry-After` or
    /// `WWW-Authenticate` where they apply.
    pub fn render(&self, date: Instant, request_id: &str, client_request_id: &str) -> Response {
        let body = self.body(date, request_id, client_request_id);
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Marker left in a response's extensions so the request-id middleware can
/// render the error body with the request's ids.
#[derive(Debug, Clone)]
pub(crate) struct PendingError(pub(crate) GraphError);

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        // Rendered for real by `request_ids` once the ids are known; this
        // body only shows if that middleware is missing.
        let mut response = self.render(crate::clock::wall_now(), "", "");
        response.extensions_mut().insert(PendingError(self));
        response
    }
}

impl From<DomainError> for GraphError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::UnknownAvailability(_)
            | DomainError::UnknownActivity(_)
            | DomainError::InvalidSessionPair(..)
            | DomainError::InvalidPreferredPair(..)
            | DomainError::MalformedDuration(_)
            | DomainError::DurationOutOfRange { .. }
            | DomainError::InvalidGuid(_)
            | DomainError::StatusMessageTooLong(..)
            | DomainError::InvalidContentType(_)
            | DomainError::UnknownTimeZone(_)
            | DomainError::MalformedDateTime(_)
            | DomainError::UnknownWorkLocationType(_)
            | DomainError::SessionIdMismatch { .. }
            | DomainError::MissingStatusMessage
            | DomainError::ExpiryOutOfRange { .. }
            | DomainError::PlaceIdTooLong(_)
            | DomainError::UnsupportedSubscriptionResource(_)
            | DomainError::NoResourceUsers
            | DomainError::TooManyResourceUsers { .. }
            | DomainError::UnsupportedResourceQueryOption(_)
            | DomainError::UnsupportedChangeType(_)
            | DomainError::ExpirationInPast { .. }
            | DomainError::ExpirationTooFar { .. }
            | DomainError::ClientStateTooLong(..)
            | DomainError::EncryptionCertificateIdTooLong(..)
            | DomainError::InvalidNotificationUrl { .. }
            | DomainError::NotificationUrlTooLong { .. }
            | DomainError::UnsupportedNotificationUrlScheme { .. }
            | DomainError::NotificationUrlWithCredentials(_)
            | DomainError::NotificationUrlDestinationRefused { .. }
            | DomainError::InvalidAllowedNetwork(_) => GraphError::bad_request(e.to_string()),
            // Graph's exact code for this case (SPEC §7).
            DomainError::HttpNotificationUrl(_) => {
                GraphError::new(StatusCode::BAD_REQUEST, "InvalidRequest", e.to_string())
            }
            DomainError::NoSuchSession(_) => GraphError::not_found(e.to_string()),
            // Graph's code for malformed OData queries and batches.
            DomainError::UnknownPresenceProperty(_)
            | DomainError::UnsupportedQueryOption(_)
            | DomainError::RepeatedQueryOption(_)
            | DomainError::InvalidTop(..)
            | DomainError::InvalidUsersFilter(_)
            | DomainError::InvalidSkipToken(_)
            | DomainError::UnsupportedUsersQueryOption(_)
            | DomainError::BatchNotJson(_)
            | DomainError::BatchMissingRequests
            | DomainError::BatchSize { .. }
            | DomainError::BatchRequestInvalid { .. }
            | DomainError::DuplicateBatchId(_)
            | DomainError::UnknownBatchMethod { .. }
            | DomainError::BatchUrlAbsolute { .. }
            | DomainError::BatchUrlOutsideVersion { .. }
            | DomainError::NestedBatch(_)
            | DomainError::UnknownBatchDependency { .. }
            | DomainError::BatchDependencyCycle(_) => {
                GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", e.to_string())
            }
        }
    }
}

impl From<AuthError> for GraphError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::PersonalAccount | AuthError::Forbidden(_) => {
                GraphError::forbidden(e.to_string())
            }
            AuthError::MissingToken
            | AuthError::Malformed(_)
            | AuthError::BadSignature
            | AuthError::UnsupportedAlgorithm(_)
            | AuthError::UnknownKey
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::WrongAudience
            | AuthError::WrongIssuer
            | AuthError::MissingClaim(_)
            | AuthError::KeySource(_) => GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                e.to_string(),
            ),
        }
    }
}

impl From<StoreError> for GraphError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(message) => GraphError::not_found(message),
            // The cause is logged once, by the edge, with the request's ids.
            StoreError::Unavailable(_) => GraphError::unavailable(STORE_RETRY_AFTER).with_cause(e),
            StoreError::Corrupt(_) => GraphError::internal().with_cause(e),
            StoreError::Unsupported(message) => {
                GraphError::new(StatusCode::NOT_IMPLEMENTED, "notImplemented", message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_store_is_503_with_retry_after_and_no_cause() {
        let e = GraphError::from(StoreError::Unavailable("redis: connection refused".into()));
        let r = e.render(chrono::DateTime::UNIX_EPOCH, "req", "client");

        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        assert_eq!(e.code, "serviceNotAvailable");
        assert!(!e.message.contains("redis"), "{}", e.message);
        // Kept for the edge's log line only.
        assert!(
            e.cause
                .as_deref()
                .is_some_and(|c| c.contains("connection refused")),
            "{:?}",
            e.cause
        );
    }

    #[test]
    fn corrupt_stored_data_stays_a_500() {
        let e = GraphError::from(StoreError::Corrupt("bad bytes".into()));

        assert_eq!(
            (e.status, e.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "generalException")
        );
        assert_eq!(e.retry_after, None);
    }
}
