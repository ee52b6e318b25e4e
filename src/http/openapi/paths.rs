//! Every documented operation, by path and method: the presence reads and
//! actions (from the router's action table), batching, subscriptions and
//! presenced's own endpoints.

use utoipa::openapi::path::{HttpMethod, Parameter, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required};
use utoipa::ToSchema;

use super::actions::action_doc;
use super::operation::{Errors, Op, Success};
use super::params::{
    id_param, path_param, select_param, string_schema, user_param, users_params, version_param,
};
use crate::domain::MAX_BATCH_REQUESTS;
use crate::http::admin::{ClientSessionBody, MoveClock};
use crate::http::batch::{BatchRequestBody, BatchResponseBody};
use crate::http::faults::{FaultBody, FaultRule, FaultRuleCollection};
use crate::http::journal::{JournalCollection, MAX_JOURNAL_SIZE};
use crate::http::model;
use crate::http::presence::{IdsBody, MAX_IDS};
use crate::http::state::StateDocument;
use crate::notify::signing::JsonWebKeySet;
use crate::notify::subscriptions::{CreateBody, PatchBody};

/// Every documented operation, as (path, method, operation).
pub(super) fn operations() -> Vec<(String, HttpMethod, Op)> {
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
