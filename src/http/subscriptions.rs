//! Graph subscriptions for presence (SPEC §7), under `/v1.0` and `/beta`,
//! and the JWKS that verifies rich notifications' validation tokens.
//! Handlers authenticate, authorise, call `notify` and render.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use uuid::Uuid;

use super::error::GraphError;
use super::extract::{authenticate, request_base, versioned_path, ApiVersion, JsonBody};
use super::model::{self, SubscriptionCollection};
use super::AppState;
use crate::auth::{authorize, Operation, Principal};
use crate::notify::signing::JsonWebKeySet;
use crate::notify::subscriptions::{Caller, CreateBody, PatchBody, SubscriptionError};
use crate::notify::utc_timestamp;
use crate::store::{Subscription, SubscriptionConflict};

/// An authenticated call on `/{version}/subscriptions[/{id}]`.
pub struct SubscriptionCall {
    principal: Arc<Principal>,
    version: ApiVersion,
    base: Arc<str>,
    id: Option<Uuid>,
}

impl SubscriptionCall {
    fn caller(&self) -> Caller {
        Caller {
            tenant: self.principal.tenant,
            app_id: self.principal.app_id.clone(),
            user: self.principal.user(),
        }
    }

    fn id(&self) -> Result<Uuid, GraphError> {
        self.id
            .ok_or_else(|| GraphError::bad_request("This path does not name a subscription."))
    }

    fn context(&self, suffix: &str) -> String {
        format!(
            "{}/{}/$metadata#subscriptions{suffix}",
            self.base,
            self.version.as_str()
        )
    }
}

impl FromRequestParts<AppState> for SubscriptionCall {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GraphError> {
        let (version, params) = versioned_path(parts, state).await?;
        let principal = authenticate(parts, state).await?;
        let id = params
            .get("id")
            .map(|id| {
                Uuid::try_parse(id).map_err(|_| {
                    GraphError::bad_request(format!(
                        "'{id}' is not a valid subscription id; subscription ids are GUIDs."
                    ))
                })
            })
            .transpose()?;
        Ok(Self {
            principal,
            version,
            base: request_base(parts, state),
            id,
        })
    }
}

/// A subscription as Graph renders it. `clientState` is left out of lists
/// (SPEC §7) and `encryptionCertificate` is never echoed.
fn render(s: &Subscription, with_client_state: bool) -> model::Subscription {
    model::Subscription {
        odata_context: None,
        id: s.id,
        resource: s.resource.clone(),
        application_id: s.app_id.clone(),
        change_type: s.change_type.clone(),
        client_state: s.client_state.clone().filter(|_| with_client_state),
        notification_url: s.notification_url.clone(),
        notification_query_options: None,
        lifecycle_notification_url: s.lifecycle_url.clone(),
        expiration_date_time: utc_timestamp(s.expires_at),
        creator_id: s.creator_id.clone(),
        include_resource_data: s.include_resource_data,
        latest_supported_tls_version: s.latest_supported_tls_version.clone(),
        encryption_certificate: None,
        encryption_certificate_id: s.encryption_certificate_id.clone(),
        notification_url_app_id: s.notification_url_app_id.clone(),
    }
}

fn entity(call: &SubscriptionCall, s: &Subscription) -> model::Subscription {
    model::Subscription {
        odata_context: Some(call.context("/$entity")),
        ..render(s, true)
    }
}

/// Create subscription: `POST /subscriptions` → `201`.
pub async fn create(
    State(state): State<AppState>,
    call: SubscriptionCall,
    body: JsonBody,
) -> Result<(StatusCode, Json<model::Subscription>), GraphError> {
    authorize(&call.principal, Operation::Subscribe, None)?;
    let body: CreateBody = body.parse()?;
    let s = state
        .notifier
        .create_subscription(&call.caller(), body)
        .await?;
    Ok((StatusCode::CREATED, Json(entity(&call, &s))))
}

/// List subscriptions: `GET /subscriptions` (the caller's own).
pub async fn list(
    State(state): State<AppState>,
    call: SubscriptionCall,
) -> Result<Json<SubscriptionCollection>, GraphError> {
    let all = state.notifier.list_subscriptions(&call.caller()).await?;
    Ok(Json(SubscriptionCollection {
        odata_context: call.context(""),
        value: all.iter().map(|s| render(s, false)).collect(),
    }))
}

/// Get subscription: `GET /subscriptions/{id}`.
pub async fn get(
    State(state): State<AppState>,
    call: SubscriptionCall,
) -> Result<Json<model::Subscription>, GraphError> {
    let s = state
        .notifier
        .get_subscription(&call.caller(), call.id()?)
        .await?;
    Ok(Json(entity(&call, &s)))
}

/// Update subscription: `PATCH /subscriptions/{id}` (expiry, URL).
pub async fn update(
    State(state): State<AppState>,
    call: SubscriptionCall,
    body: JsonBody,
) -> Result<Json<model::Subscription>, GraphError> {
    let body: PatchBody = body.parse()?;
    let s = state
        .notifier
        .update_subscription(&call.caller(), call.id()?, body)
        .await?;
    Ok(Json(entity(&call, &s)))
}

/// Delete subscription: `DELETE /subscriptions/{id}` → `204`.
pub async fn delete(
    State(state): State<AppState>,
    call: SubscriptionCall,
) -> Result<StatusCode, GraphError> {
    state
        .notifier
        .delete_subscription(&call.caller(), call.id()?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reauthorize subscription: `POST /subscriptions/{id}/reauthorize` → `204`.
pub async fn reauthorize(
    State(state): State<AppState>,
    call: SubscriptionCall,
) -> Result<StatusCode, GraphError> {
    state
        .notifier
        .reauthorize_subscription(&call.caller(), call.id()?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /_presenced/.well-known/jwks.json`: the keys that verify the
/// `validationTokens` of rich notifications (SPEC §7). Public.
pub async fn jwks(State(state): State<AppState>) -> Json<JsonWebKeySet> {
    Json(state.notifier.jwks())
}

impl From<SubscriptionError> for GraphError {
    fn from(e: SubscriptionError) -> Self {
        let message = e.to_string();
        match e {
            SubscriptionError::Rule(rule) => rule.into(),
            SubscriptionError::Missing(_)
            | SubscriptionError::Invalid(_)
            | SubscriptionError::Certificate(_) => GraphError::bad_request(message),
            SubscriptionError::InternalDestination(_) => {
                GraphError::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
            }
            SubscriptionError::NotAuthorized => {
                GraphError::new(StatusCode::FORBIDDEN, "ExtensionError", message)
            }
            SubscriptionError::Conflict(
                SubscriptionConflict::SameCombination(_)
                | SubscriptionConflict::OnePerUserAndApp(_),
            ) => GraphError::new(StatusCode::CONFLICT, "ExtensionError", message),
            SubscriptionError::NotFound => GraphError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                "The object was not found.",
            ),
            SubscriptionError::Validation(failure) => {
                use crate::notify::subscriptions::ValidationFailure;
                let code = match failure {
                    ValidationFailure::TimedOut => "InvalidRequest",
                    ValidationFailure::NotOk
                    | ValidationFailure::WrongEcho
                    | ValidationFailure::Unreachable => "ValidationError",
                };
                GraphError::new(StatusCode::BAD_REQUEST, code, message)
            }
            SubscriptionError::Store(store) => store.into(),
        }
    }
}
