//! The vocabulary of SPEC §1 and the valid pairs of SPEC §4.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::DomainError;

/// Defines a closed vocabulary: a fieldless enum whose wire spelling is given
/// per variant, parsed case-insensitively and always rendered canonically.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            /// Parses a wire value, ignoring ASCII case (SPEC §1 decision).
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(text))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} '{text}'", stringify!($name)))
                })
            }
        }

        /// Described in the OpenAPI document as a string enumeration of
        /// the canonical spellings.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Self::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// The base presence information (SPEC §1).
    Availability {
        /// Available.
        Available = "Available",
        /// Available but idle.
        AvailableIdle = "AvailableIdle",
        /// Away.
        Away = "Away",
        /// Be right back.
        BeRightBack = "BeRightBack",
        /// Busy.
        Busy = "Busy",
        /// Busy but idle.
        BusyIdle = "BusyIdle",
        /// Do not disturb.
        DoNotDisturb = "DoNotDisturb",
        /// Offline.
        Offline = "Offline",
        /// Unknown.
        PresenceUnknown = "PresenceUnknown",
    }
}

vocabulary! {
    /// The supplemental information to an availability (SPEC §1).
    Activity {
        /// Available.
        Available = "Available",
        /// Available, inactive for a while.
        AvailableInactive = "AvailableInactive",
        /// Away.
        Away = "Away",
        /// Be right back.
        BeRightBack = "BeRightBack",
        /// Busy.
        Busy = "Busy",
        /// Do not disturb.
        DoNotDisturb = "DoNotDisturb",
        /// In a call.
        InACall = "InACall",
        /// In a conference call.
        InAConferenceCall = "InAConferenceCall",
        /// Inactive.
        Inactive = "Inactive",
        /// In a meeting.
        InAMeeting = "InAMeeting",
        /// Offline.
        Offline = "Offline",
        /// Off work.
        OffWork = "OffWork",
        /// Out of office.
        OutOfOffice = "OutOfOffice",
        /// Unknown.
        PresenceUnknown = "PresenceUnknown",
        /// Presenting.
        Presenting = "Presenting",
        /// Urgent interruptions only.
        UrgentInterruptionsOnly = "UrgentInterruptionsOnly",
    }
}

vocabulary! {
    /// Where a user works (Graph `workLocationType`).
    WorkLocationType {
        /// Not specified.
        Unspecified = "unspecified",
        /// In the office.
        Office = "office",
        /// Remote.
        Remote = "remote",
        /// Time off.
        TimeOff = "timeOff",
    }
}

vocabulary! {
    /// Which layer the reported work location comes from (Graph `source`).
    WorkLocationSource {
        /// No location is set.
        None = "none",
        /// Set by the user for now.
        Manual = "manual",
        /// From the user's work-hours schedule (never produced by presenced).
        Scheduled = "scheduled",
        /// Detected automatically (network, device).
        Automatic = "automatic",
    }
}

impl Availability {
    /// Precedence in aggregation (SPEC §4): DoNotDisturb > Busy > Available >
    /// Away. Values outside the four rank with their nearest kin so that
    /// simulated client sessions aggregate sensibly.
    pub fn precedence(self) -> u8 {
        match self {
            Availability::DoNotDisturb => 5,
            Availability::Busy | Availability::BusyIdle => 4,
            Availability::Available | Availability::AvailableIdle => 3,
            Availability::BeRightBack => 2,
            Availability::Away => 1,
            Availability::Offline | Availability::PresenceUnknown => 0,
        }
    }
}

/// Parses an availability/activity pair of raw wire text.
fn parse_pair(availability: &str, activity: &str) -> Result<(Availability, Activity), DomainError> {
    let av = Availability::parse(availability)
        .ok_or_else(|| DomainError::UnknownAvailability(availability.to_string()))?;
    let ac = Activity::parse(activity)
        .ok_or_else(|| DomainError::UnknownActivity(activity.to_string()))?;
    Ok((av, ac))
}

/// A pair valid for an application presence session (setPresence, SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionPair {
    availability: Availability,
    activity: Activity,
}

