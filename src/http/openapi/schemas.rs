//! The component schemas of the document: the request bodies and the typed
//! answers, each from its `ToSchema` derive.

use utoipa::OpenApi;

use crate::domain::{
    ClearPresenceBody, LocationBody, SetPreferredBody, SetPresenceBody, SetStatusMessageBody,
};
use crate::http::admin::{ClientSessionBody, MoveClock};
use crate::http::batch::{
    BatchRequestBody, BatchRequestItem, BatchResponseBody, BatchResponseItem,
};
use crate::http::faults::{FaultBody, FaultRule, FaultRuleCollection};
use crate::http::journal::JournalCollection;
use crate::http::model;
use crate::http::presence::IdsBody;
use crate::http::state::StateDocument;
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
pub(super) struct Schemas;
