//! The OpenAPI 3.1 document served at `GET /_presenced/openapi.json`,
//! generated from the code: schemas come from the `ToSchema` derives on the
//! request bodies (`domain`, `notify`, `http`) and on the typed answers
//! ([`super::model`]); the presence actions come from the router's own
//! table ([`super::action_table`]). A snapshot test and the schemathesis run
//! of `scripts/test.sh` keep it true.

use std::borrow::Cow;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, Parameter, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Content, ObjectBuilder, OpenApi as Document, Ref, RefOr, Required, ResponseBuilder, Schema,
};
use utoipa::{OpenApi, ToSchema};

use super::admin::{ClientSessionBody, MoveClock};
use super::batch::{BatchRequestBody, BatchRequestItem, BatchResponseBody, BatchResponseItem};
use super::faults::{FaultBody, FaultRule, FaultRuleCollection};
use super::journal::{JournalCollection, MAX_JOURNAL_SIZE};
use super::model;
use super::presence::{IdsBody, MAX_IDS};
use super::state::StateDocument;
use crate::domain::{
    ClearPresenceBody, LocationBody, PresenceProperty, SetPreferredBody, SetPresenceBody,
    SetStatusMessageBody, MAX_BATCH_REQUESTS,
};
use crate::notify::signing::JsonWebKeySet;
use crate::notify::subscriptions::{CreateBody, PatchBody};

/// The schemas every operation refers to.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "presenced",
        description = "The Microsoft Graph presence API, self-hosted: Graph's paths under /v1.0 and /beta, and presenced's own under /_presenced.",
        license(name = "MIT", identifier = "MIT"),
    ),
    components(schemas(
        model::Presence,
        model::PresenceCollection,
        model::SelectedPresence,
        model::SelectedPresenceCollection,
        BatchRequestBody,
        BatchRequestItem,
        BatchResponseBody,
        BatchResponseItem,
        model::Subscription,
        model::SubscriptionCollection,
        model::ErrorResponse,
        model::Status,
        model::ClockTime,
        model::PresenceExplanation,
        model::ListedUser,
        model::UserCollection,
        JsonWebKeySet,
        IdsBody,
        SetPresenceBody,
        ClearPresenceBody,
        SetPreferredBody,
        SetStatusMessageBody,
        LocationBody,
        CreateBody,
        PatchBody,
        MoveClock,
        ClientSessionBody,
        StateDocument,
        FaultBody,
        FaultRule,
        FaultRuleCollection,
        JournalCollection,
    ))
)]
struct Schemas;

/// The name of the bearer-token security scheme.
const BEARER: &str = "bearerAuth";

/// How a Graph action on a presence is documented: its body schema, if it
/// takes one, and what it does.
struct ActionDoc {
    body: Option<Cow<'static, str>>,
    summary: &'static str,
}

/// The documentation of each action of [`super::action_table`], by name.
fn action_doc(name: &str) -> Option<ActionDoc> {
    let (body, summary) = match name {
        "setPresence" => (
            Some(SetPresenceBody::name()),
            "Set the calling application's presence session for the user.",
        ),
        "clearPresence" => (
            Some(ClearPresenceBody::name()),
            "End the calling application's presence session for the user.",
        ),
        "setUserPreferredPresence" => (
            Some(SetPreferredBody::name()),
            "Set the user's preferred presence, which overrides the sessions.",
        ),
        "clearUserPreferredPresence" => (None, "Clear the user's preferred presence."),
        "setStatusMessage" => (
            Some(SetStatusMessageBody::name()),
            "Set or clear (empty content) the user's status message.",
        ),
        "setManualLocation" => (
            Some(LocationBody::name()),
            "Set the user's manual work location.",
        ),
        "setAutomaticLocation" => (
            Some(LocationBody::name()),
            "Set the user's automatically detected work location.",
        ),
        "clearLocation" => (None, "Clear both work-location layers."),
        "clearAutomaticLocation" => (None, "Clear the automatic work-location layer."),
        _ => return None,
    };
    Some(ActionDoc { body, summary })
}

/// Every error status presenced answers with, each with Graph's error body,
/// kept once under `components/responses` as `Error{status}`.
const ERROR_RESPONSES: [(u16, &str); 12] = [
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
enum Errors {
    /// Public reads: only the request-head limits.
    Public,
    /// Authenticated reads without a body.
    Read,
    /// Authenticated calls with a JSON body.
    Write,
}

impl Errors {
    fn statuses(self) -> &'static [u16] {
        match self {
            Errors::Public => &[414, 431],
            Errors::Read => &[400, 401, 403, 404, 414, 429, 431, 503],
            Errors::Write => &[400, 401, 403, 404, 408, 409, 413, 414, 415, 429, 431, 503],
        }
    }
}

