//! The stored facts about one user: what the store keeps, with absolute
//! instants, and nothing derived (DESIGN.md).

use super::vocab::{PreferredPair, SessionPair, WorkLocationType};
use crate::clock::Instant;

/// Who owns a presence session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionKind {
    /// An application's session, written by setPresence; its id is the app id.
    Application,
    /// A simulated Teams client session (emulator mode); its id is a name
    /// such as `desktop`.
    Client,
}

impl SessionKind {
    /// Stable storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Application => "app",
            SessionKind::Client => "client",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "app" => Some(SessionKind::Application),
            "client" => Some(SessionKind::Client),
            _ => None,
        }
    }
}

/// One presence session (SPEC §4): the state its owner last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Whose session it is.
    pub kind: SessionKind,
    /// The session id (the application id, or the client's name).
    pub id: String,
    /// The state as reported, before fading.
    pub pair: SessionPair,
    /// When the owner last called setPresence for it (fading starts here).
    pub last_active: Instant,
    /// The session is gone at and after this instant.
    pub expires_at: Instant,
}

/// A user-preferred presence (setUserPreferredPresence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferred {
    /// The preferred state.
    pub pair: PreferredPair,
    /// When it was set.
    pub set_at: Instant,
    /// It no longer applies at and after this instant.
    pub expires_at: Instant,
}

/// A status message (setStatusMessage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMessage {
    /// The text.
    pub content: String,
    /// When it stops showing; `None` for never.
    pub expires_at: Option<Instant>,
    /// The time zone name the caller used for the expiry, echoed on read.
    pub expiry_zone: Option<String>,
    /// Server time of the setStatusMessage call.
    pub published_at: Instant,
}

impl StatusMessage {
    /// Whether the message still shows at `now`.
    pub fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

/// One layer of the work location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkLocationLayer {
    /// The location.
    pub location_type: WorkLocationType,
    /// An optional place id (building, desk).
    pub place_id: Option<String>,
    /// When it was set.
    pub set_at: Instant,
}

/// The work location layers; the manual one, when set, overrides the
/// automatic one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkLocation {
    /// Set by setManualLocation, removed by clearLocation.
    pub manual: Option<WorkLocationLayer>,
    /// Set by setAutomaticLocation, removed by clearAutomaticLocation or clearLocation.
    pub automatic: Option<WorkLocationLayer>,
}

/// Everything stored about one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFacts {
    /// Sessions, possibly including expired ones not yet pruned.
    pub sessions: Vec<Session>,
    /// The user-preferred presence, possibly expired.
    pub preferred: Option<Preferred>,
    /// The status message, possibly expired.
    pub status: Option<StatusMessage>,
    /// The work location layers.
    pub work_location: WorkLocation,
    /// Incremented by every write; part of the sequence number.
    pub version: u64,
    /// The instant of the last write, if any.
    pub updated_at: Option<Instant>,
    /// When the user last had a live session, as of the sessions pruned or
    /// removed so far (see [`super::last_seen`] for the full answer).
    pub last_seen: Option<Instant>,
    /// The instant up to which this user's changes have been observed and
    /// published (every write, every processed fade or expiry moves it);
    /// what watchers last saw is `effective(facts, settled_at)`.
    pub settled_at: Option<Instant>,
    /// The store holds a row for this user that it could not decode (a
    /// damaged or foreign value): the other fields are empty, `version` is
    /// the stored one when readable, and `effective` reads
    /// PresenceUnknown/PresenceUnknown. Never stored; the next write for
    /// the user replaces the row.
    pub unreadable: bool,
}
