//! The bodies presenced answers with, as typed structs: serialised by serde
//! on the hot path (no `serde_json::Value` trees) and described by the same
//! derives in the OpenAPI document (`/_presenced/openapi.json`). Field
//! names and shapes are Graph's (SPEC §2, §6, §7); `Option` fields render as
//! `null`, as Graph renders them, never left out.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{Activity, Availability, WorkLocationSource, WorkLocationType};

/// Graph's `presence` resource.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// The OData context, on single-entity answers only.
    #[serde(rename = "@odata.context", skip_serializing_if = "Option::is_none")]
    pub odata_context: Option<String>,
    /// The user's id.
    pub id: Uuid,
    /// The base presence information.
    pub availability: Availability,
    /// The supplemental information to the availability.
    pub activity: Activity,
    /// Sortable text that changes, and sorts higher, whenever the presence
    /// changes: 32 hexadecimal digits.
    #[schema(pattern = "^[0-9A-F]{32}$")]
    pub sequence_number: String,
    /// Always "not out of office": presenced has no mailbox settings.
    pub out_of_office_settings: OutOfOfficeSettings,
    /// The status message, if one is set and not expired.
    pub status_message: Option<PresenceStatusMessage>,
    /// The reported work location.
    pub work_location: WorkLocation,
}

/// Graph's `outOfOfficeSettings`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutOfOfficeSettings {
    /// The automatic reply; always `null`.
    pub message: Option<String>,
    /// Always `false`.
    pub is_out_of_office: bool,
}

/// Graph's `presenceStatusMessage`. The expiry and publication time are
/// shown to the message's owner only; others see just the message.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceStatusMessage {
    /// The message text.
    pub message: ItemBody,
    /// When the message stops showing, in the zone it was set with
    /// (`9999-12-31T23:59:59.9999999` UTC for never). Owner only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_date_time: Option<DateTimeTimeZone>,
    /// When it was set, UTC with 7 fractional digits. Owner only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_date_time: Option<String>,
}

/// Graph's `itemBody`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    /// The text.
    pub content: String,
    /// Always `text`: html is reduced to its text when set.
    #[schema(value_type = String, pattern = "^text$")]
    pub content_type: &'static str,
}

/// Graph's `dateTimeTimeZone`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTimeZone {
    /// Local date and time, `YYYY-MM-DDTHH:MM:SS.fffffff`.
    pub date_time: String,
    /// The IANA or Windows zone name the caller used.
    pub time_zone: String,
}

/// Graph's `userWorkLocation`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkLocation {
    /// Where the user works.
    pub work_location_type: WorkLocationType,
    /// Which layer it comes from.
    pub source: WorkLocationSource,
    /// An optional place id (building, desk).
    pub place_id: Option<String>,
}

/// The answer of getPresencesByUserId.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PresenceCollection {
    /// The OData context.
    #[serde(rename = "@odata.context")]
    pub odata_context: String,
    /// One presence per requested id, in request order.
    pub value: Vec<Presence>,
}

/// Graph's `presence` resource read with `$select`: `id` and the selected
/// properties only; unselected properties are left out.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectedPresence {
    /// The OData context, on single-entity answers only.
    #[serde(rename = "@odata.context", skip_serializing_if = "Option::is_none")]
    pub odata_context: Option<String>,
    /// The user's id (always returned).
    pub id: Uuid,
    /// The base presence information, when selected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<Availability>,
    /// The supplemental information to the availability, when selected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
    /// The sequence number, when selected.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9A-F]{32}$")]
    pub sequence_number: Option<String>,
    /// The out-of-office settings, when selected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_office_settings: Option<OutOfOfficeSettings>,
    /// The status message when selected (`null` when none is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<Option<PresenceStatusMessage>>,
    /// The work location, when selected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_location: Option<WorkLocation>,
}

impl SelectedPresence {
    /// `presence` reduced to `selected` (which always includes `id`).
    pub fn of(presence: Presence, selected: &[crate::domain::PresenceProperty]) -> Self {
        use crate::domain::PresenceProperty as P;
        let has = |p: P| selected.contains(&p);
        SelectedPresence {
            odata_context: presence.odata_context,
            id: presence.id,
            availability: has(P::Availability).then_some(presence.availability),
            activity: has(P::Activity).then_some(presence.activity),
            sequence_number: has(P::SequenceNumber).then_some(presence.sequence_number),
            out_of_office_settings: has(P::OutOfOfficeSettings)
                .then_some(presence.out_of_office_settings),
            status_message: has(P::StatusMessage).then_some(presence.status_message),
            work_location: has(P::WorkLocation).then_some(presence.work_location),
        }
    }
}

/// The answer of getPresencesByUserId with `$select`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SelectedPresenceCollection {
    /// The OData context.
    #[serde(rename = "@odata.context")]
    pub odata_context: String,
    /// One presence per requested id, in request order, with the selected
    /// properties only.
    pub value: Vec<SelectedPresence>,
}