/// What a successful answer carries.
enum Success {
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
struct Op {
    id: String,
    tag: &'static str,
    summary: String,
    params: Vec<Parameter>,
    body: Option<Cow<'static, str>>,
    success: Success,
    errors: Errors,
    authenticated: bool,
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String)
}

fn path_param(name: &str, description: &str, schema: ObjectBuilder) -> Parameter {
    Parameter::builder()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// The `{id}` path parameter: a GUID.
fn id_param(description: &str) -> Parameter {
    path_param(
        "id",
        description,
        string_schema().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Uuid,
        ))),
    )
}

fn version_param() -> Parameter {
    path_param(
        "version",
        "The Graph API version; both answer alike.",
        string_schema().enum_values(Some(["v1.0", "beta"])),
    )
}

/// The `$select` query option of presence reads (SPEC §2).
fn select_param() -> Parameter {
    let name = PresenceProperty::ALL
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join("|");
    Parameter::builder()
        .name("$select")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(
            "Comma-separated presence properties to return (plus id); an unknown property is a 400. Other OData options ($filter, $top, …) are refused with 400.",
        ))
        .schema(Some(
            string_schema().pattern(Some(format!("^(\\*|({name})(,({name}))*)?$"))),
        ))
        .build()
}

fn user_param() -> Parameter {
    id_param("The user's id.")
}