impl SessionPair {
    /// The pairs setPresence accepts.
    pub const VALID: &'static [(Availability, Activity)] = &[
        (Availability::Available, Activity::Available),
        (Availability::Busy, Activity::InACall),
        (Availability::Busy, Activity::InAConferenceCall),
        (Availability::Away, Activity::Away),
        (Availability::DoNotDisturb, Activity::Presenting),
    ];

    /// Pairs a simulated Teams client session may also report (emulator mode):
    /// what a real Teams client shows besides the setPresence pairs.
    pub const CLIENT_EXTRA: &'static [(Availability, Activity)] = &[
        (Availability::Busy, Activity::Busy),
        (Availability::Busy, Activity::InAMeeting),
        (Availability::DoNotDisturb, Activity::DoNotDisturb),
        (
            Availability::DoNotDisturb,
            Activity::UrgentInterruptionsOnly,
        ),
        (Availability::BeRightBack, Activity::BeRightBack),
        (Availability::Away, Activity::OutOfOffice),
    ];

    /// Validates a setPresence pair.
    pub fn parse(availability: &str, activity: &str) -> Result<Self, DomainError> {
        let (av, ac) = parse_pair(availability, activity)?;
        Self::new(av, ac)
    }

    /// Validates a setPresence pair of parsed values.
    pub fn new(availability: Availability, activity: Activity) -> Result<Self, DomainError> {
        if Self::VALID.contains(&(availability, activity)) {
            Ok(Self {
                availability,
                activity,
            })
        } else {
            Err(DomainError::InvalidSessionPair(availability, activity))
        }
    }

    /// Validates a pair for a simulated Teams client session: the setPresence
    /// pairs plus [`SessionPair::CLIENT_EXTRA`].
    pub fn parse_client(availability: &str, activity: &str) -> Result<Self, DomainError> {
        let (av, ac) = parse_pair(availability, activity)?;
        if Self::CLIENT_EXTRA.contains(&(av, ac)) {
            Ok(Self {
                availability: av,
                activity: ac,
            })
        } else {
            Self::new(av, ac)
        }
    }

    /// Rebuilds a pair read back from storage, where it was validated on
    /// the way in.
    pub fn from_stored(availability: Availability, activity: Activity) -> Self {
        Self {
            availability,
            activity,
        }
    }

    /// The availability.
    pub fn availability(self) -> Availability {
        self.availability
    }

    /// The activity.
    pub fn activity(self) -> Activity {
        self.activity
    }
}

/// A pair valid for setUserPreferredPresence (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PreferredPair {
    availability: Availability,
    activity: Activity,
}

