//! `effective(facts, now)`: the presence a reader sees, computed from stored
//! facts and the time alone (DESIGN.md), and `next_change`, the next instant
//! at which it may differ.

use super::facts::{Session, StatusMessage, UserFacts};
use super::vocab::{Activity, Availability, WorkLocationSource, WorkLocationType};
use super::{FADE_TO_AWAY, FADE_TO_INACTIVE};
use crate::clock::Instant;

/// The presence of one user as readers see it at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePresence {
    /// Aggregated availability.
    pub availability: Availability,
    /// Aggregated activity.
    pub activity: Activity,
    /// The status message, if one is set and not expired.
    pub status: Option<StatusMessage>,
    /// The work location to report.
    pub work_location: (WorkLocationType, WorkLocationSource, Option<String>),
    /// Sortable text that changes, and sorts higher, whenever this presence
    /// changes (SPEC §2): 16 hex digits of the per-user write version, then
    /// 16 of the microsecond at which the current presence began.
    pub sequence_number: String,
}

impl Session {
    /// Whether the session still exists at `now`.
    pub fn is_live(&self, now: Instant) -> bool {
        now < self.expires_at
    }

    /// The state this session shows at `now`, after fading (SPEC §4): only
    /// `Available` fades, to AvailableInactive at 5 minutes and Away at 10.
    pub fn state_at(&self, now: Instant) -> (Availability, Activity) {
        let (av, ac) = (self.pair.availability(), self.pair.activity());
        if av != Availability::Available {
            return (av, ac);
        }
        let idle = now - self.last_active;
        if idle >= FADE_TO_AWAY {
            (Availability::Away, Activity::Away)
        } else if idle >= FADE_TO_INACTIVE {
            (Availability::Available, Activity::AvailableInactive)
        } else {
            (av, ac)
        }
    }
}

/// The availability/activity readers see at `now` (SPEC §4): the live
/// sessions aggregated by precedence (tie → most recently refreshed), unless
/// a live preferred presence overrides them; Offline/Offline without a live
/// session; PresenceUnknown/PresenceUnknown when the store could not read
/// the user's facts ([`UserFacts::unreadable`]).
pub fn aggregate(facts: &UserFacts, now: Instant) -> (Availability, Activity) {
    if facts.unreadable {
        return (Availability::PresenceUnknown, Activity::PresenceUnknown);
    }
    let winner = facts
        .sessions
        .iter()
        .filter(|s| s.is_live(now))
        .map(|s| (s.state_at(now), s.last_active, s.kind, s.id.as_str()))
        // Full ordering so the result never depends on storage order.
        .max_by(|a, b| {
            (a.0 .0.precedence(), a.1, a.2, a.3).cmp(&(b.0 .0.precedence(), b.1, b.2, b.3))
        });
    let Some((state, ..)) = winner else {
        return (Availability::Offline, Activity::Offline);
    };
    match &facts.preferred {
        Some(p) if now < p.expires_at => (p.pair.availability(), p.pair.activity()),
        _ => state,
    }
}

/// Every instant at which some fact changes how it reads.
fn transitions(facts: &UserFacts) -> impl Iterator<Item = Instant> + '_ {
    let sessions = facts.sessions.iter().flat_map(|s| {
        let fades = (s.pair.availability() == Availability::Available).then(|| {
            // Checked: an instant near the end of time has no fade, not a panic.
            [
                s.last_active.checked_add_signed(FADE_TO_INACTIVE),
                s.last_active.checked_add_signed(FADE_TO_AWAY),
            ]
        });
        fades.into_iter().flatten().flatten().chain([s.expires_at])
    });
    let preferred = facts.preferred.iter().map(|p| p.expires_at);
    let status = facts.status.iter().filter_map(|m| m.expires_at);
    sessions.chain(preferred).chain(status)
}

/// The earliest instant after `now` at which [`effective`] may change, or
/// `None` if nothing will change without a write. `effective` is constant on
/// `[now, next_change)`.
pub fn next_change(facts: &UserFacts, now: Instant) -> Option<Instant> {
    transitions(facts).filter(|t| *t > now).min()
}

/// The instant since which the presence has read as it does at `now`: the
/// later of the last write and the last transition not after `now`.
fn last_change(facts: &UserFacts, now: Instant) -> Option<Instant> {
    transitions(facts)
        .filter(|t| *t <= now)
        .chain(facts.updated_at)
        .max()
}

