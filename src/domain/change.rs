//! The write operations, as one pure function shared by every backend, and
//! the change detector that decides what a write or a time-driven transition
//! means for watchers (SPEC §7: notifications; §8: the event stream).

use super::effective::{effective, next_change, EffectivePresence};
use super::facts::{Preferred, Session, SessionKind, StatusMessage, UserFacts, WorkLocationLayer};
use super::DomainError;
use crate::clock::Instant;

/// One whole per-user write, in the server's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// setPresence: create or refresh the session with the same kind and id.
    UpsertSession(Session),
    /// clearPresence: remove a live session.
    RemoveSession {
        /// The session's kind.
        kind: SessionKind,
        /// The session's id.
        id: String,
    },
    /// setUserPreferredPresence.
    SetPreferred(Preferred),
    /// clearUserPreferredPresence.
    ClearPreferred,
    /// setStatusMessage; `None` clears it.
    SetStatusMessage(Option<StatusMessage>),
    /// setManualLocation.
    SetManualLocation(WorkLocationLayer),
    /// setAutomaticLocation.
    SetAutomaticLocation(WorkLocationLayer),
    /// clearLocation: removes the manual and the automatic layer.
    ClearLocation,
    /// clearAutomaticLocation: removes the automatic layer only.
    ClearAutomaticLocation,
}

/// Drops what expired before `now`, remembering when sessions ended.
fn prune(facts: &mut UserFacts, now: Instant) {
    let ended = facts
        .sessions
        .iter()
        .filter(|s| !s.is_live(now))
        .map(|s| s.expires_at)
        .max();
    facts.last_seen = facts.last_seen.max(ended);
    facts.sessions.retain(|s| s.is_live(now));
    if facts
        .preferred
        .as_ref()
        .is_some_and(|p| p.expires_at <= now)
    {
        facts.preferred = None;
    }
    if facts.status.as_ref().is_some_and(|m| !m.is_live(now)) {
        facts.status = None;
    }
}

impl Change {
    /// Applies the change to `facts` at `now`: prunes what expired, applies,
    /// bumps the version. On error `facts` is left as it was.
    pub fn apply_to(self, facts: &mut UserFacts, now: Instant) -> Result<(), DomainError> {
        let mut next = facts.clone();
        prune(&mut next, now);
        match self {
            Change::UpsertSession(session) => {
                match next
                    .sessions
                    .iter_mut()
                    .find(|s| s.kind == session.kind && s.id == session.id)
                {
                    Some(existing) => *existing = session,
                    None => next.sessions.push(session),
                }
            }
            Change::RemoveSession { kind, id } => {
                let before = next.sessions.len();
                next.sessions.retain(|s| !(s.kind == kind && s.id == id));
                if next.sessions.len() == before {
                    return Err(DomainError::NoSuchSession(id));
                }
                next.last_seen = next.last_seen.max(Some(now));
            }
            Change::SetPreferred(p) => next.preferred = Some(p),
            Change::ClearPreferred => next.preferred = None,
            Change::SetStatusMessage(m) => next.status = m,
            Change::SetManualLocation(l) => next.work_location.manual = Some(l),
            Change::SetAutomaticLocation(l) => next.work_location.automatic = Some(l),
            Change::ClearLocation => {
                next.work_location.manual = None;
                next.work_location.automatic = None;
            }
            Change::ClearAutomaticLocation => next.work_location.automatic = None,
        }
        next.version += 1;
        // Never backwards: a write that carries an earlier `now` than the
        // last one (requests overlapping) must not lower the sequence number.
        next.updated_at = Some(next.updated_at.map_or(now, |prev| prev.max(now)));
        next.settled_at = Some(next.settled_at.map_or(now, |prev| prev.max(now)));
        *facts = next;
        Ok(())
    }

    /// The facts this change leaves a user with, from `before` as a store
    /// holds them. Facts that could not be read are replaced: the change
    /// applies to empty facts, keeping the version moving forward.
    pub fn applied_to(self, before: &UserFacts, now: Instant) -> Result<UserFacts, DomainError> {
        let mut after = if before.unreadable {
            UserFacts {
                version: before.version,
                ..UserFacts::default()
            }
        } else {
            before.clone()
        };
        self.apply_to(&mut after, now)?;
        Ok(after)
    }
}