impl Op {
    fn into_operation(self) -> Operation {
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

/// Every documented operation, as (path, method, operation).
fn operations() -> Vec<(String, HttpMethod, Op)> {
    let mut out = Vec::new();
    let subjects: [(&str, &str, Vec<Parameter>); 3] = [
        ("/{version}/me/presence", "me", vec![version_param()]),
        (
            "/{version}/users/{id}/presence",
            "users",
            vec![version_param(), user_param()],
        ),
        (
            "/{version}/communications/presences/{id}",
            "presences",
            vec![version_param(), user_param()],
        ),
    ];
    for (path, subject, params) in &subjects {
        out.push((
            path.to_string(),
            HttpMethod::Get,
            Op {
                id: format!("{subject}.getPresence"),
                tag: "presence",
                summary: "Get a user's presence (all properties, or those $select names).".into(),
                params: params.iter().cloned().chain([select_param()]).collect(),
                body: None,
                success: Success::JsonAnyOf(
                    200,
                    [model::Presence::name(), model::SelectedPresence::name()],
                ),
                errors: Errors::Read,
                authenticated: true,
            },
        ));
        for (name, _) in super::action_table() {
            let Some(doc) = action_doc(name) else {
                continue;
            };
            for (spelling, suffix) in [
                (name.to_string(), ""),
                (format!("microsoft.graph.{name}"), ".namespaced"),
            ] {
                out.push((
                    format!("{path}/{spelling}"),
                    HttpMethod::Post,
                    Op {
                        id: format!("{subject}.{name}{suffix}"),
                        tag: "presence",
                        summary: doc.summary.into(),
                        params: params.clone(),
                        body: doc.body.clone(),
                        success: Success::Empty(200),
                        errors: Errors::Write,
                        authenticated: true,
                    },
                ));
            }
        }
    }
    for path in [
        "/{version}/communications/getPresencesByUserId",
        "/{version}/communications/microsoft.graph.getPresencesByUserId",
    ] {
        let namespaced = path.contains("microsoft.graph.");
        out.push((
            path.to_string(),
            HttpMethod::Post,
            Op {
                id: format!(
                    "communications.getPresencesByUserId{}",
                    if namespaced { ".namespaced" } else { "" }
                ),
                tag: "presence",
                summary: format!("Get the presences of 1 to {MAX_IDS} users, in request order ($select applies to each)."),
                params: vec![version_param(), select_param()],
                body: Some(IdsBody::name()),
                success: Success::JsonAnyOf(
                    200,
                    [
                        model::PresenceCollection::name(),
                        model::SelectedPresenceCollection::name(),
                    ],
                ),
                errors: Errors::Write,
                authenticated: true,
            },
        ));
    }
    out.push((
        "/{version}/$batch".to_string(),
        HttpMethod::Post,
        Op {
            id: "batch".to_string(),
            tag: "batch",
            summary: format!("JSON batching: run 1 to {MAX_BATCH_REQUESTS} requests (relative to the version) as if each were sent alone, with this request's token; dependsOn orders them, and a request whose dependency failed answers 424. Also at /{{version}}/%24batch."),
            params: vec![version_param()],
            body: Some(BatchRequestBody::name()),
            success: Success::Json(200, BatchResponseBody::name()),
            errors: Errors::Write,
            authenticated: true,
        },
    ));
    // The `{id}` parameter is documented where the path has one.
    let subscription = |path: &str, method, id: &str, summary: &str, body, success| {
        let mut params = vec![version_param()];
        if path.contains("{id}") {
            params.push(id_param("The subscription id."));
        }
        let op = Op {
            id: format!("subscriptions.{id}"),
            tag: "subscriptions",
            summary: summary.to_string(),
            params,
            body,
            success,
            errors: Errors::Write,
            authenticated: true,
        };
        (path.to_string(), method, op)
    };
    out.extend([
        subscription(
            "/{version}/subscriptions",
            HttpMethod::Post,
            "create",
            "Subscribe to presence changes (after the validation handshake).",
            Some(CreateBody::name()),
            Success::Json(201, model::Subscription::name()),
        ),
        subscription(
            "/{version}/subscriptions",
            HttpMethod::Get,
            "list",
            "List the caller's subscriptions.",
            None,
            Success::Json(200, model::SubscriptionCollection::name()),
        ),
        subscription(
            "/{version}/subscriptions/{id}",
            HttpMethod::Get,
            "get",
            "Get a subscription.",
            None,
            Success::Json(200, model::Subscription::name()),
        ),
        subscription(
            "/{version}/subscriptions/{id}",
            HttpMethod::Patch,
            "update",
            "Renew a subscription or change its notification URL.",
            Some(PatchBody::name()),
            Success::Json(200, model::Subscription::name()),
        ),
        subscription(
            "/{version}/subscriptions/{id}",
            HttpMethod::Delete,
            "delete",
            "Delete a subscription.",
            None,
            Success::Empty(204),
        ),
        subscription(
            "/{version}/subscriptions/{id}/reauthorize",
            HttpMethod::Post,
            "reauthorize",
            "Reauthorize a subscription.",
            None,
            Success::Empty(204),
        ),
    ]);
    let own = |id: &str, summary: &str, params, body, success, errors, authenticated| Op {
        id: format!("presenced.{id}"),
        tag: "presenced",
        summary: summary.to_string(),
        params,
        body,
        success,
        errors,
        authenticated,
    };
    let client_params = || {
        vec![
            user_param(),
            path_param(
                "name",
                "The simulated client's name.",
                string_schema().pattern(Some("^[A-Za-z0-9._-]{1,64}$")),
            ),
        ]
    };
    let events_params = vec![
        Parameter::builder()
            .name("ids")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(
                "Comma-separated user ids to follow; all users of the tenant when absent.",
            ))
            .schema(Some(string_schema()))
            .build(),
        Parameter::builder()
            .name("Last-Event-ID")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("Resume after this event id."))
            .schema(Some(string_schema()))
            .build(),
    ];
    out.extend([
        (
            "/_presenced/healthz".to_string(),
            HttpMethod::Get,
            own(
                "healthz",
                "The process is up.",
                vec![],
                None,
                Success::Json(200, model::Status::name()),
                Errors::Public,
                false,
            ),
        ),
        (
            "/_presenced/readyz".to_string(),
            HttpMethod::Get,
            own(
                "readyz",
                "The store answers reads and takes writes (503 while it cannot).",
                vec![],
                None,
                Success::Json(200, model::Status::name()),
                Errors::Read,
                false,
            ),
        ),
        (
            "/_presenced/metrics".to_string(),
            HttpMethod::Get,
            own(
                "metrics",
                "Prometheus metrics: requests by route, method and status with latency, store commits, users, notification deliveries, event-stream clients, scheduler lag. No token (scrapers carry none); with --metrics-listen it is served on that listener instead.",
                vec![],
                None,
                Success::Prometheus,
                Errors::Public,
                false,
            ),
        ),
        (
            "/_presenced/openapi.json".to_string(),
            HttpMethod::Get,
            own(
                "openapi",
                "This document.",
                vec![],
                None,
                Success::Json(200, "OpenApiDocument".into()),
                Errors::Public,
                false,
            ),
        ),
        (
            "/_presenced/.well-known/jwks.json".to_string(),
            HttpMethod::Get,
            own(
                "jwks",
                "The keys that verify rich notifications' validation tokens.",
                vec![],
                None,
                Success::Json(200, JsonWebKeySet::name()),
                Errors::Public,
                false,
            ),
        ),
        (
            "/_presenced/events".to_string(),
            HttpMethod::Get,
            own(
                "events",
                "Follow presence changes as server-sent events.",
                events_params,
                None,
                Success::EventStream,
                Errors::Read,
                true,
            ),
        ),
        (
            "/_presenced/clock".to_string(),
            HttpMethod::Get,
            own(
                "getClock",
                "The emulator clock's time (--manual-clock only; Presenced.Admin).",
                vec![],
                None,
                Success::Json(200, model::ClockTime::name()),
                Errors::Read,
                true,
            ),
        ),
        (
            "/_presenced/clock".to_string(),
            HttpMethod::Post,
            own(
                "moveClock",
                "Move the emulator clock forward and process what fell due (--manual-clock only; Presenced.Admin).",
                vec![],
                Some(MoveClock::name()),
                Success::Json(200, model::ClockTime::name()),
                Errors::Write,
                true,
            ),
        ),
        (
            "/_presenced/state".to_string(),
            HttpMethod::Get,
            own(
                "getState",
                "Every tenant's users and subscriptions and the clock, as one versioned document (--manual-clock only; Presenced.Admin).",
                vec![],
                None,
                Success::Json(200, StateDocument::name()),
                Errors::Read,
                true,
            ),
        ),
        (
            "/_presenced/state".to_string(),
            HttpMethod::Put,
            own(
                "putState",
                "Replace everything with a state document; answers the new state (--manual-clock only; Presenced.Admin).",
                vec![],
                Some(StateDocument::name()),
                Success::Json(200, StateDocument::name()),
                Errors::Write,
                true,
            ),
        ),
        (
            "/_presenced/reset".to_string(),
            HttpMethod::Post,
            own(
                "reset",
                "Wipe every tenant, or one (--manual-clock only; Presenced.Admin).",
                vec![Parameter::builder()
                    .name("tenant")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some("Wipe only this tenant."))
                    .schema(Some(string_schema().format(Some(
                        utoipa::openapi::SchemaFormat::KnownFormat(
                            utoipa::openapi::KnownFormat::Uuid,
                        ),
                    ))))
                    .build()],
                None,
                Success::Empty(204),
                Errors::Read,
                true,
            ),
        ),
        (
            "/_presenced/faults".to_string(),
            HttpMethod::Get,
            own(
                "listFaults",
                "The fault rules, oldest first (--manual-clock only; Presenced.Admin).",
                vec![],
                None,
                Success::Json(200, FaultRuleCollection::name()),
                Errors::Read,
                true,
            ),
        ),
        (
            "/_presenced/faults".to_string(),
            HttpMethod::Post,
            own(
                "createFault",
                "Add a fault rule: matching Graph requests are answered 429, 500, 503 or 504 (--manual-clock only; Presenced.Admin).",
                vec![],
                Some(FaultBody::name()),
                Success::Json(201, FaultRule::name()),
                Errors::Write,
                true,
            ),
        ),
        (
            "/_presenced/faults".to_string(),
            HttpMethod::Delete,
            own(
                "deleteFaults",
                "Remove every fault rule (--manual-clock only; Presenced.Admin).",
                vec![],
                None,
                Success::Empty(204),
                Errors::Read,
                true,
            ),
        ),
        (
            "/_presenced/faults/{id}".to_string(),
            HttpMethod::Delete,
            own(
                "deleteFault",
                "Remove one fault rule (--manual-clock only; Presenced.Admin).",
                vec![id_param("The rule's id.")],
                None,
                Success::Empty(204),
                Errors::Read,
                true,
            ),
        ),
        (
            "/_presenced/requests".to_string(),
            HttpMethod::Get,
            own(
                "listRequests",
                "The newest Graph requests, newest first, without tokens (--manual-clock only; Presenced.Admin).",
                vec![Parameter::builder()
                    .name("limit")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some("How many of the newest requests [default: all kept]."))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::Integer)
                            .minimum(Some(1))
                            .maximum(Some(MAX_JOURNAL_SIZE as u64)),
                    ))
                    .build()],
                None,
                Success::Json(200, JournalCollection::name()),
                Errors::Read,
                true,
            ),
        ),
        (
            "/_presenced/users/{id}/clientSessions/{name}".to_string(),
            HttpMethod::Put,
            own(
                "putClientSession",
                "Create or refresh a simulated Teams client session (--manual-clock only; Presenced.Admin).",
                client_params(),
                Some(ClientSessionBody::name()),
                Success::Json(200, model::Presence::name()),
                Errors::Write,
                true,
            ),
        ),
        (
            "/_presenced/users/{id}/clientSessions/{name}".to_string(),
            HttpMethod::Delete,
            own(
                "deleteClientSession",
                "End a simulated Teams client session (--manual-clock only; Presenced.Admin).",
                client_params(),
                None,
                Success::Empty(204),
                Errors::Read,
                true,
            ),
        ),
        (
            "/_presenced/users".to_string(),
            HttpMethod::Get,
            own(
                "listUsers",
                "The users of the caller's tenant that presenced knows, each with its presence, in id order (Presence.Read.All).",
                users_params(),
                None,
                Success::Json(200, model::UserCollection::name()),
                Errors::Read,
                true,
            ),
        ),
        (
            "/_presenced/users/{id}/presence".to_string(),
            HttpMethod::Get,
            own(
                "explainPresence",
                "A presence with the sessions and preferred presence behind it.",
                vec![user_param()],
                None,
                Success::Json(200, model::PresenceExplanation::name()),
                Errors::Read,
                true,
            ),
        ),
    ]);
    out
}