/// When the user last had a live session (SPEC §8 `lastSeenDateTime`):
/// `now` while one lives, else the latest instant a session ended, `None` if
/// the user never had one.
pub fn last_seen(facts: &UserFacts, now: Instant) -> Option<Instant> {
    if facts.sessions.iter().any(|s| s.is_live(now)) {
        return Some(now);
    }
    facts
        .sessions
        .iter()
        .map(|s| s.expires_at)
        .chain(facts.last_seen)
        .max()
}

/// The presence readers see at `now` (SPEC §2, §4). Facts the store could
/// not read show PresenceUnknown/PresenceUnknown and no status message:
/// we do not know, and say so, rather than guess Offline.
pub fn effective(facts: &UserFacts, now: Instant) -> EffectivePresence {
    let (availability, activity) = aggregate(facts, now);
    let status = facts
        .status
        .as_ref()
        .filter(|m| !facts.unreadable && m.is_live(now))
        .cloned();
    let work_location = match (&facts.work_location.manual, &facts.work_location.automatic) {
        (Some(m), _) => (
            m.location_type,
            WorkLocationSource::Manual,
            m.place_id.clone(),
        ),
        (None, Some(a)) => (
            a.location_type,
            WorkLocationSource::Automatic,
            a.place_id.clone(),
        ),
        (None, None) => (
            WorkLocationType::Unspecified,
            WorkLocationSource::None,
            None,
        ),
    };
    // An instant before 1970 counts as 0.
    let since =
        last_change(facts, now).map_or(0, |t| u64::try_from(t.timestamp_micros()).unwrap_or(0));
    EffectivePresence {
        availability,
        activity,
        status,
        work_location,
        // Version first: every write sorts above everything before it, even
        // one stamped with an earlier `now`; between writes, time-driven
        // transitions raise the second half.
        sequence_number: sequence_number(facts.version, since),
    }
}

