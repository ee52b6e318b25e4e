//! Every broken domain rule, with what its message needs.

use super::vocab::{Activity, Availability};

/// A rule of SPEC §4 that an input broke. Each variant renders as a clear,
/// client-facing message; the HTTP layer maps them all to 400 `invalidRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// An availability value outside the vocabulary.
    #[error("'{0}' is not a valid availability value")]
    UnknownAvailability(String),
    /// An activity value outside the vocabulary.
    #[error("'{0}' is not a valid activity value")]
    UnknownActivity(String),
    /// A pair not allowed for setPresence.
    #[error("The availability/activity pair {0}/{1} is not supported by setPresence; supported pairs are Available/Available, Busy/InACall, Busy/InAConferenceCall, Away/Away and DoNotDisturb/Presenting")]
    InvalidSessionPair(Availability, Activity),
    /// A pair not allowed for setUserPreferredPresence.
    #[error("The availability/activity pair {0}/{1} is not supported by setUserPreferredPresence; supported pairs are Available/Available, Busy/Busy, DoNotDisturb/DoNotDisturb, BeRightBack/BeRightBack, Away/Away and Offline/OffWork")]
    InvalidPreferredPair(Availability, Activity),
    /// A duration that is not strict ISO 8601.
    #[error("'{0}' is not an ISO 8601 duration; expected a value such as PT5M, PT1H30M or P1D")]
    MalformedDuration(String),
    /// A duration outside the allowed range.
    #[error("expirationDuration {value} is out of range; it must be between {min} and {max}")]
    DurationOutOfRange {
        /// The duration as given.
        value: String,
        /// The smallest allowed value, ISO 8601.
        min: String,
        /// The largest allowed value, ISO 8601.
        max: String,
    },
    /// A GUID was expected.
    #[error("'{0}' is not a valid user id; user ids are object-id GUIDs")]
    InvalidGuid(String),
    /// A status message longer than allowed.
    #[error("statusMessage.message.content is {0} characters long; the limit is {1}")]
    StatusMessageTooLong(usize, usize),
    /// A body content type other than text or html.
    #[error("'{0}' is not a valid contentType; expected 'text' or 'html'")]
    InvalidContentType(String),
    /// An unknown Windows or IANA time zone name.
    #[error("'{0}' is not a known time zone; use a Windows name such as 'Pacific Standard Time' or an IANA name such as 'America/Los_Angeles'")]
    UnknownTimeZone(String),
    /// A local date-time that does not parse.
    #[error("'{0}' is not a valid dateTime; expected a local date and time without offset such as 2022-10-18T17:05:33.2079781")]
    MalformedDateTime(String),
    /// A work location type outside the vocabulary.
    #[error(
        "'{0}' is not a valid workLocationType; expected unspecified, office, remote or timeOff"
    )]
    UnknownWorkLocationType(String),
    /// The session id does not belong to the caller.
    #[error("sessionId '{given}' does not match the calling application's id '{app}'; an application may only set its own presence session")]
    SessionIdMismatch {
        /// The sessionId from the request body.
        given: String,
        /// The calling application's id.
        app: String,
    },
}
