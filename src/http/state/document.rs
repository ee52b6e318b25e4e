//! The state document (version 1): its wire types, the rules a document
//! must keep (a broken one names the field), and the conversions between a
//! document and the store's [`Contents`].

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::clock::{in_clock_range, Instant};
use crate::domain::{
    Activity, Availability, NotificationUrl, Preferred, PreferredPair, PresenceResource, Session,
    SessionKind, SessionPair, StatusMessage, UrlField, UserFacts, UserKey, WorkLocation,
    WorkLocationLayer, WorkLocationType,
};
use crate::http::error::GraphError;
use crate::store::{Contents, Subscription};

/// The state document version this build reads and writes.
pub const STATE_VERSION: u32 = 1;

/// The largest user `version` a document may carry (2^53 − 1: exact in
/// every JSON reader, and far from where counting further could overflow).
pub const MAX_VERSION: u64 = (1 << 53) - 1;

/// An instant in the document: RFC 3339, exact to the nanosecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-01-01T09:00:00Z")]
pub struct At(pub Instant);

impl Serialize for At {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl<'de> Deserialize<'de> for At {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = DateTime::parse_from_rfc3339(&text)
            .ok()
            .filter(|t| chrono::Timelike::nanosecond(t) < 1_000_000_000)
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "'{text}' is not an RFC 3339 instant such as 2026-01-01T09:00:00Z"
                ))
            })?;
        if !in_clock_range(t) {
            return Err(serde::de::Error::custom(format!(
                "'{text}' is outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
            )));
        }
        Ok(At(t))
    }
}

/// The whole emulator state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateDocument {
    /// The format version; this build reads and writes 1.
    #[schema(example = 1)]
    pub version: u32,
    /// The emulator clock. On import the clock moves forward to it when it
    /// is later than now; it never moves backwards.
    pub clock: Option<At>,
    /// Every tenant with users or subscriptions.
    pub tenants: Vec<TenantState>,
}

/// One tenant's users and subscriptions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantState {
    /// The tenant id (`tid`).
    pub id: Uuid,
    /// Users with stored facts.
    #[serde(default)]
    pub users: Vec<UserState>,
    /// Subscriptions of the tenant.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionState>,
}

/// One user's stored facts (what `effective` presence is computed from).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserState {
    /// The user's object id.
    pub id: Uuid,
    /// Counts the user's writes (part of `sequenceNumber`); 1 to 2^53 − 1.
    #[serde(default)]
    #[schema(maximum = 9007199254740991_u64)]
    pub version: u64,
    /// The last write [default: the latest instant among the facts].
    pub updated_date_time: Option<At>,
    /// Up to when changes were observed and published [default: `updatedDateTime`].
    pub settled_date_time: Option<At>,
    /// When the user last had a live session, as of pruned sessions.
    pub last_seen_date_time: Option<At>,
    /// Sessions (applications' and simulated clients'), possibly expired.
    #[serde(default)]
    pub sessions: Vec<SessionState>,
    /// The user-preferred presence, possibly expired.
    pub preferred_presence: Option<PreferredState>,
    /// The status message, possibly expired.
    pub status_message: Option<StatusState>,
    /// Set by setManualLocation.
    pub manual_work_location: Option<LocationState>,
    /// Set by setAutomaticLocation.
    pub automatic_work_location: Option<LocationState>,
}

/// Who owns a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SessionKindState {
    /// An application's (setPresence); its id is the application id.
    Application,
    /// A simulated Teams client; its id is a name such as `desktop`.
    Client,
}

/// One presence session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionState {
    /// Whose session it is.
    pub kind: SessionKindState,
    /// The application id or the client's name.
    pub id: String,
    /// The availability as reported (before fading).
    pub availability: Availability,
    /// The activity as reported.
    pub activity: Activity,
    /// When it was last refreshed (fading starts here).
    pub last_active_date_time: At,
    /// When it ends.
    pub expiration_date_time: At,
}

/// A user-preferred presence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferredState {
    /// The preferred availability.
    pub availability: Availability,
    /// The preferred activity.
    pub activity: Activity,
    /// When it was set.
    pub set_date_time: At,
    /// When it stops applying.
    pub expiration_date_time: At,
}

/// A status message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusState {
    /// The text.
    pub content: String,
    /// When it was set.
    pub published_date_time: At,
    /// When it stops showing; `null` for never.
    pub expiration_date_time: Option<At>,
    /// The time zone name echoed with the expiry.
    pub time_zone: Option<String>,
}