/// What watchers last saw of a user: the presence at the instant up to which
/// the user's changes have been observed (every write and every processed
/// transition moves it). A user never written reads as Offline.
pub fn shown(facts: &UserFacts) -> EffectivePresence {
    let at = facts
        .settled_at
        .or(facts.updated_at)
        .unwrap_or(chrono::DateTime::UNIX_EPOCH);
    effective(facts, at)
}

/// Processes the time-driven transitions of a user up to `at` (a fade, an
/// expiry): marks the user observed at `at`. Nothing is pruned: an expired
/// session's end is what moves `sequenceNumber` forward (SPEC §2) until the
/// next write prunes it. Returns `false`, changing nothing, when the user
/// was already observed at or after `at` (a write or another pass got
/// there first).
pub fn settle(facts: &mut UserFacts, at: Instant) -> bool {
    if facts
        .settled_at
        .or(facts.updated_at)
        .is_some_and(|t| t >= at)
    {
        return false;
    }
    facts.settled_at = Some(at);
    true
}

/// The facts a settle at `at` leaves a user with ([`settle`]), or `None`
/// when there is nothing to settle: a user never written (version 0), or
/// one already observed at or after `at`. Unreadable facts are the
/// store's to handle before this.
pub fn settled(before: &UserFacts, at: Instant) -> Option<UserFacts> {
    let mut after = before.clone();
    (before.version > 0 && settle(&mut after, at)).then_some(after)
}

/// The instant a store keeps beside a user's facts for
/// `Store::due_users`: the next transition after `now`.
pub fn due_at(facts: &UserFacts, now: Instant) -> Option<Instant> {
    next_change(facts, now)
}

/// What a change of a user's effective presence means for watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Visibility {
    /// Nothing a reader can see changed (a keep-alive, a no-op clear).
    Unchanged,
    /// The resource changed but not its availability or activity (status
    /// message, work location): an event for the stream, no webhook.
    Resource,
    /// Availability or activity changed: an event and a webhook notification.
    Presence,
}