/// Graph's `subscription` resource, as presenced renders it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The OData context, on single-entity answers only.
    #[serde(rename = "@odata.context", skip_serializing_if = "Option::is_none")]
    pub odata_context: Option<String>,
    /// The subscription id.
    pub id: Uuid,
    /// The watched resource, as given.
    pub resource: String,
    /// The subscribing application.
    pub application_id: String,
    /// Always `updated` for presence.
    pub change_type: String,
    /// The secret echoed in notifications; `null` in lists.
    pub client_state: Option<String>,
    /// Where notifications go.
    pub notification_url: String,
    /// Always `null`.
    pub notification_query_options: Option<String>,
    /// Where lifecycle notifications go, if anywhere.
    pub lifecycle_notification_url: Option<String>,
    /// When the subscription ends, UTC with 7 fractional digits.
    pub expiration_date_time: String,
    /// The user who created it (delegated), or the application.
    pub creator_id: String,
    /// Whether notifications carry encrypted resource data.
    pub include_resource_data: bool,
    /// The TLS version the receiver supports.
    pub latest_supported_tls_version: String,
    /// Never echoed: always `null`.
    pub encryption_certificate: Option<String>,
    /// The id of the encryption certificate, as given.
    pub encryption_certificate_id: Option<String>,
    /// The application id expected in validation tokens, as given.
    pub notification_url_app_id: Option<String>,
}

/// The answer of `GET /subscriptions`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionCollection {
    /// The OData context.
    #[serde(rename = "@odata.context")]
    pub odata_context: String,
    /// The caller's subscriptions.
    pub value: Vec<Subscription>,
}

/// One user of the users listing (`GET /_presenced/users`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListedUser {
    /// The user's object id.
    pub id: Uuid,
    /// The presence resource, as `GET /users/{id}/presence` answers it
    /// (without `@odata.context`).
    pub presence: Presence,
    /// How many sessions are live now.
    pub session_count: usize,
    /// When the user last had a live session (now while one lives), if
    /// ever.
    pub last_seen_date_time: Option<String>,
}

/// A page of the users listing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserCollection {
    /// The page's users, in user-id order.
    pub value: Vec<ListedUser>,
    /// The next page, when there may be one.
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// Graph's error body (SPEC §6).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorDetail,
}

/// The `error` of [`ErrorResponse`].
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Graph's error code (`invalidRequest`, `Forbidden`, …).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Where and when.
    pub inner_error: InnerError,
}

/// The `innerError` of [`ErrorDetail`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InnerError {
    /// Server time, `YYYY-MM-DDTHH:MM:SS` UTC.
    pub date: String,
    /// This request's id (also the `request-id` header).
    #[serde(rename = "request-id")]
    pub request_id: String,
    /// The caller's `client-request-id`, or the request id.
    #[serde(rename = "client-request-id")]
    pub client_request_id: String,
}

/// The answer of `/_presenced/healthz` and `/_presenced/readyz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Status {
    /// `ok` (healthz) or `ready` (readyz).
    pub status: &'static str,
}

/// The emulator clock's time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClockTime {
    /// UTC with 7 fractional digits.
    pub now: String,
}

/// A presence with what is behind it (`GET /_presenced/users/{id}/presence`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceExplanation {
    /// The Graph resource, as the caller would GET it.
    #[serde(flatten)]
    pub presence: Presence,
    /// The live sessions the aggregate is made of.
    pub sessions: Vec<ExplainedSession>,
    /// The user-preferred presence, if one applies now.
    pub preferred_presence: Option<PreferredPresence>,
    /// When the user last had a live session, if ever.
    pub last_seen_date_time: Option<String>,
    /// The server's time of this answer.
    pub now: String,
}

/// Who owns a session.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SessionOwner {
    /// Written by an application's setPresence.
    Application,
    /// A simulated Teams client (emulator mode).
    Client,
}

/// One live session of [`PresenceExplanation`].
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplainedSession {
    /// Whose session it is.
    pub kind: SessionOwner,
    /// The application id or the client's name.
    pub id: String,
    /// The availability it shows now, after fading.
    pub availability: Availability,
    /// The activity it shows now, after fading.
    pub activity: Activity,
    /// The availability as reported.
    pub reported_availability: Availability,
    /// The activity as reported.
    pub reported_activity: Activity,
    /// When it was last reported.
    pub last_active_date_time: String,
    /// When it ends.
    pub expiration_date_time: String,
}

/// The user-preferred presence of [`PresenceExplanation`].
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreferredPresence {
    /// The preferred availability.
    pub availability: Availability,
    /// The preferred activity.
    pub activity: Activity,
    /// When it stops applying.
    pub expiration_date_time: String,
}