impl PreferredPair {
    /// The pairs setUserPreferredPresence accepts.
    pub const VALID: &'static [(Availability, Activity)] = &[
        (Availability::Available, Activity::Available),
        (Availability::Busy, Activity::Busy),
        (Availability::DoNotDisturb, Activity::DoNotDisturb),
        (Availability::BeRightBack, Activity::BeRightBack),
        (Availability::Away, Activity::Away),
        (Availability::Offline, Activity::OffWork),
    ];

    /// Validates a preferred pair.
    pub fn parse(availability: &str, activity: &str) -> Result<Self, DomainError> {
        let (av, ac) = parse_pair(availability, activity)?;
        Self::new(av, ac)
    }

    /// Validates a preferred pair of parsed values.
    pub fn new(availability: Availability, activity: Activity) -> Result<Self, DomainError> {
        if Self::VALID.contains(&(availability, activity)) {
            Ok(Self {
                availability,
                activity,
            })
        } else {
            Err(DomainError::InvalidPreferredPair(availability, activity))
        }
    }

    /// The availability.
    pub fn availability(self) -> Availability {
        self.availability
    }

    /// The activity.
    pub fn activity(self) -> Activity {
        self.activity
    }

    /// Default lifetime when no expirationDuration is given (SPEC §4): one day
    /// for Busy and DoNotDisturb, seven days otherwise.
    pub fn default_lifetime(self) -> chrono::TimeDelta {
        match self.availability {
            Availability::Busy | Availability::DoNotDisturb => chrono::TimeDelta::days(1),
            _ => chrono::TimeDelta::days(7),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_parses_any_case_and_renders_pascal_case() {
        assert_eq!(
            Availability::parse("donotdisturb"),
            Some(Availability::DoNotDisturb)
        );
        assert_eq!(Availability::parse("BUSY"), Some(Availability::Busy));
        assert_eq!(
            Activity::parse("inaconferencecall"),
            Some(Activity::InAConferenceCall)
        );
        assert_eq!(Availability::DoNotDisturb.as_str(), "DoNotDisturb");
        assert_eq!(Availability::parse("Sleeping"), None);
        assert_eq!(
            WorkLocationType::parse("TIMEOFF"),
            Some(WorkLocationType::TimeOff)
        );
        assert_eq!(WorkLocationType::TimeOff.as_str(), "timeOff");
    }

    #[test]
    fn every_value_round_trips_through_its_wire_spelling() {
        for a in Availability::ALL {
            assert_eq!(Availability::parse(a.as_str()), Some(*a));
        }
        for a in Activity::ALL {
            assert_eq!(Activity::parse(a.as_str()), Some(*a));
        }
    }

    #[test]
    fn set_presence_accepts_exactly_the_five_documented_pairs() {
        let mut accepted = vec![];
        for av in Availability::ALL {
            for ac in Activity::ALL {
                if SessionPair::new(*av, *ac).is_ok() {
                    accepted.push((*av, *ac));
                }
            }
        }
        assert_eq!(accepted.len(), 5);
        for pair in SessionPair::VALID {
            assert!(accepted.contains(pair));
        }
    }

    #[test]
    fn set_presence_rejects_an_undocumented_pair_naming_it() {
        let err = SessionPair::parse("Available", "Busy").unwrap_err();
        assert_eq!(
            err,
            DomainError::InvalidSessionPair(Availability::Available, Activity::Busy)
        );
        assert!(err.to_string().contains("Available/Busy"));
    }

    #[test]
    fn unknown_words_are_named_in_the_error() {
        assert_eq!(
            SessionPair::parse("Sleepy", "Available"),
            Err(DomainError::UnknownAvailability("Sleepy".into()))
        );
        assert_eq!(
            PreferredPair::parse("Busy", "Napping"),
            Err(DomainError::UnknownActivity("Napping".into()))
        );
    }

    #[test]
    fn preferred_accepts_exactly_the_six_documented_pairs() {
        let mut count = 0;
        for av in Availability::ALL {
            for ac in Activity::ALL {
                if PreferredPair::new(*av, *ac).is_ok() {
                    count += 1;
                    assert!(PreferredPair::VALID.contains(&(*av, *ac)));
                }
            }
        }
        assert_eq!(count, 6);
        assert!(PreferredPair::parse("offline", "offwork").is_ok());
        assert!(PreferredPair::parse("Busy", "InACall").is_err());
    }

    #[test]
    fn preferred_default_lifetimes() {
        let day = chrono::TimeDelta::days(1);
        let week = chrono::TimeDelta::days(7);
        assert_eq!(
            PreferredPair::parse("Busy", "Busy")
                .unwrap()
                .default_lifetime(),
            day
        );
        assert_eq!(
            PreferredPair::parse("DoNotDisturb", "DoNotDisturb")
                .unwrap()
                .default_lifetime(),
            day
        );
        for (av, ac) in [
            ("Available", "Available"),
            ("Away", "Away"),
            ("BeRightBack", "BeRightBack"),
            ("Offline", "OffWork"),
        ] {
            assert_eq!(
                PreferredPair::parse(av, ac).unwrap().default_lifetime(),
                week
            );
        }
    }

    #[test]
    fn client_sessions_accept_meeting_but_not_nonsense() {
        assert!(SessionPair::parse_client("Busy", "InAMeeting").is_ok());
        assert!(SessionPair::parse("Busy", "InAMeeting").is_err());
        assert!(SessionPair::parse_client("Available", "Presenting").is_err());
    }

    #[test]
    fn precedence_orders_the_four_documented_availabilities() {
        use Availability::*;
        assert!(DoNotDisturb.precedence() > Busy.precedence());
        assert!(Busy.precedence() > Available.precedence());
        assert!(Available.precedence() > Away.precedence());
    }
}