/// The users listing's query options.
fn users_params() -> Vec<Parameter> {
    let string = || ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String);
    vec![
        Parameter::builder()
            .name("$top")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("Users per page [default: 100]."))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(crate::domain::MAX_USERS_PAGE as u64)),
            ))
            .build(),
        Parameter::builder()
            .name("$filter")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(
                "availability eq 'Busy', or availability in ('Busy','Away').",
            ))
            .schema(Some(string().pattern(Some(
                r"^\s*[Aa][Vv][Aa][Ii][Ll][Aa][Bb][Ii][Ll][Ii][Tt][Yy]\s+([Ee][Qq]\s+'[A-Za-z]+'|[Ii][Nn]\s*\(\s*'[A-Za-z]+'(\s*,\s*'[A-Za-z]+')*\s*\))\s*$",
            ))))
            .build(),
        Parameter::builder()
            .name("$skiptoken")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("From the previous page's @odata.nextLink."))
            .schema(Some(string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Uuid,
            )))))
            .build(),
    ]
}

/// Builds the document.
pub fn document() -> Document {
    let mut doc = Schemas::openapi();
    for (path, method, op) in operations() {
        doc.paths
            .add_path_operation(path, vec![method], op.into_operation());
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An Entra ID-shaped access token (`presenced token` mints one).",
                ))
                .build(),
        ),
    );
    for (status, description) in ERROR_RESPONSES {
        components.responses.insert(
            format!("Error{status}"),
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        Content::new(Some(schema_ref(&model::ErrorResponse::name()))),
                    )
                    .build(),
            ),
        );
    }
    components.schemas.insert(
        "OpenApiDocument".to_string(),
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .description(Some("An OpenAPI 3.1 document."))
            .into(),
    );
    doc
}