/// One work location layer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocationState {
    /// The location.
    pub work_location_type: WorkLocationType,
    /// A place id, if any.
    pub place_id: Option<String>,
    /// When it was set.
    pub set_date_time: At,
}

/// A subscription, with Graph's field names where Graph has them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionState {
    /// The subscription id.
    pub id: Uuid,
    /// The subscribing application.
    pub application_id: String,
    /// The delegated user's id, or the application's id.
    pub creator_id: String,
    /// The delegated user who owns it; `null` for application tokens.
    pub owner_id: Option<Uuid>,
    /// The watched resource (SPEC §7).
    pub resource: String,
    /// Always `updated`.
    pub change_type: String,
    /// Echoed in every notification.
    pub client_state: Option<String>,
    /// Where change notifications go.
    pub notification_url: String,
    /// Where lifecycle notifications go.
    pub lifecycle_notification_url: Option<String>,
    /// When it ends.
    pub expiration_date_time: At,
    /// Rich notifications.
    #[serde(default)]
    pub include_resource_data: bool,
    /// Base64 DER certificate for rich notifications.
    pub encryption_certificate: Option<String>,
    /// `encryptionCertificateId`.
    pub encryption_certificate_id: Option<String>,
    /// `latestSupportedTlsVersion` [default: `v1_2`].
    pub latest_supported_tls_version: Option<String>,
    /// `notificationUrlAppId`.
    pub notification_url_app_id: Option<String>,
    /// Whether `reauthorizationRequired` was queued for the current expiry.
    #[serde(default)]
    pub reauthorization_sent: bool,
    /// When it was created [default: the document's clock, else now].
    pub created_date_time: Option<At>,
}

/// A document that is well-formed JSON but breaks a rule: the path of the
/// offending field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StateError {
    /// Where, e.g. `tenants[0].users[2].sessions[0]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn broken(path: impl Into<String>, message: impl std::fmt::Display) -> StateError {
    StateError {
        path: path.into(),
        message: message.to_string(),
    }
}

impl From<StateError> for GraphError {
    fn from(e: StateError) -> Self {
        GraphError::bad_request(format!("The state document is invalid: {e}."))
    }
}

/// A checked document: the store contents and the clock it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedState {
    /// What the store is to hold.
    pub contents: Contents,
    /// The clock the document names, if any.
    pub clock: Option<Instant>,
}

impl StateDocument {
    /// Parses a document from JSON bytes (`--seed`): a bad field is an
    /// error naming its path.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let axum::Json(doc) = axum::Json::<Self>::from_bytes(bytes).map_err(|e| e.body_text())?;
        Ok(doc)
    }

    /// The document of a store's contents at `clock`.
    pub fn export(contents: Contents, clock: Instant) -> Self {
        let mut tenants: BTreeMap<Uuid, TenantState> = BTreeMap::new();
        fn tenant(tenants: &mut BTreeMap<Uuid, TenantState>, id: Uuid) -> &mut TenantState {
            tenants.entry(id).or_insert_with(|| TenantState {
                id,
                users: Vec::new(),
                subscriptions: Vec::new(),
            })
        }
        for (key, facts) in contents.users {
            tenant(&mut tenants, key.tenant)
                .users
                .push(user_state(key.user, facts));
        }
        for s in contents.subscriptions {
            tenant(&mut tenants, s.tenant)
                .subscriptions
                .push(subscription_state(s));
        }
        StateDocument {
            version: STATE_VERSION,
            clock: Some(At(clock)),
            tenants: tenants.into_values().collect(),
        }
    }
}

fn user_state(id: Uuid, f: UserFacts) -> UserState {
    let layer = |l: WorkLocationLayer| LocationState {
        work_location_type: l.location_type,
        place_id: l.place_id,
        set_date_time: At(l.set_at),
    };
    UserState {
        id,
        version: f.version,
        updated_date_time: f.updated_at.map(At),
        settled_date_time: f.settled_at.map(At),
        last_seen_date_time: f.last_seen.map(At),
        sessions: f
            .sessions
            .into_iter()
            .map(|s| SessionState {
                kind: match s.kind {
                    SessionKind::Application => SessionKindState::Application,
                    SessionKind::Client => SessionKindState::Client,
                },
                id: s.id,
                availability: s.pair.availability(),
                activity: s.pair.activity(),
                last_active_date_time: At(s.last_active),
                expiration_date_time: At(s.expires_at),
            })
            .collect(),
        preferred_presence: f.preferred.map(|p| PreferredState {
            availability: p.pair.availability(),
            activity: p.pair.activity(),
            set_date_time: At(p.set_at),
            expiration_date_time: At(p.expires_at),
        }),
        status_message: f.status.map(|m| StatusState {
            content: m.content,
            published_date_time: At(m.published_at),
            expiration_date_time: m.expires_at.map(At),
            time_zone: m.expiry_zone,
        }),
        manual_work_location: f.work_location.manual.map(layer),
        automatic_work_location: f.work_location.automatic.map(layer),
    }
}

