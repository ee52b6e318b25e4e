//! Tenant and user identifiers.

use uuid::Uuid;

use super::DomainError;

/// Parses an object-id GUID strictly (hyphenated, 36 characters, either case).
///
/// SPEC §1: a path id that is not a GUID is a 400; user principal names are
/// not accepted.
pub fn parse_guid(text: &str) -> Result<Uuid, DomainError> {
    if text.len() != 36 {
        return Err(DomainError::InvalidGuid(text.to_string()));
    }
    Uuid::try_parse(text).map_err(|_| DomainError::InvalidGuid(text.to_string()))
}

/// The partition key of every stored fact: a user within a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey {
    /// The tenant (`tid`).
    pub tenant: Uuid,
    /// The user's object id.
    pub user: Uuid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hyphenated_guids_in_either_case() {
        let lower = parse_guid("fa8bf3dc-eca7-46b7-bad1-db199b62afc3").unwrap();
        let upper = parse_guid("FA8BF3DC-ECA7-46B7-BAD1-DB199B62AFC3").unwrap();
        assert_eq!(lower, upper);
    }

    #[test]
    fn rejects_upns_braces_and_simple_form() {
        for bad in [
            "alice@contoso.com",
            "{fa8bf3dc-eca7-46b7-bad1-db199b62afc3}",
            "fa8bf3dceca746b7bad1db199b62afc3",
            "",
            "fa8bf3dc-eca7-46b7-bad1-db199b62afcz",
        ] {
            assert_eq!(
                parse_guid(bad),
                Err(DomainError::InvalidGuid(bad.to_string())),
                "{bad}"
            );
        }
    }
}
