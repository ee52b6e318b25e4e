//! Every broken domain rule, with what its message needs.

use std::net::IpAddr;

use super::subscription::UrlField;
use super::vocab::{Activity, Availability};

/// A rule of SPEC §4 or §7 that an input broke. Each variant renders as a
/// clear, client-facing message; the HTTP layer maps each to its status
/// (400 `invalidRequest`, Graph's own code where Graph has one, 404 for a
/// missing session).
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
    /// clearPresence (or ending a simulated client) of a session that does
    /// not exist; the one rule that answers 404.
    #[error("no presence session '{0}' exists for this user")]
    NoSuchSession(String),
    /// setStatusMessage without `statusMessage.message`.
    #[error("statusMessage.message is required.")]
    MissingStatusMessage,
    /// A status-message expiry outside the years Graph can express.
    #[error("expiryDateTime '{date_time}' in '{zone}' is outside the supported range (years 0001 to 9999).")]
    ExpiryOutOfRange {
        /// The local date-time as given.
        date_time: String,
        /// The zone name.
        zone: String,
    },
    /// A `placeId` longer than allowed.
    #[error("placeId is longer than {0} characters.")]
    PlaceIdTooLong(usize),
    /// A subscription resource other than the presence forms (SPEC §7).
    #[error("'{0}' is not a supported presence subscription resource; expected /communications/presences/{{id}} or /communications/presences?$filter=id in ('{{id}}','{{id}}',…) with user object-id GUIDs")]
    UnsupportedSubscriptionResource(String),
    /// A subscription resource whose `$filter` lists no user.
    #[error("The resource's $filter lists no user ids; a presence subscription watches between 1 and 650 users")]
    NoResourceUsers,
    /// A subscription resource naming more distinct users than allowed.
    #[error("The resource names {count} distinct users; a presence subscription can watch at most {max}")]
    TooManyResourceUsers {
        /// The distinct users named.
        count: usize,
        /// The limit (650).
        max: usize,
    },
    /// A query option other than `$filter` in a subscription resource.
    #[error("The query option '{0}' is not supported in a presence subscription resource; only $filter=id in (…) on /communications/presences is")]
    UnsupportedResourceQueryOption(String),
    /// A `changeType` other than `updated`.
    #[error(
        "changeType '{0}' is not supported for presence subscriptions; only 'updated' is supported"
    )]
    UnsupportedChangeType(String),
    /// An `expirationDateTime` not after the server's current time.
    #[error("expirationDateTime {requested} is in the past; it must be later than the server's current time {now}")]
    ExpirationInPast {
        /// The requested expiry, RFC 3339.
        requested: String,
        /// The server's current time, RFC 3339.
        now: String,
    },
    /// An `expirationDateTime` further ahead than allowed (Graph's wording).
    #[error("Subscription expiration can only be {max_minutes} minutes in the future.")]
    ExpirationTooFar {
        /// The longest lifetime, in minutes.
        max_minutes: i64,
    },
    /// A `clientState` longer than allowed.
    #[error("clientState is {0} characters long; the limit is {1}")]
    ClientStateTooLong(usize, usize),
    /// An `encryptionCertificateId` longer than allowed.
    #[error("encryptionCertificateId is {0} characters long; the limit is {1}")]
    EncryptionCertificateIdTooLong(usize, usize),
    /// A notification URL that is not an absolute URL.
    #[error("{field} is not a valid absolute URL: {reason}")]
    InvalidNotificationUrl {
        /// Which URL.
        field: UrlField,
        /// What the parser found wrong.
        reason: String,
    },
    /// A notification URL longer than allowed.
    #[error("{field} is {length} characters long; the limit is {max}")]
    NotificationUrlTooLong {
        /// Which URL.
        field: UrlField,
        /// Its length in characters.
        length: usize,
        /// The limit (2048).
        max: usize,
    },
    /// An `http` notification URL (Graph's wording; the HTTP layer answers
    /// with Graph's code `InvalidRequest`).
    #[error("{} scheme='http' is not supported.", .0.graph_name())]
    HttpNotificationUrl(UrlField),
    /// A notification URL with a scheme other than `http`/`https`.
    #[error("{field} scheme '{scheme}' is not supported; use https (http only to a loopback host in emulator mode)")]
    UnsupportedNotificationUrlScheme {
        /// Which URL.
        field: UrlField,
        /// The scheme given.
        scheme: String,
    },
    /// A notification URL carrying a user name or password.
    #[error("{0} must not contain a user name or password")]
    NotificationUrlWithCredentials(UrlField),
    /// A notification URL whose host is an internal address not allowed.
    #[error("{field} points at {ip}, an internal address; internal destinations are refused unless allowed with --webhook-allow-cidr")]
    NotificationUrlDestinationRefused {
        /// Which URL.
        field: UrlField,
        /// The address refused.
        ip: IpAddr,
    },
    /// A `$select` naming a property the presence resource does not have
    /// (Graph's wording).
    #[error("Could not find a property named '{0}' on type 'microsoft.graph.presence'.")]
    UnknownPresenceProperty(String),
    /// An OData system query option presence does not support.
    #[error("Query option '{0}' is not supported on presence; only $select is.")]
    UnsupportedQueryOption(String),
    /// An OData query option given more than once.
    #[error(
        "Query option '{0}' was specified more than once, but it must be specified at most once."
    )]
    RepeatedQueryOption(String),
    /// A batch body that is not JSON.
    #[error("The batch body is not valid JSON: {0}")]
    BatchNotJson(String),
    /// A batch body without a `requests` array.
    #[error("The batch body must be a JSON object with a 'requests' array.")]
    BatchMissingRequests,
    /// A batch with no request or more than allowed.
    #[error("A batch holds between 1 and {max} requests; this one holds {count}.")]
    BatchSize {
        /// The requests given.
        count: usize,
        /// The limit (20).
        max: usize,
    },
    /// A batched request with a missing or ill-typed field.
    #[error("requests[{index}]: {reason}.")]
    BatchRequestInvalid {
        /// Its position in `requests`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Two batched requests with the same id (ids ignore case).
    #[error("The batch has more than one request with id '{0}'; ids must be unique.")]
    DuplicateBatchId(String),
    /// A batched request with a method other than GET, POST, PUT, PATCH or DELETE.
    #[error("Request '{id}' has method '{method}'; a batched request uses GET, POST, PUT, PATCH or DELETE.")]
    UnknownBatchMethod {
        /// The request's id.
        id: String,
        /// The method given.
        method: String,
    },
    /// A batched request with an absolute URL.
    #[error("Request '{id}' has url '{url}'; a batched request's url is relative to the version, such as /users/{{id}}/presence.")]
    BatchUrlAbsolute {
        /// The request's id.
        id: String,
        /// The url given.
        url: String,
    },
    /// A batched request whose URL leaves the batch's version (another
    /// version's prefix, `.` or `..` segments).
    #[error("Request '{id}' has url '{url}', which is outside the batch's version; write it relative to the version, such as /users/{{id}}/presence.")]
    BatchUrlOutsideVersion {
        /// The request's id.
        id: String,
        /// The url given.
        url: String,
    },
    /// A batched request that is itself a batch.
    #[error("Request '{0}' is a $batch request; batches cannot be nested.")]
    NestedBatch(String),
    /// A `dependsOn` naming no request of the batch.
    #[error("Request '{id}' depends on '{depends_on}', which is not a request of this batch.")]
    UnknownBatchDependency {
        /// The request's id.
        id: String,
        /// The id it depends on.
        depends_on: String,
    },
    /// `dependsOn` links that form a cycle.
    #[error("The dependsOn of requests {} form a cycle.", .0.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", "))]
    BatchDependencyCycle(Vec<String>),
    /// An allowed-network entry that is not CIDR or an address.
    #[error("'{0}' is not a valid network; expected CIDR notation such as 10.0.0.0/8 or fd00::/8, or a single address")]
    InvalidAllowedNetwork(String),
    /// A users-listing `$top` outside 1 to the maximum.
    #[error("$top '{0}' is not a whole number from 1 to {1}.")]
    InvalidTop(String, usize),
    /// A users-listing `$filter` other than on availability.
    #[error("$filter '{0}' is not supported here; use availability eq 'Busy' or availability in ('Busy','Away').")]
    InvalidUsersFilter(String),
    /// A users-listing `$skiptoken` that no nextLink gave.
    #[error(
        "$skiptoken '{0}' is not valid; use the @odata.nextLink of the previous page as it is."
    )]
    InvalidSkipToken(String),
    /// A users-listing query option other than `$top`, `$filter` and `$skiptoken`.
    #[error("The query option '{0}' is not supported on the users listing; use $top, $filter or $skiptoken.")]
    UnsupportedUsersQueryOption(String),
}
