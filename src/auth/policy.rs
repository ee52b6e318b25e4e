//! The permission table (SPEC §3, permission column; SPEC §8 for admin).

use uuid::Uuid;

use super::{AuthError, Principal, PrincipalKind};

const READ: &str = "Presence.Read";
const READ_ALL: &str = "Presence.Read.All";
const READ_WRITE: &str = "Presence.ReadWrite";
const READ_WRITE_ALL: &str = "Presence.ReadWrite.All";
/// The application role that unlocks `/_presenced/…` admin endpoints.
const ADMIN: &str = "Presenced.Admin";

/// The delegated scopes the permission table grants anything for (`scp`).
pub const KNOWN_SCOPES: [&str; 4] = [READ, READ_ALL, READ_WRITE, READ_WRITE_ALL];

/// The application roles the permission table grants anything for (`roles`).
pub const KNOWN_ROLES: [&str; 3] = [READ_ALL, READ_WRITE_ALL, ADMIN];

/// The names in `names` that `known` does not hold (compared as
/// [`Principal::has_scope`] and [`Principal::has_role`] do, ignoring ASCII
/// case): a token carrying them is granted nothing for them, so
/// `presenced token` warns about them (a typo such as
/// `Presence.ReadWrite.Al` would otherwise surface only as a 403 later).
pub fn unknown_permissions<'a>(names: &[&'a str], known: &[&str]) -> Vec<&'a str> {
    names
        .iter()
        .copied()
        .filter(|name| !known.iter().any(|k| k.eq_ignore_ascii_case(name)))
        .collect()
}

/// What a request wants to do, as far as permissions are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Get one user's presence.
    Read,
    /// Get many users' presences (`getPresencesByUserId`).
    ReadMany,
    /// Change one user's presence, preferred presence or status message.
    Write,
    /// Set or clear one user's work location (delegated only).
    WriteLocation,
    /// Use the presenced admin endpoints (SPEC §8).
    Admin,
    /// Create a presence subscription or read the event stream of many
    /// users (SPEC §7, §8). Graph's extra rule for application tokens is
    /// applied by `notify`.
    Subscribe,
}

/// Decides whether `principal` may perform `op` on `subject` (the target
/// user; for ReadMany pass None and it checks only the permission).
///
/// For `Read`, `Write` and `WriteLocation` a `None` subject is treated as
/// "not the caller", the stricter reading. Tenancy is not checked here: data
/// is partitioned by the principal's tenant elsewhere. Refusals are
/// [`AuthError::Forbidden`] with a sentence naming the missing permission.
pub fn authorize(
    principal: &Principal,
    op: Operation,
    subject: Option<Uuid>,
) -> Result<(), AuthError> {
    match principal.kind {
        PrincipalKind::Delegated { user } => {
            let is_self = subject == Some(user);
            match op {
                Operation::Read if is_self => {
                    need_scope(principal, &[READ, READ_ALL, READ_WRITE, READ_WRITE_ALL])
                }
                Operation::Read | Operation::ReadMany | Operation::Subscribe => {
                    need_scope(principal, &[READ_ALL, READ_WRITE_ALL])
                }
                Operation::Write | Operation::WriteLocation if !is_self => Err(
                    AuthError::Forbidden(
                        "A delegated token may only change its own user's presence.".to_owned(),
                    ),
                ),
                Operation::Write | Operation::WriteLocation => {
                    need_scope(principal, &[READ_WRITE, READ_WRITE_ALL])
                }
                Operation::Admin => Err(AuthError::Forbidden(format!(
                    "Missing role: this operation requires an application token with the {ADMIN} role."
                ))),
            }
        }
        PrincipalKind::Application => match op {
            Operation::Read | Operation::ReadMany | Operation::Subscribe => {
                need_role(principal, &[READ_ALL, READ_WRITE_ALL])
            }
            Operation::Write => need_role(principal, &[READ_WRITE_ALL]),
            Operation::WriteLocation => Err(AuthError::Forbidden(
                "Work location actions are not supported with application permissions.".to_owned(),
            )),
            Operation::Admin => need_role(principal, &[ADMIN]),
        },
    }
}

fn need_scope(principal: &Principal, any_of: &[&str]) -> Result<(), AuthError> {
    if any_of.iter().any(|s| principal.has_scope(s)) {
        Ok(())
    } else {
        Err(AuthError::Forbidden(format!(
            "Missing scope: this operation requires {}.",
            alternatives(any_of)
        )))
    }
}

fn need_role(principal: &Principal, any_of: &[&str]) -> Result<(), AuthError> {
    if any_of.iter().any(|r| principal.has_role(r)) {
        Ok(())
    } else {
        Err(AuthError::Forbidden(format!(
            "Missing role: this operation requires the application permission {}.",
            alternatives(any_of)
        )))
    }
}

