//! The pure rules of Graph presence subscriptions (SPEC §7): which
//! `resource` and `changeType` are accepted, how `expirationDateTime` is
//! bounded, the length of `clientState` and `encryptionCertificateId`, and
//! which notification URLs and destinations are allowed.
//!
//! Nothing here resolves names or reads a clock: `now` is passed in, and the
//! caller resolves a URL's host before asking [`AllowedNetworks::permits`].

mod network;
mod notification_url;
mod resource;

use chrono::{SecondsFormat, TimeDelta};

use super::DomainError;
use crate::clock::Instant;

pub use network::{is_internal, AllowedNetworks};
pub use notification_url::{NotificationUrl, UrlField, MAX_NOTIFICATION_URL_LENGTH};
pub use resource::{PresenceResource, MAX_SUBSCRIPTION_USERS};

/// The shortest lifetime a subscription gets: an earlier `expirationDateTime`
/// is raised to `now` + 45 minutes (Graph's general rule; SPEC §7 decision).
pub const SUBSCRIPTION_MIN_LIFETIME: TimeDelta = TimeDelta::minutes(45);

/// The longest lifetime of a presence subscription under Graph's limits.
pub const GRAPH_MAX_LIFETIME: TimeDelta = TimeDelta::minutes(60);

/// The longest lifetime with `--subscription-limits none` (SPEC §7 decision).
pub const UNLIMITED_MAX_LIFETIME: TimeDelta = TimeDelta::days(7);

/// The longest `clientState` accepted, in characters (SPEC §7).
pub const MAX_CLIENT_STATE_CHARS: usize = 128;

/// The longest `encryptionCertificateId` accepted, in characters (SPEC §7).
pub const MAX_CERTIFICATE_ID_CHARS: usize = 128;

/// The change a subscription is notified of. Presence supports `updated`
/// only (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeType {
    /// The watched user's presence changed.
    Updated,
}

impl ChangeType {
    /// Parses `changeType`. Graph takes a comma-separated list, but for
    /// presence every entry must be `updated` (any case, spaces around commas
    /// tolerated); `created`, `deleted` or any mix with them is refused.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let only_updated = text
            .split(',')
            .all(|entry| entry.trim().eq_ignore_ascii_case("updated"));
        if only_updated {
            Ok(Self::Updated)
        } else {
            Err(DomainError::UnsupportedChangeType(text.to_string()))
        }
    }

    /// The wire spelling, `updated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Updated => "updated",
        }
    }
}

impl TryFrom<&str> for ChangeType {
    type Error = DomainError;

    fn try_from(text: &str) -> Result<Self, DomainError> {
        Self::parse(text)
    }
}

