//! What the store keeps for change notifications (SPEC §7, §8): the event
//! log, subscriptions, and the outbox of webhook deliveries: plain data,
//! plus what every backend decides the same way about it (what a write
//! meant for watchers, subscription conflicts, lifecycle deadlines).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Instant;
use crate::domain::{shown, visibility, Activity, Availability, UserFacts, UserKey, Visibility};

/// One entry of the durable event log: a user's presence resource changed.
/// Recorded in the same atomic unit as the write (or the processed
/// transition) that caused it, so nothing between a commit and a delivery
/// can be lost (DESIGN.md, Storage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the log: increasing, never reused.
    pub seq: u64,
    /// Whose presence changed.
    pub key: UserKey,
    /// The presence clock's instant of the change.
    pub at: Instant,
    /// The user's facts right after the change; `effective(facts, at)` is
    /// the presence to show.
    pub facts: UserFacts,
}

/// A Graph presence subscription as stored (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The subscription id.
    pub id: Uuid,
    /// The tenant it belongs to.
    pub tenant: Uuid,
    /// The subscribing application (`applicationId`).
    pub app_id: String,
    /// `creatorId`: the delegated user's id, or the application's id.
    pub creator_id: String,
    /// The delegated user who created it (`None` for application tokens);
    /// only they may see or change it.
    pub owner: Option<Uuid>,
    /// The resource string exactly as given.
    pub resource: String,
    /// The watched users, as parsed from `resource`.
    pub users: Vec<Uuid>,
    /// `changeType` as given (always `updated` for presence).
    pub change_type: String,
    /// `clientState`, echoed in every notification.
    pub client_state: Option<String>,
    /// Where change notifications go.
    pub notification_url: String,
    /// Where lifecycle notifications go.
    pub lifecycle_url: Option<String>,
    /// When the subscription ends.
    pub expires_at: Instant,
    /// Rich notifications: encrypted resource data in each item.
    pub include_resource_data: bool,
    /// Base64 DER of the encryption certificate (rich notifications).
    pub encryption_certificate: Option<String>,
    /// `encryptionCertificateId`.
    pub encryption_certificate_id: Option<String>,
    /// `latestSupportedTlsVersion`.
    pub latest_supported_tls_version: String,
    /// `notificationUrlAppId`, echoed.
    pub notification_url_app_id: Option<String>,
    /// Whether the `reauthorizationRequired` lifecycle notification for the
    /// current expiry has been queued.
    pub reauthorization_sent: bool,
    /// When it was created.
    pub created_at: Instant,
}

/// The lifecycle events presenced sends (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleEvent {
    /// The subscription expires within 15 minutes: reauthorize or renew.
    ReauthorizationRequired,
    /// Notifications were dropped after retrying for 4 hours.
    Missed,
}

impl LifecycleEvent {
    /// Graph's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleEvent::ReauthorizationRequired => "reauthorizationRequired",
            LifecycleEvent::Missed => "missed",
        }
    }
}

/// What one outbox row delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Payload {
    /// A change notification about one user (to `notificationUrl`).
    Change {
        /// The user whose presence changed.
        user: Uuid,
        /// The new availability.
        availability: Availability,
        /// The new activity.
        activity: Activity,
        /// The presence's sequence number after the change.
        sequence_number: String,
    },
    /// A lifecycle notification (to `lifecycleNotificationUrl`).
    Lifecycle {
        /// Which one.
        event: LifecycleEvent,
    },
}

/// A delivery to make: one item of a webhook POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Outbox row id.
    pub id: u64,
    /// The subscription it is for.
    pub subscription: Uuid,
    /// The subscription's tenant.
    pub tenant: Uuid,
    /// What to deliver.
    pub payload: Payload,
    /// When it was queued (the 4-hour retry limit counts from here).
    pub created_at: Instant,
    /// When it is next due.
    pub next_at: Instant,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// A delivery to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The subscription it is for.
    pub subscription: Uuid,
    /// The subscription's tenant.
    pub tenant: Uuid,
    /// What to deliver.
    pub payload: Payload,
}

/// Why a subscription could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionConflict {
    /// The same creator and application already watch this resource for
    /// this change type.
    SameCombination(Uuid),
    /// Graph's limit: one presence subscription per user per application.
    OnePerUserAndApp(Uuid),
}

/// The outcome of a write for watchers, computed inside the write's atomic
/// unit: what readers saw before against what they see after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// What changed for watchers.
    pub visibility: Visibility,
    /// The change payload for webhooks (meaningful when `visibility` is
    /// [`Visibility::Presence`]).
    pub payload: Payload,
}

/// Compares what watchers saw of `before` with `after` (both observed at
/// their `settled_at`).
pub fn observe(user: Uuid, before: &UserFacts, after: &UserFacts) -> Observed {
    let (was, is) = (shown(before), shown(after));
    Observed {
        visibility: visibility(&was, &is),
        payload: Payload::Change {
            user,
            availability: is.availability,
            activity: is.activity,
            sequence_number: is.sequence_number,
        },
    }
}

/// The lifecycle deadline of a subscription: reauthorization time until it
/// has been queued, then its expiry.
pub(crate) fn deadline(s: &Subscription, reauthorize_before: chrono::TimeDelta) -> Instant {
    if s.reauthorization_sent {
        s.expires_at
    } else {
        s.expires_at - reauthorize_before
    }
}

/// The subscriptions among `subscriptions` that need lifecycle work at or
/// before `by` (their [`deadline`] has come), earliest deadline first, then
/// by id: [`Store::subscriptions_due`](super::Store::subscriptions_due) for
/// backends that filter in memory.
pub(crate) fn lifecycle_due<'a>(
    subscriptions: impl Iterator<Item = &'a Subscription>,
    by: Instant,
    reauthorize_before: chrono::TimeDelta,
) -> Vec<Subscription> {
    let mut out: Vec<Subscription> = subscriptions
        .filter(|s| deadline(s, reauthorize_before) <= by)
        .cloned()
        .collect();
    out.sort_by_key(|s| (deadline(s, reauthorize_before), s.id));
    out
}

/// Whether `new` conflicts with an existing live subscription of the same
/// creator and application (SPEC §7): the same resource and change type
/// always (Graph: "Duplicate subscriptions are not allowed", whatever the
/// URL); under Graph's limits any other one too. Different users of one
/// application may watch the same people.
pub(crate) fn conflict_with<'a>(
    existing: impl Iterator<Item = &'a Subscription>,
    new: &Subscription,
    one_per_user_and_app: bool,
) -> Option<SubscriptionConflict> {
    let mut other = None;
    for s in existing {
        if s.tenant != new.tenant
            || s.app_id != new.app_id
            || s.creator_id != new.creator_id
            || s.expires_at <= new.created_at
        {
            continue;
        }
        if s.resource.eq_ignore_ascii_case(&new.resource)
            && s.change_type.eq_ignore_ascii_case(&new.change_type)
        {
            return Some(SubscriptionConflict::SameCombination(s.id));
        }
        if one_per_user_and_app {
            other = Some(SubscriptionConflict::OnePerUserAndApp(s.id));
        }
    }
    other
}