fn subscription_state(s: Subscription) -> SubscriptionState {
    SubscriptionState {
        id: s.id,
        application_id: s.app_id,
        creator_id: s.creator_id,
        owner_id: s.owner,
        resource: s.resource,
        change_type: s.change_type,
        client_state: s.client_state,
        notification_url: s.notification_url,
        lifecycle_notification_url: s.lifecycle_url,
        expiration_date_time: At(s.expires_at),
        include_resource_data: s.include_resource_data,
        encryption_certificate: s.encryption_certificate,
        encryption_certificate_id: s.encryption_certificate_id,
        latest_supported_tls_version: Some(s.latest_supported_tls_version),
        notification_url_app_id: s.notification_url_app_id,
        reauthorization_sent: s.reauthorization_sent,
        created_date_time: Some(At(s.created_at)),
    }
}

impl StateDocument {
    /// Checks every rule a document must keep and converts it; `now` is
    /// the default creation time of subscriptions that name none.
    pub fn check(self, now: Instant) -> Result<CheckedState, StateError> {
        if self.version != STATE_VERSION {
            return Err(broken(
                "version",
                format!(
                    "this server reads state documents of version {STATE_VERSION}, not {}",
                    self.version
                ),
            ));
        }
        let clock = self.clock.map(|c| c.0);
        let mut contents = Contents::default();
        let mut tenants = HashSet::new();
        let mut subscription_ids = HashSet::new();
        for (ti, tenant) in self.tenants.into_iter().enumerate() {
            let tpath = format!("tenants[{ti}]");
            if !tenants.insert(tenant.id) {
                return Err(broken(
                    format!("{tpath}.id"),
                    format!("tenant {} appears twice", tenant.id),
                ));
            }
            let mut users = HashSet::new();
            for (ui, user) in tenant.users.into_iter().enumerate() {
                let upath = format!("{tpath}.users[{ui}]");
                if !users.insert(user.id) {
                    return Err(broken(
                        format!("{upath}.id"),
                        format!("user {} appears twice in its tenant", user.id),
                    ));
                }
                let key = UserKey {
                    tenant: tenant.id,
                    user: user.id,
                };
                contents.users.push((key, user_facts(user, &upath)?));
            }
            for (si, s) in tenant.subscriptions.into_iter().enumerate() {
                let spath = format!("{tpath}.subscriptions[{si}]");
                if !subscription_ids.insert(s.id) {
                    return Err(broken(
                        format!("{spath}.id"),
                        format!("subscription {} appears twice", s.id),
                    ));
                }
                contents.subscriptions.push(subscription(
                    tenant.id,
                    s,
                    clock.unwrap_or(now),
                    &spath,
                )?);
            }
        }
        contents.users.sort_by_key(|(k, _)| *k);
        contents.subscriptions.sort_by_key(|s| (s.tenant, s.id));
        Ok(CheckedState { contents, clock })
    }
}