impl std::fmt::Display for ChangeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which subscription limits apply (`--subscription-limits`, SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionLimits {
    /// Graph's: delegated tokens only, one subscription per user and
    /// application, expiry at most 60 minutes ahead.
    #[default]
    Graph,
    /// Lifted: application tokens, any number, expiry up to 7 days ahead.
    None,
}

/// The longest time ahead of `now` an `expirationDateTime` may lie.
pub fn max_lifetime(limits: SubscriptionLimits) -> TimeDelta {
    match limits {
        SubscriptionLimits::Graph => GRAPH_MAX_LIFETIME,
        SubscriptionLimits::None => UNLIMITED_MAX_LIFETIME,
    }
}

/// The expiry a subscription gets for a requested `expirationDateTime`
/// (create and renew). A value not after `now` is refused, as is one more
/// than [`max_lifetime`] ahead (the bound itself is allowed); a value less
/// than [`SUBSCRIPTION_MIN_LIFETIME`] ahead is raised to `now` + 45 minutes.
pub fn subscription_expiry(
    requested: Instant,
    now: Instant,
    limits: SubscriptionLimits,
) -> Result<Instant, DomainError> {
    if requested <= now {
        return Err(DomainError::ExpirationInPast {
            requested: format_instant(requested),
            now: format_instant(now),
        });
    }
    let max = max_lifetime(limits);
    if requested - now > max {
        return Err(DomainError::ExpirationTooFar {
            max_minutes: max.num_minutes(),
        });
    }
    Ok(requested.max(now + SUBSCRIPTION_MIN_LIFETIME))
}

/// Checks `clientState` (absent is fine) against [`MAX_CLIENT_STATE_CHARS`].
pub fn check_client_state(client_state: Option<&str>) -> Result<(), DomainError> {
    match client_state.map(|s| s.chars().count()) {
        Some(chars) if chars > MAX_CLIENT_STATE_CHARS => Err(DomainError::ClientStateTooLong(
            chars,
            MAX_CLIENT_STATE_CHARS,
        )),
        _ => Ok(()),
    }
}

/// Checks `encryptionCertificateId` (absent is fine) against
/// [`MAX_CERTIFICATE_ID_CHARS`].
pub fn check_certificate_id(certificate_id: Option<&str>) -> Result<(), DomainError> {
    match certificate_id.map(|s| s.chars().count()) {
        Some(chars) if chars > MAX_CERTIFICATE_ID_CHARS => Err(
            DomainError::EncryptionCertificateIdTooLong(chars, MAX_CERTIFICATE_ID_CHARS),
        ),
        _ => Ok(()),
    }
}

/// RFC 3339 in UTC with a fraction only when there is one, for messages.
fn format_instant(t: Instant) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn now() -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap()
    }

    #[test]
    fn updated_is_the_only_change_type_in_any_case() {
        for ok in [
            "updated",
            "Updated",
            "UPDATED",
            "updated,updated",
            " updated ",
        ] {
            assert_eq!(ChangeType::parse(ok), Ok(ChangeType::Updated), "{ok}");
        }
        assert_eq!(ChangeType::try_from("updated"), Ok(ChangeType::Updated));
        assert_eq!(ChangeType::Updated.to_string(), "updated");
    }

    #[test]
    fn created_deleted_and_mixed_change_types_are_refused() {
        for bad in [
            "created",
            "deleted",
            "updated,deleted",
            "created,updated",
            "",
            "updated,",
            "update",
        ] {
            assert_eq!(
                ChangeType::parse(bad),
                Err(DomainError::UnsupportedChangeType(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_change_type_message_says_only_updated_is_supported() {
        let msg = ChangeType::parse("created").unwrap_err().to_string();
        assert_eq!(
            msg,
            "changeType 'created' is not supported for presence subscriptions; only 'updated' is supported"
        );
    }

    #[test]
    fn max_lifetime_is_an_hour_under_graph_limits_and_a_week_without() {
        assert_eq!(
            max_lifetime(SubscriptionLimits::Graph),
            TimeDelta::minutes(60)
        );
        assert_eq!(max_lifetime(SubscriptionLimits::None), TimeDelta::days(7));
        assert_eq!(SubscriptionLimits::default(), SubscriptionLimits::Graph);
    }

    #[test]
    fn an_expiry_within_the_window_is_kept() {
        let requested = now() + TimeDelta::minutes(50);
        assert_eq!(
            subscription_expiry(requested, now(), SubscriptionLimits::Graph),
            Ok(requested)
        );
    }

    #[test]
    fn an_expiry_exactly_at_the_maximum_is_kept() {
        for limits in [SubscriptionLimits::Graph, SubscriptionLimits::None] {
            let requested = now() + max_lifetime(limits);
            assert_eq!(subscription_expiry(requested, now(), limits), Ok(requested));
        }
    }

    #[test]
    fn an_expiry_under_45_minutes_is_raised_to_45_minutes() {
        for ahead in [
            TimeDelta::milliseconds(1),
            TimeDelta::minutes(5),
            TimeDelta::minutes(44),
        ] {
            assert_eq!(
                subscription_expiry(now() + ahead, now(), SubscriptionLimits::Graph),
                Ok(now() + TimeDelta::minutes(45)),
                "{ahead}"
            );
        }
    }

    #[test]
    fn an_expiry_in_the_past_is_refused_naming_both_instants() {
        let err = subscription_expiry(
            now() - TimeDelta::minutes(1),
            now(),
            SubscriptionLimits::Graph,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "expirationDateTime 2026-11-27T08:59:00Z is in the past; it must be later than the server's current time 2026-11-27T09:00:00Z"
        );
    }

    #[test]
    fn an_expiry_equal_to_now_is_in_the_past() {
        assert!(matches!(
            subscription_expiry(now(), now(), SubscriptionLimits::None),
            Err(DomainError::ExpirationInPast { .. })
        ));
    }

    #[test]
    fn an_expiry_past_60_minutes_is_refused_with_graphs_message() {
        let err = subscription_expiry(
            now() + TimeDelta::minutes(60) + TimeDelta::milliseconds(1),
            now(),
            SubscriptionLimits::Graph,
        )
        .unwrap_err();
        assert_eq!(err, DomainError::ExpirationTooFar { max_minutes: 60 });
        assert_eq!(
            err.to_string(),
            "Subscription expiration can only be 60 minutes in the future."
        );
    }

    #[test]
    fn without_limits_an_expiry_up_to_7_days_is_kept_and_beyond_is_refused() {
        let week = now() + TimeDelta::days(7);
        assert_eq!(
            subscription_expiry(now() + TimeDelta::days(3), now(), SubscriptionLimits::None),
            Ok(now() + TimeDelta::days(3))
        );
        let err = subscription_expiry(
            week + TimeDelta::seconds(1),
            now(),
            SubscriptionLimits::None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Subscription expiration can only be 10080 minutes in the future."
        );
    }

    #[test]
    fn a_client_state_of_128_characters_is_accepted_and_129_refused() {
        assert_eq!(check_client_state(None), Ok(()));
        assert_eq!(check_client_state(Some("")), Ok(()));
        assert_eq!(check_client_state(Some(&"é".repeat(128))), Ok(()));
        let err = check_client_state(Some(&"x".repeat(129))).unwrap_err();
        assert_eq!(err, DomainError::ClientStateTooLong(129, 128));
        assert_eq!(
            err.to_string(),
            "clientState is 129 characters long; the limit is 128"
        );
    }

    #[test]
    fn a_certificate_id_of_128_characters_is_accepted_and_129_refused() {
        assert_eq!(check_certificate_id(None), Ok(()));
        assert_eq!(check_certificate_id(Some(&"k".repeat(128))), Ok(()));
        let err = check_certificate_id(Some(&"k".repeat(129))).unwrap_err();
        assert_eq!(err, DomainError::EncryptionCertificateIdTooLong(129, 128));
        assert_eq!(
            err.to_string(),
            "encryptionCertificateId is 129 characters long; the limit is 128"
        );
    }
}