/// The document as JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot render the document: {e}\"}}"))
    })
}

/// `GET /_presenced/openapi.json`: the OpenAPI 3.1 document. Public.
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_of_the_router_is_documented() {
        for (name, _) in super::super::action_table() {
            assert!(
                action_doc(name).is_some(),
                "action {name} is routed but has no entry in action_doc"
            );
        }
    }

    #[test]
    fn every_error_status_used_is_described() {
        for errors in [Errors::Public, Errors::Read, Errors::Write] {
            for status in errors.statuses() {
                assert!(
                    ERROR_RESPONSES.iter().any(|(s, _)| s == status),
                    "{status} has no shared response"
                );
            }
        }
    }

    #[test]
    fn every_referenced_schema_exists() {
        let doc = document();
        let json = serde_json::to_value(&doc).expect("the document serialises");
        let schemas = &json["components"]["schemas"];
        let mut missing = Vec::new();
        let mut stack = vec![&json];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                        let found = match r.strip_prefix("#/components/schemas/") {
                            Some(name) => schemas.get(name).is_some(),
                            None => r
                                .strip_prefix("#/components/responses/")
                                .is_some_and(|name| {
                                    json["components"]["responses"].get(name).is_some()
                                }),
                        };
                        if !found {
                            missing.push(r.clone());
                        }
                    }
                    stack.extend(map.values());
                }
                serde_json::Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        assert!(missing.is_empty(), "dangling references: {missing:?}");
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let json: serde_json::Value =
            serde_json::from_str(document_json()).expect("the document is JSON");
        assert_eq!(json["openapi"], "3.1.0");
        assert!(json["paths"]["/{version}/users/{id}/presence/setPresence"]["post"].is_object());
        assert!(json["paths"]["/_presenced/openapi.json"]["get"].is_object());
    }
}