/// Compares what watchers saw before with what they see after (SPEC §7: a
/// keep-alive that changes nothing sends nothing). The sequence number is
/// not compared: it moves with every write.
pub fn visibility(before: &EffectivePresence, after: &EffectivePresence) -> Visibility {
    if (before.availability, before.activity) != (after.availability, after.activity) {
        Visibility::Presence
    } else if before.status != after.status || before.work_location != after.work_location {
        Visibility::Resource
    } else {
        Visibility::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone, Utc};

    #[test]
    fn a_change_to_unreadable_facts_starts_from_empty_facts_at_the_next_version() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let mut before = UserFacts::default();
        Change::ClearPreferred.apply_to(&mut before, t).unwrap();
        Change::ClearPreferred.apply_to(&mut before, t).unwrap();
        let readable = Change::ClearPreferred.applied_to(&before, t).unwrap();
        assert_eq!(readable.version, 3);
        let unreadable = UserFacts {
            unreadable: true,
            updated_at: Some(t - TimeDelta::hours(1)),
            ..before.clone()
        };
        let after = Change::ClearPreferred.applied_to(&unreadable, t).unwrap();
        assert_eq!(after.version, 3);
        assert!(!after.unreadable);
        assert_eq!(after.updated_at, Some(t));
    }

    #[test]
    fn settled_is_none_for_a_user_never_written_or_already_observed() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        assert_eq!(settled(&UserFacts::default(), t), None);
        let mut facts = UserFacts::default();
        Change::ClearPreferred.apply_to(&mut facts, t).unwrap();
        assert_eq!(settled(&facts, t), None, "observed at t by the write");
        let later = t + TimeDelta::minutes(5);
        let after = settled(&facts, later).unwrap();
        assert_eq!(after.settled_at, Some(later));
        assert_eq!(after.version, facts.version);
    }

    #[test]
    fn a_write_stamped_earlier_than_the_last_never_moves_updated_at_back() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let mut facts = UserFacts::default();
        Change::ClearPreferred.apply_to(&mut facts, t).unwrap();
        Change::ClearPreferred
            .apply_to(&mut facts, t - TimeDelta::minutes(1))
            .unwrap();
        assert_eq!(facts.updated_at, Some(t));
        assert_eq!(facts.version, 2);
    }

    #[test]
    fn a_settled_expiry_moves_the_sequence_number_forward() {
        use crate::domain::{Activity, Availability, Session, SessionKind, SessionPair};
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let mut facts = UserFacts::default();
        Change::UpsertSession(Session {
            kind: SessionKind::Application,
            id: "a".into(),
            pair: SessionPair::new(Availability::Busy, Activity::InACall).unwrap(),
            last_active: t,
            expires_at: t + TimeDelta::minutes(5),
        })
        .apply_to(&mut facts, t)
        .unwrap();
        let before = shown(&facts);
        assert!(settle(&mut facts, t + TimeDelta::minutes(5)));
        let after = shown(&facts);
        assert_eq!(visibility(&before, &after), Visibility::Presence);
        assert!(
            after.sequence_number > before.sequence_number,
            "{} then {}",
            before.sequence_number,
            after.sequence_number
        );
        assert!(
            !settle(&mut facts, t + TimeDelta::minutes(5)),
            "already settled"
        );
    }

    #[test]
    fn the_change_detector_separates_presence_resource_and_nothing() {
        use crate::domain::{StatusMessage, WorkLocationLayer, WorkLocationType};
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let base = UserFacts::default();
        let mut status = base.clone();
        Change::SetStatusMessage(Some(StatusMessage {
            content: "hi".into(),
            expires_at: None,
            expiry_zone: None,
            published_at: t,
        }))
        .apply_to(&mut status, t)
        .unwrap();
        assert_eq!(
            visibility(&shown(&base), &shown(&status)),
            Visibility::Resource
        );
        let mut location = base.clone();
        Change::SetManualLocation(WorkLocationLayer {
            location_type: WorkLocationType::Office,
            place_id: None,
            set_at: t,
        })
        .apply_to(&mut location, t)
        .unwrap();
        assert_eq!(
            visibility(&shown(&base), &shown(&location)),
            Visibility::Resource
        );
        let mut cleared = base.clone();
        Change::ClearPreferred.apply_to(&mut cleared, t).unwrap();
        assert_eq!(
            visibility(&shown(&base), &shown(&cleared)),
            Visibility::Unchanged,
            "a write that changes nothing a reader sees"
        );
    }

    #[test]
    fn pruning_and_removing_sessions_remember_when_the_user_was_last_seen() {
        use crate::domain::{Activity, Availability, Session, SessionKind, SessionPair};
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let session = |id: &str, at| Session {
            kind: SessionKind::Application,
            id: id.into(),
            pair: SessionPair::new(Availability::Busy, Activity::InACall).unwrap(),
            last_active: at,
            expires_at: at + TimeDelta::minutes(5),
        };
        let mut facts = UserFacts::default();
        Change::UpsertSession(session("a", t))
            .apply_to(&mut facts, t)
            .unwrap();
        Change::ClearPreferred
            .apply_to(&mut facts, t + TimeDelta::hours(1))
            .unwrap();
        assert!(facts.sessions.is_empty());
        assert_eq!(facts.last_seen, Some(t + TimeDelta::minutes(5)));
        let later = t + TimeDelta::hours(2);
        Change::UpsertSession(session("b", later))
            .apply_to(&mut facts, later)
            .unwrap();
        let remove = Change::RemoveSession {
            kind: SessionKind::Application,
            id: "b".into(),
        };
        remove
            .apply_to(&mut facts, later + TimeDelta::minutes(1))
            .unwrap();
        assert_eq!(facts.last_seen, Some(later + TimeDelta::minutes(1)));
    }
}