/// "A", "A or B", "A, B or C".
fn alternatives(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_permissions_are_the_names_the_table_does_not_know() {
        assert_eq!(
            unknown_permissions(
                &[
                    "Presence.ReadWrite.Al",
                    "presence.read",
                    "Presence.ReadWrite"
                ],
                &KNOWN_SCOPES
            ),
            vec!["Presence.ReadWrite.Al"]
        );
        assert_eq!(
            unknown_permissions(&["Presence.Read", "Presenced.Admin"], &KNOWN_ROLES),
            vec!["Presence.Read"],
            "Presence.Read is a delegated scope, no application role"
        );
        assert!(unknown_permissions(&[], &KNOWN_ROLES).is_empty());
    }

    const ME: Uuid = Uuid::from_u128(0xa);
    const OTHER: Uuid = Uuid::from_u128(0xb);

    fn delegated(scopes: &str) -> Principal {
        Principal {
            tenant: Uuid::from_u128(1),
            app_id: "app".into(),
            kind: PrincipalKind::Delegated { user: ME },
            scopes: scopes.split_whitespace().map(str::to_owned).collect(),
            // Roles on a delegated token must not grant anything.
            roles: vec![READ_WRITE_ALL.into(), ADMIN.into()],
        }
    }

    fn application(roles: &str) -> Principal {
        Principal {
            tenant: Uuid::from_u128(1),
            app_id: "app".into(),
            kind: PrincipalKind::Application,
            scopes: Vec::new(),
            roles: roles.split_whitespace().map(str::to_owned).collect(),
        }
    }

    #[derive(Clone, Copy)]
    enum Who {
        Me,
        Other,
        Nobody,
    }

    /// `None` = allowed; `Some(text)` = Forbidden whose message contains it.
    type Expect = Option<&'static str>;
    const OK: Expect = None;
    const NEED_READ_ALL: Expect = Some("requires Presence.Read.All or Presence.ReadWrite.All.");
    const NEED_ANY_READ: Expect = Some(
        "requires Presence.Read, Presence.Read.All, Presence.ReadWrite or Presence.ReadWrite.All.",
    );
    const NEED_RW: Expect = Some("requires Presence.ReadWrite or Presence.ReadWrite.All.");
    const ONLY_OWN: Expect = Some("may only change its own user's presence");
    const NEED_ADMIN: Expect = Some("Presenced.Admin role");
    const NEED_ROLE_READ: Expect =
        Some("application permission Presence.Read.All or Presence.ReadWrite.All.");
    const NEED_ROLE_RW: Expect = Some("application permission Presence.ReadWrite.All.");
    const NEED_ROLE_ADMIN: Expect = Some("application permission Presenced.Admin.");
    const NO_APP_LOCATION: Expect = Some("not supported with application permissions");

    #[test]
    fn permission_table() {
        use Operation::*;
        use Who::*;
        #[rustfmt::skip]
        let rows: Vec<(&str, Principal, Operation, Who, Expect)> = vec![
            // ---- delegated, Presence.Read
            ("d read", delegated("Presence.Read"), Read, Me, OK),
            ("d read", delegated("Presence.Read"), Read, Other, NEED_READ_ALL),
            ("d read", delegated("Presence.Read"), Read, Nobody, NEED_READ_ALL),
            ("d read", delegated("Presence.Read"), ReadMany, Nobody, NEED_READ_ALL),
            ("d read", delegated("Presence.Read"), Write, Me, NEED_RW),
            ("d read", delegated("Presence.Read"), Write, Other, ONLY_OWN),
            ("d read", delegated("Presence.Read"), WriteLocation, Me, NEED_RW),
            ("d read", delegated("Presence.Read"), WriteLocation, Other, ONLY_OWN),
            ("d read", delegated("Presence.Read"), Admin, Me, NEED_ADMIN),
            // ---- delegated, Presence.Read.All (lower case: names ignore case)
            ("d read.all", delegated("presence.read.all"), Read, Me, OK),
            ("d read.all", delegated("presence.read.all"), Read, Other, OK),
            ("d read.all", delegated("presence.read.all"), ReadMany, Nobody, OK),
            ("d read.all", delegated("presence.read.all"), Write, Me, NEED_RW),
            ("d read.all", delegated("presence.read.all"), Write, Other, ONLY_OWN),
            ("d read.all", delegated("presence.read.all"), WriteLocation, Me, NEED_RW),
            ("d read.all", delegated("presence.read.all"), Admin, Nobody, NEED_ADMIN),
            // ---- delegated, Presence.ReadWrite
            ("d rw", delegated("Presence.ReadWrite"), Read, Me, OK),
            ("d rw", delegated("Presence.ReadWrite"), Read, Other, NEED_READ_ALL),
            ("d rw", delegated("Presence.ReadWrite"), ReadMany, Nobody, NEED_READ_ALL),
            ("d rw", delegated("Presence.ReadWrite"), Write, Me, OK),
            ("d rw", delegated("Presence.ReadWrite"), Write, Other, ONLY_OWN),
            ("d rw", delegated("Presence.ReadWrite"), Write, Nobody, ONLY_OWN),
            ("d rw", delegated("Presence.ReadWrite"), WriteLocation, Me, OK),
            ("d rw", delegated("Presence.ReadWrite"), WriteLocation, Other, ONLY_OWN),
            ("d rw", delegated("Presence.ReadWrite"), Admin, Me, NEED_ADMIN),
            // ---- delegated, Presence.ReadWrite.All
            ("d rw.all", delegated("Presence.ReadWrite.All"), Read, Me, OK),
            ("d rw.all", delegated("Presence.ReadWrite.All"), Read, Other, OK),
            ("d rw.all", delegated("Presence.ReadWrite.All"), ReadMany, Nobody, OK),
            ("d rw.all", delegated("Presence.ReadWrite.All"), Write, Me, OK),
            ("d rw.all", delegated("Presence.ReadWrite.All"), Write, Other, ONLY_OWN),
            ("d rw.all", delegated("Presence.ReadWrite.All"), WriteLocation, Me, OK),
            ("d rw.all", delegated("Presence.ReadWrite.All"), WriteLocation, Other, ONLY_OWN),
            ("d rw.all", delegated("Presence.ReadWrite.All"), Admin, Me, NEED_ADMIN),
            // ---- delegated, unrelated scope only
            ("d none", delegated("User.Read"), Read, Me, NEED_ANY_READ),
            ("d none", delegated("User.Read"), Read, Other, NEED_READ_ALL),
            ("d none", delegated("User.Read"), ReadMany, Nobody, NEED_READ_ALL),
            ("d none", delegated("User.Read"), Write, Me, NEED_RW),
            ("d none", delegated("User.Read"), WriteLocation, Me, NEED_RW),
            // ---- application, Presence.Read.All
            ("a read.all", application("Presence.Read.All"), Read, Other, OK),
            ("a read.all", application("Presence.Read.All"), Read, Nobody, OK),
            ("a read.all", application("Presence.Read.All"), ReadMany, Nobody, OK),
            ("a read.all", application("Presence.Read.All"), Write, Other, NEED_ROLE_RW),
            ("a read.all", application("Presence.Read.All"), WriteLocation, Other, NO_APP_LOCATION),
            ("a read.all", application("Presence.Read.All"), Admin, Nobody, NEED_ROLE_ADMIN),
            // ---- application, Presence.ReadWrite.All
            ("a rw.all", application("PRESENCE.READWRITE.ALL"), Read, Other, OK),
            ("a rw.all", application("PRESENCE.READWRITE.ALL"), ReadMany, Nobody, OK),
            ("a rw.all", application("PRESENCE.READWRITE.ALL"), Write, Other, OK),
            ("a rw.all", application("PRESENCE.READWRITE.ALL"), Write, Nobody, OK),
            ("a rw.all", application("PRESENCE.READWRITE.ALL"), WriteLocation, Other, NO_APP_LOCATION),
            ("a rw.all", application("PRESENCE.READWRITE.ALL"), Admin, Nobody, NEED_ROLE_ADMIN),
            // ---- application, Presenced.Admin only
            ("a admin", application("Presenced.Admin"), Admin, Nobody, OK),
            ("a admin", application("Presenced.Admin"), Read, Other, NEED_ROLE_READ),
            ("a admin", application("Presenced.Admin"), ReadMany, Nobody, NEED_ROLE_READ),
            ("a admin", application("Presenced.Admin"), Write, Other, NEED_ROLE_RW),
            // ---- application, no roles
            ("a none", application(""), Read, Other, NEED_ROLE_READ),
            ("a none", application(""), ReadMany, Nobody, NEED_ROLE_READ),
            ("a none", application(""), Write, Other, NEED_ROLE_RW),
            ("a none", application(""), WriteLocation, Other, NO_APP_LOCATION),
            ("a none", application(""), Admin, Nobody, NEED_ROLE_ADMIN),
        ];
        for (name, principal, op, who, expect) in rows {
            let subject = match who {
                Me => Some(ME),
                Other => Some(OTHER),
                Nobody => None,
            };
            let got = authorize(&principal, op, subject);
            match (expect, got) {
                (None, Ok(())) => {}
                (Some(text), Err(AuthError::Forbidden(msg))) => assert!(
                    msg.contains(text),
                    "{name} {op:?}: message {msg:?} lacks {text:?}"
                ),
                (expect, got) => panic!("{name} {op:?}: expected {expect:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn alternatives_reads_as_a_sentence() {
        assert_eq!(alternatives(&["A"]), "A");
        assert_eq!(alternatives(&["A", "B"]), "A or B");
        assert_eq!(alternatives(&["A", "B", "C"]), "A, B or C");
    }
}