fn user_facts(u: UserState, path: &str) -> Result<UserFacts, StateError> {
    let mut sessions = Vec::with_capacity(u.sessions.len());
    let mut seen = HashSet::new();
    for (i, s) in u.sessions.into_iter().enumerate() {
        let spath = format!("{path}.sessions[{i}]");
        let (kind, pair) = match s.kind {
            SessionKindState::Application => (
                SessionKind::Application,
                SessionPair::new(s.availability, s.activity),
            ),
            SessionKindState::Client => (
                SessionKind::Client,
                SessionPair::parse_client(s.availability.as_str(), s.activity.as_str()),
            ),
        };
        let pair = pair.map_err(|e| broken(format!("{spath}.activity"), e))?;
        if s.id.is_empty() {
            return Err(broken(format!("{spath}.id"), "a session needs an id"));
        }
        if !seen.insert((kind, s.id.clone())) {
            return Err(broken(
                format!("{spath}.id"),
                format!("the {} session '{}' appears twice", kind.as_str(), s.id),
            ));
        }
        sessions.push(Session {
            kind,
            id: s.id,
            pair,
            last_active: s.last_active_date_time.0,
            expires_at: s.expiration_date_time.0,
        });
    }
    let preferred = match u.preferred_presence {
        Some(p) => Some(Preferred {
            pair: PreferredPair::new(p.availability, p.activity)
                .map_err(|e| broken(format!("{path}.preferredPresence.activity"), e))?,
            set_at: p.set_date_time.0,
            expires_at: p.expiration_date_time.0,
        }),
        None => None,
    };
    let status = u.status_message.map(|m| StatusMessage {
        content: m.content,
        expires_at: m.expiration_date_time.map(|t| t.0),
        expiry_zone: m.time_zone,
        published_at: m.published_date_time.0,
    });
    let layer = |l: LocationState| WorkLocationLayer {
        location_type: l.work_location_type,
        place_id: l.place_id,
        set_at: l.set_date_time.0,
    };
    if u.version > MAX_VERSION {
        return Err(broken(
            format!("{path}.version"),
            format!("{} is more than {MAX_VERSION}", u.version),
        ));
    }
    let mut facts = UserFacts {
        sessions,
        preferred,
        status,
        work_location: WorkLocation {
            manual: u.manual_work_location.map(layer),
            automatic: u.automatic_work_location.map(layer),
        },
        version: u.version,
        updated_at: u.updated_date_time.map(|t| t.0),
        last_seen: u.last_seen_date_time.map(|t| t.0),
        settled_at: u.settled_date_time.map(|t| t.0),
        unreadable: false,
    };
    // A hand-written seed may leave out the bookkeeping: the facts then
    // count as one write at their latest instant, so they are scheduled
    // and settle like written ones.
    let latest = facts
        .sessions
        .iter()
        .map(|s| s.last_active)
        .chain(facts.preferred.iter().map(|p| p.set_at))
        .chain(facts.status.iter().map(|m| m.published_at))
        .chain(facts.work_location.manual.iter().map(|l| l.set_at))
        .chain(facts.work_location.automatic.iter().map(|l| l.set_at))
        .max();
    facts.updated_at = facts.updated_at.or(latest);
    facts.settled_at = facts.settled_at.or(facts.updated_at);
    facts.version = facts.version.max(1);
    Ok(facts)
}

fn subscription(
    tenant: Uuid,
    s: SubscriptionState,
    now: Instant,
    path: &str,
) -> Result<Subscription, StateError> {
    let resource =
        PresenceResource::parse(&s.resource).map_err(|e| broken(format!("{path}.resource"), e))?;
    if s.change_type != "updated" {
        return Err(broken(
            format!("{path}.changeType"),
            format!("'{}' is not 'updated'", s.change_type),
        ));
    }
    // The rules of a created subscription (SPEC §7; the state document is
    // an emulator feature, so plain http to loopback is allowed).
    NotificationUrl::parse(UrlField::Notification, &s.notification_url, true)
        .map_err(|e| broken(format!("{path}.notificationUrl"), e))?;
    if let Some(url) = &s.lifecycle_notification_url {
        NotificationUrl::parse(UrlField::Lifecycle, url, true)
            .map_err(|e| broken(format!("{path}.lifecycleNotificationUrl"), e))?;
    }
    Ok(Subscription {
        id: s.id,
        tenant,
        app_id: s.application_id,
        creator_id: s.creator_id,
        owner: s.owner_id,
        users: resource.users().to_vec(),
        resource: s.resource,
        change_type: s.change_type,
        client_state: s.client_state,
        notification_url: s.notification_url,
        lifecycle_url: s.lifecycle_notification_url,
        expires_at: s.expiration_date_time.0,
        include_resource_data: s.include_resource_data,
        encryption_certificate: s.encryption_certificate,
        encryption_certificate_id: s.encryption_certificate_id,
        latest_supported_tls_version: s
            .latest_supported_tls_version
            .unwrap_or_else(|| "v1_2".into()),
        notification_url_app_id: s.notification_url_app_id,
        reauthorization_sent: s.reauthorization_sent,
        created_at: s.created_date_time.map_or(now, |t| t.0),
    })
}

#[cfg(test)]
#[path = "document_tests.rs"]
mod tests;