/// A sequence number's text: `version`, then `since`, each as 16
/// upper-case hex digits (what `format!("{:016X}{:016X}")` writes). Built
/// by hand: through `core::fmt` it was a few per cent of a getPresence's
/// CPU, and more of a bulk read's, which writes one per user.
fn sequence_number(version: u64, since: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut text = String::with_capacity(32);
    for value in [version, since] {
        for shift in (0..16).rev() {
            text.push(char::from(HEX[((value >> (shift * 4)) & 0xF) as usize]));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Preferred, PreferredPair, SessionKind, SessionPair};
    use chrono::{TimeDelta, TimeZone, Utc};
    use proptest::prelude::*;

    fn t0() -> Instant {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
    }

    fn min(n: i64) -> TimeDelta {
        TimeDelta::minutes(n)
    }

    fn session(
        id: &str,
        av: Availability,
        ac: Activity,
        at: Instant,
        lifetime: TimeDelta,
    ) -> Session {
        Session {
            kind: SessionKind::Application,
            id: id.to_string(),
            pair: SessionPair::new(av, ac).unwrap(),
            last_active: at,
            expires_at: at + lifetime,
        }
    }

    fn facts(sessions: Vec<Session>) -> UserFacts {
        UserFacts {
            sessions,
            version: 1,
            updated_at: Some(t0()),
            ..Default::default()
        }
    }

    #[test]
    fn no_sessions_reads_offline() {
        let e = effective(&UserFacts::default(), t0());
        assert_eq!(
            (e.availability, e.activity),
            (Availability::Offline, Activity::Offline)
        );
        assert_eq!(e.status, None);
        assert_eq!(
            e.work_location,
            (
                WorkLocationType::Unspecified,
                WorkLocationSource::None,
                None
            )
        );
    }

    #[test]
    fn unreadable_facts_read_as_presence_unknown_without_a_status_message() {
        let mut f = facts(vec![session(
            "a",
            Availability::Busy,
            Activity::InACall,
            t0(),
            min(60),
        )]);
        f.status = Some(StatusMessage {
            content: "lunch".into(),
            expires_at: None,
            expiry_zone: None,
            published_at: t0(),
        });
        f.unreadable = true;
        let e = effective(&f, t0() + min(1));
        assert_eq!(
            (e.availability, e.activity),
            (Availability::PresenceUnknown, Activity::PresenceUnknown)
        );
        assert_eq!(e.status, None);
        assert_eq!(
            effective(
                &UserFacts {
                    version: 7,
                    unreadable: true,
                    ..Default::default()
                },
                t0()
            )
            .sequence_number,
            format!("{:016X}{:016X}", 7, 0),
            "the stored version still orders the sequence number"
        );
    }

    #[test]
    fn available_fades_to_inactive_at_5_and_away_at_10_minutes() {
        let f = facts(vec![session(
            "a",
            Availability::Available,
            Activity::Available,
            t0(),
            min(60),
        )]);
        let at = |m: i64| aggregate(&f, t0() + min(m));
        assert_eq!(at(0), (Availability::Available, Activity::Available));
        assert_eq!(
            aggregate(&f, t0() + min(5) - TimeDelta::nanoseconds(1)),
            (Availability::Available, Activity::Available)
        );
        assert_eq!(
            at(5),
            (Availability::Available, Activity::AvailableInactive)
        );
        assert_eq!(
            at(9),
            (Availability::Available, Activity::AvailableInactive)
        );
        assert_eq!(at(10), (Availability::Away, Activity::Away));
        assert_eq!(at(59), (Availability::Away, Activity::Away));
        assert_eq!(at(60), (Availability::Offline, Activity::Offline));
    }

    #[test]
    fn busy_does_not_fade() {
        let f = facts(vec![session(
            "a",
            Availability::Busy,
            Activity::InACall,
            t0(),
            min(60),
        )]);
        assert_eq!(
            aggregate(&f, t0() + min(30)),
            (Availability::Busy, Activity::InACall)
        );
    }

    #[test]
    fn default_lifetime_session_is_gone_at_expiry() {
        let f = facts(vec![session(
            "a",
            Availability::Available,
            Activity::Available,
            t0(),
            min(5),
        )]);
        assert_eq!(aggregate(&f, t0() + min(4)).0, Availability::Available);
        assert_eq!(
            aggregate(&f, t0() + min(5)),
            (Availability::Offline, Activity::Offline)
        );
    }

    #[test]
    fn highest_precedence_wins() {
        let f = facts(vec![
            session(
                "a",
                Availability::Available,
                Activity::Available,
                t0(),
                min(60),
            ),
            session("b", Availability::Busy, Activity::InACall, t0(), min(60)),
            session("c", Availability::Away, Activity::Away, t0(), min(60)),
        ]);
        assert_eq!(aggregate(&f, t0()), (Availability::Busy, Activity::InACall));
        let mut with_dnd = f.clone();
        with_dnd.sessions.push(session(
            "d",
            Availability::DoNotDisturb,
            Activity::Presenting,
            t0(),
            min(60),
        ));
        assert_eq!(
            aggregate(&with_dnd, t0()),
            (Availability::DoNotDisturb, Activity::Presenting)
        );
    }

    #[test]
    fn faded_session_counts_as_what_it_faded_to() {
        // An Available session faded to Away loses to a fresh... nothing higher: Away vs Away.
        let f = facts(vec![
            session(
                "a",
                Availability::Available,
                Activity::Available,
                t0(),
                min(60),
            ),
            session(
                "b",
                Availability::Away,
                Activity::Away,
                t0() + min(1),
                min(60),
            ),
        ]);
        assert_eq!(
            aggregate(&f, t0() + min(2)),
            (Availability::Available, Activity::Available)
        );
        assert_eq!(
            aggregate(&f, t0() + min(11)),
            (Availability::Away, Activity::Away)
        );
    }

    #[test]
    fn tie_goes_to_the_most_recently_refreshed_session() {
        let f = facts(vec![
            session("a", Availability::Busy, Activity::InACall, t0(), min(60)),
            session(
                "b",
                Availability::Busy,
                Activity::InAConferenceCall,
                t0() + min(1),
                min(60),
            ),
        ]);
        assert_eq!(
            aggregate(&f, t0() + min(2)),
            (Availability::Busy, Activity::InAConferenceCall)
        );
        let mut rev = f.clone();
        rev.sessions.reverse();
        assert_eq!(
            aggregate(&rev, t0() + min(2)),
            (Availability::Busy, Activity::InAConferenceCall)
        );
    }

    #[test]
    fn preferred_overrides_only_while_a_session_lives() {
        let mut f = facts(vec![session(
            "a",
            Availability::Available,
            Activity::Available,
            t0(),
            min(5),
        )]);
        f.preferred = Some(Preferred {
            pair: PreferredPair::new(Availability::DoNotDisturb, Activity::DoNotDisturb).unwrap(),
            set_at: t0(),
            expires_at: t0() + TimeDelta::days(1),
        });
        assert_eq!(
            aggregate(&f, t0()),
            (Availability::DoNotDisturb, Activity::DoNotDisturb)
        );
        assert_eq!(
            aggregate(&f, t0() + min(5)),
            (Availability::Offline, Activity::Offline)
        );
    }

    #[test]
    fn expired_preferred_no_longer_overrides() {
        let mut f = facts(vec![session(
            "a",
            Availability::Busy,
            Activity::InACall,
            t0(),
            min(240),
        )]);
        f.preferred = Some(Preferred {
            pair: PreferredPair::new(Availability::Offline, Activity::OffWork).unwrap(),
            set_at: t0(),
            expires_at: t0() + min(30),
        });
        assert_eq!(
            aggregate(&f, t0() + min(29)),
            (Availability::Offline, Activity::OffWork)
        );
        assert_eq!(
            aggregate(&f, t0() + min(30)),
            (Availability::Busy, Activity::InACall)
        );
    }

    #[test]
    fn status_message_disappears_at_its_expiry() {
        let f = UserFacts {
            status: Some(StatusMessage {
                content: "lunch".into(),
                expires_at: Some(t0() + min(30)),
                expiry_zone: Some("UTC".into()),
                published_at: t0(),
            }),
            ..Default::default()
        };
        assert!(effective(&f, t0() + min(29)).status.is_some());
        assert!(effective(&f, t0() + min(30)).status.is_none());
        assert_eq!(next_change(&f, t0()), Some(t0() + min(30)));
    }

    #[test]
    fn last_seen_is_now_while_a_session_lives_then_its_end() {
        let mut f = facts(vec![session(
            "a",
            Availability::Busy,
            Activity::InACall,
            t0(),
            min(5),
        )]);
        assert_eq!(last_seen(&UserFacts::default(), t0()), None);
        assert_eq!(last_seen(&f, t0() + min(1)), Some(t0() + min(1)));
        assert_eq!(last_seen(&f, t0() + min(9)), Some(t0() + min(5)));
        f.sessions.clear();
        f.last_seen = Some(t0() + min(3));
        assert_eq!(last_seen(&f, t0() + min(9)), Some(t0() + min(3)));
    }

    #[test]
    fn next_change_lists_fades_then_expiry() {
        let f = facts(vec![session(
            "a",
            Availability::Available,
            Activity::Available,
            t0(),
            min(60),
        )]);
        assert_eq!(next_change(&f, t0()), Some(t0() + min(5)));
        assert_eq!(next_change(&f, t0() + min(5)), Some(t0() + min(10)));
        assert_eq!(next_change(&f, t0() + min(10)), Some(t0() + min(60)));
        assert_eq!(next_change(&f, t0() + min(60)), None);
    }

    #[test]
    fn sequence_number_rises_with_fades_and_writes_and_holds_between() {
        let mut f = facts(vec![session(
            "a",
            Availability::Available,
            Activity::Available,
            t0(),
            min(60),
        )]);
        let s0 = effective(&f, t0()).sequence_number;
        let s1 = effective(&f, t0() + min(4)).sequence_number;
        let s2 = effective(&f, t0() + min(5)).sequence_number;
        assert_eq!(s0, s1);
        assert!(s2 > s1);
        // A second write in the same instant still sorts higher.
        f.version += 1;
        f.updated_at = Some(t0() + min(5));
        assert!(effective(&f, t0() + min(5)).sequence_number > s2);
    }

    #[test]
    fn manual_work_location_overrides_automatic() {
        use crate::domain::WorkLocationLayer;
        let mut f = UserFacts::default();
        f.work_location.automatic = Some(WorkLocationLayer {
            location_type: WorkLocationType::Office,
            place_id: Some("b1".into()),
            set_at: t0(),
        });
        assert_eq!(
            effective(&f, t0()).work_location,
            (
                WorkLocationType::Office,
                WorkLocationSource::Automatic,
                Some("b1".into())
            )
        );
        f.work_location.manual = Some(WorkLocationLayer {
            location_type: WorkLocationType::Remote,
            place_id: None,
            set_at: t0(),
        });
        assert_eq!(
            effective(&f, t0()).work_location,
            (WorkLocationType::Remote, WorkLocationSource::Manual, None)
        );
    }

    // ---- properties -------------------------------------------------------

    fn arb_session() -> impl Strategy<Value = Session> {
        (0usize..5, 0i64..120, 5i64..=240, 0u8..3).prop_map(|(pair, start, life, id)| {
            let (av, ac) = SessionPair::VALID[pair];
            session(&format!("app{id}"), av, ac, t0() + min(start), min(life))
        })
    }

    fn arb_facts() -> impl Strategy<Value = UserFacts> {
        (
            prop::collection::vec(arb_session(), 0..5),
            prop::option::of((0usize..6, 0i64..300)),
            1u64..10,
        )
            .prop_map(|(mut sessions, preferred, version)| {
                // One session per id, as the store keeps them.
                sessions.sort_by(|a, b| a.id.cmp(&b.id));
                sessions.dedup_by(|a, b| a.id == b.id);
                let last = sessions.iter().map(|s| s.last_active).max();
                UserFacts {
                    sessions,
                    preferred: preferred.map(|(p, life)| {
                        let (av, ac) = PreferredPair::VALID[p];
                        Preferred {
                            pair: PreferredPair::new(av, ac).unwrap(),
                            set_at: t0(),
                            expires_at: t0() + min(life),
                        }
                    }),
                    version,
                    updated_at: last.or(Some(t0())),
                    ..Default::default()
                }
            })
    }

    proptest! {
        #[test]
        fn offline_once_every_session_expired(f in arb_facts(), extra in 0i64..1000) {
            let end = f.sessions.iter().map(|s| s.expires_at).max().unwrap_or(t0());
            let e = aggregate(&f, end + min(extra));
            prop_assert_eq!(e, (Availability::Offline, Activity::Offline));
        }

        #[test]
        fn never_shows_an_expired_session(f in arb_facts(), at in 0i64..400) {
            let now = t0() + min(at);
            let shown = aggregate(&f, now);
            let preferred_live = f.preferred.as_ref().is_some_and(|p| now < p.expires_at);
            if !preferred_live && shown != (Availability::Offline, Activity::Offline) {
                prop_assert!(f.sessions.iter().any(|s| s.is_live(now) && s.state_at(now) == shown));
            }
        }

        #[test]
        fn aggregation_is_order_independent(f in arb_facts(), at in 0i64..400) {
            let now = t0() + min(at);
            let mut rev = f.clone();
            rev.sessions.reverse();
            prop_assert_eq!(aggregate(&f, now), aggregate(&rev, now));
        }

        #[test]
        fn a_lower_precedence_session_never_changes_the_result(f in arb_facts(), at in 0i64..400) {
            let now = t0() + min(at);
            let before = aggregate(&f, now);
            prop_assume!(f.sessions.iter().any(|s| s.is_live(now)));
            let mut more = f.clone();
            more.sessions.push(session("low", Availability::Away, Activity::Away, t0(), min(400)));
            let after = aggregate(&more, now);
            // An Away session only matters when nothing ranks above it, and
            // then only when it is the most recent Away.
            if before.0.precedence() > Availability::Away.precedence() {
                prop_assert_eq!(before, after);
            }
        }

        #[test]
        fn effective_is_constant_until_next_change(f in arb_facts(), at in 0i64..400, frac in 0.0f64..1.0) {
            let now = t0() + min(at);
            let here = effective(&f, now);
            let until = next_change(&f, now).unwrap_or(now + TimeDelta::days(3650));
            let span = (until - now).num_milliseconds();
            let probe = now + TimeDelta::milliseconds(((span - 1) as f64 * frac) as i64);
            prop_assert_eq!(effective(&f, probe), here);
        }

        #[test]
        fn sequence_number_text_is_both_halves_in_sixteen_hex_digits(version: u64, since: u64) {
            prop_assert_eq!(sequence_number(version, since), format!("{version:016X}{since:016X}"));
        }

        #[test]
        fn sequence_number_never_decreases_as_time_passes(f in arb_facts(), a in 0i64..400, b in 0i64..400) {
            // Reads happen at or after the last write.
            let base = f.updated_at.unwrap_or(t0());
            let (early, late) = (base + min(a.min(b)), base + min(a.max(b)));
            let e1 = effective(&f, early);
            let e2 = effective(&f, late);
            let (s1, s2) = (e1.sequence_number.clone(), e2.sequence_number.clone());
            prop_assert!(s1 <= s2);
            if (e1.availability, e1.activity) != (e2.availability, e2.activity) {
                prop_assert!(s1 < s2);
            }
        }
    }
}
