//! One documented operation (`Op`): what its success carries, the error
//! statuses its kind answers with (each kept once under
//! `components/responses`), its security, and how it renders.

use std::borrow::Cow;

use utoipa::openapi::path::{Operation, OperationBuilder, Parameter};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, Ref, RefOr, Required, ResponseBuilder, Schema};

use super::params::string_schema;

/// The name of the bearer-token security scheme.
pub(super) const BEARER: &str = "bearerAuth";

/// Every error status presenced answers with, each with Graph's error body,
/// kept once under `components/responses` as `Error{status}`.
pub(super) const ERROR_RESPONSES: [(u16, &str); 12] = [
    (400, "The request or its body is invalid."),
    (401, "The bearer token is missing or invalid."),
    (403, "The token lacks the permission."),
    (404, "No such resource (or the endpoint is disabled)."),
    (408, "The body was not uploaded in time."),
    (409, "The change conflicts with an existing resource."),
    (413, "The body is too large."),
    (414, "The request URI is too long."),
    (415, "The body is not JSON."),
    (
        429,
        "Throttled (`--rate-limit`); `Retry-After` says when to retry.",
    ),
    (431, "The request headers are too large."),
    (
        503,
        "The store cannot serve requests (Redis unreachable, a failing disk); `Retry-After` says when to retry.",
    ),
];

/// The error statuses a kind of operation can answer with.
#[derive(Clone, Copy)]
pub(super) enum Errors {
    /// Public reads: only the request-head limits.
    Public,
    /// Authenticated reads without a body.
    Read,
    /// Authenticated calls with a JSON body.
    Write,
}

impl Errors {
    pub(super) fn statuses(self) -> &'static [u16] {
        match self {
            Errors::Public => &[414, 431],
            Errors::Read => &[400, 401, 403, 404, 414, 429, 431, 503],
            Errors::Write => &[400, 401, 403, 404, 408, 409, 413, 414, 415, 429, 431, 503],
        }
    }
}

/// What a successful answer carries.
pub(super) enum Success {
    /// `200` with a JSON body of the named schema.
    Json(u16, Cow<'static, str>),
    /// `200` with a JSON body of any of the named schemas (a presence read,
    /// with or without `$select`).
    JsonAnyOf(u16, [Cow<'static, str>; 2]),
    /// A status without a body.
    Empty(u16),
    /// `200` `text/event-stream`.
    EventStream,
    /// `200` Prometheus text exposition format.
    Prometheus,
}

/// One documented operation.
pub(super) struct Op {
    pub(super) id: String,
    pub(super) tag: &'static str,
    pub(super) summary: String,
    pub(super) params: Vec<Parameter>,
    pub(super) body: Option<Cow<'static, str>>,
    pub(super) success: Success,
    pub(super) errors: Errors,
    pub(super) authenticated: bool,
}

pub(super) fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

impl Op {
    pub(super) fn into_operation(self) -> Operation {
        let mut op = OperationBuilder::new()
            .operation_id(Some(self.id))
            .tag(self.tag)
            .summary(Some(self.summary))
            .parameters(Some(self.params));
        if let Some(body) = self.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/json", Content::new(Some(schema_ref(&body))))
                    .build(),
            ));
        }
        op = match self.success {
            Success::Json(status, schema) => op.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description("Success.")
                    .content("application/json", Content::new(Some(schema_ref(&schema)))),
            ),
            Success::JsonAnyOf(status, schemas) => {
                let any_of = schemas
                    .iter()
                    .fold(utoipa::openapi::schema::AnyOfBuilder::new(), |b, name| {
                        b.item(schema_ref(name))
                    });
                op.response(
                    status.to_string(),
                    ResponseBuilder::new()
                        .description("Success.")
                        .content("application/json", Content::new(Some(any_of))),
                )
            }
            Success::Empty(status) => op.response(
                status.to_string(),
                ResponseBuilder::new().description("Success; no body."),
            ),
            Success::EventStream => op.response(
                "200",
                ResponseBuilder::new()
                    .description("Server-sent events: `presence` events whose data is a presence, and `reset` events.")
                    .content("text/event-stream", Content::new(Some(string_schema()))),
            ),
            Success::Prometheus => op.response(
                "200",
                ResponseBuilder::new()
                    .description("Metrics in Prometheus text format (version 0.0.4).")
                    .content("text/plain", Content::new(Some(string_schema()))),
            ),
        };
        for status in self.errors.statuses() {
            op = op.response(
                status.to_string(),
                RefOr::Ref(Ref::from_response_name(format!("Error{status}"))),
            );
        }
        if self.authenticated {
            op = op.security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
        } else {
            op = op.securities(Some(Vec::<SecurityRequirement>::new()));
        }
        op.build()
    }
}
