//! The pure presence model: vocabulary, validation, time zones and the
//! `effective(facts, now)` function everything else rests on (DESIGN.md).
//!
//! Nothing here performs I/O or reads a clock: every function that needs the
//! time takes `now` as an argument.

mod batch;
mod change;
mod command;
mod duration;
mod effective;
mod error;
mod facts;
mod ids;
mod listing;
pub(crate) mod query;
mod select;
mod status;
mod subscription;
mod vocab;
mod zone;

pub use batch::{Batch, BatchMethod, BatchRequest, MAX_BATCH_REQUESTS};
pub use change::{due_at, settle, settled, shown, visibility, Change, Visibility};
pub use command::*;
pub use duration::{format_duration, parse_duration, IsoDuration};
pub use effective::{aggregate, effective, last_seen, next_change, EffectivePresence};
pub use error::DomainError;
pub use facts::{
    Preferred, Session, SessionKind, StatusMessage, UserFacts, WorkLocation, WorkLocationLayer,
};
pub use ids::{parse_guid, UserKey};
pub use listing::{UsersQuery, DEFAULT_USERS_PAGE, MAX_USERS_PAGE};
pub use select::{PresenceProperty, PresenceQuery};
pub use status::{StatusMessageInput, MAX_STATUS_MESSAGE_CHARS};
pub use subscription::{
    check_certificate_id, check_client_state, is_internal, max_lifetime, subscription_expiry,
    AllowedNetworks, ChangeType, NotificationUrl, PresenceResource, SubscriptionLimits, UrlField,
    GRAPH_MAX_LIFETIME, MAX_CERTIFICATE_ID_CHARS, MAX_CLIENT_STATE_CHARS,
    MAX_NOTIFICATION_URL_LENGTH, MAX_SUBSCRIPTION_USERS, SUBSCRIPTION_MIN_LIFETIME,
    UNLIMITED_MAX_LIFETIME,
};
pub use vocab::{
    Activity, Availability, PreferredPair, SessionPair, WorkLocationSource, WorkLocationType,
};
pub use zone::{format_local, parse_local_date_time, TimeZoneName};

/// How long after its last refresh an `Available` session reads as
/// `AvailableInactive` (SPEC §4).
pub const FADE_TO_INACTIVE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// How long after its last refresh an `Available` session reads as `Away`.
pub const FADE_TO_AWAY: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
