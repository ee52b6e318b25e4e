//! The `resource` of a presence subscription: one user, or a `$filter` list
//! of users (SPEC §7).

use std::collections::HashSet;

use uuid::Uuid;

use crate::domain::query::{decode, query_options};
use crate::domain::{parse_guid, DomainError};

/// The most distinct users one presence subscription may watch (Graph's
/// limit for `$filter=id in (…)`).
pub const MAX_SUBSCRIPTION_USERS: usize = 650;

/// The path both resource forms start with, after the optional `/`.
const PRESENCES: &str = "communications/presences";

/// A validated presence subscription resource: the text as the caller gave
/// it (Graph echoes it in the subscription and every notification) and the
/// distinct users it names, in order of first mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceResource {
    text: String,
    users: Vec<Uuid>,
}

impl PresenceResource {
    /// Parses `/communications/presences/{id}` or
    /// `/communications/presences?$filter=id in ('{id}','{id}',…)`.
    ///
    /// The leading `/` is optional and the path is matched ignoring ASCII
    /// case. The query is percent-decoded (`%24filter`, `%27`, `%20` and `+`
    /// for spaces); `$filter`, `id` and `in` are matched ignoring case, and
    /// whitespace around the parentheses and commas is tolerated. Ids are
    /// deduplicated; 1 to [`MAX_SUBSCRIPTION_USERS`] distinct GUIDs are
    /// accepted. Any other query option (`$select`, …) is refused.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let unsupported = || DomainError::UnsupportedSubscriptionResource(text.to_string());
        let rest = text.strip_prefix('/').unwrap_or(text);
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let tail = strip_prefix_ignore_case(path, PRESENCES).ok_or_else(unsupported)?;
        let users = if let Some(id) = tail.strip_prefix('/') {
            if id.is_empty() || id.contains('/') {
                return Err(unsupported());
            }
            // The single-user form takes no query options at all.
            if let Some(option) = query.and_then(|q| query_options(q).next()) {
                return Err(DomainError::UnsupportedResourceQueryOption(
                    decode(option.0).ok_or_else(unsupported)?,
                ));
            }
            vec![parse_guid(id)?]
        } else if tail.is_empty() {
            let filter = filter_of(text, query.unwrap_or(""))?;
            users_of_filter(text, &filter)?
        } else {
            return Err(unsupported());
        };
        Ok(Self {
            text: text.to_string(),
            users,
        })
    }

    /// The resource exactly as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The distinct users watched, in order of first mention (never empty).
    pub fn users(&self) -> &[Uuid] {
        &self.users
    }
}

impl TryFrom<&str> for PresenceResource {
    type Error = DomainError;

    fn try_from(text: &str) -> Result<Self, DomainError> {
        Self::parse(text)
    }
}

/// The decoded value of the one `$filter` option; any other option is
/// refused by name, a missing or repeated `$filter` as an unsupported
/// resource.
fn filter_of(resource: &str, query: &str) -> Result<String, DomainError> {
    let unsupported = || DomainError::UnsupportedSubscriptionResource(resource.to_string());
    let mut filter = None;
    for (key, value) in query_options(query) {
        let key = decode(key).ok_or_else(unsupported)?;
        if !key.eq_ignore_ascii_case("$filter") {
            return Err(DomainError::UnsupportedResourceQueryOption(key));
        }
        if filter.is_some() {
            return Err(unsupported());
        }
        filter = Some(decode(value).ok_or_else(unsupported)?);
    }
    filter.ok_or_else(unsupported)
}

/// The distinct users of `id in ('{id}', …)`.
fn users_of_filter(resource: &str, filter: &str) -> Result<Vec<Uuid>, DomainError> {
    let unsupported = || DomainError::UnsupportedSubscriptionResource(resource.to_string());
    let after_id = strip_prefix_ignore_case(filter.trim_start(), "id").ok_or_else(unsupported)?;
    let before_in = after_id.trim_start();
    if before_in.len() == after_id.len() {
        // `idin (…)`: the keyword needs a space after it.
        return Err(unsupported());
    }
    let list = strip_prefix_ignore_case(before_in, "in")
        .map(str::trim_start)
        .and_then(|s| s.strip_prefix('('))
        .map(str::trim_end)
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(unsupported)?;
    if list.trim().is_empty() {
        return Err(DomainError::NoResourceUsers);
    }
    let mut seen = HashSet::new();
    let mut users = vec![];
    for item in list.split(',') {
        let id = item
            .trim()
            .strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .ok_or_else(unsupported)?;
        let id = parse_guid(id)?;
        if seen.insert(id) {
            users.push(id);
        }
    }
    if users.len() > MAX_SUBSCRIPTION_USERS {
        return Err(DomainError::TooManyResourceUsers {
            count: users.len(),
            max: MAX_SUBSCRIPTION_USERS,
        });
    }
    Ok(users)
}

/// `text` without `prefix`, compared ignoring ASCII case.
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3";
    const B: &str = "66825e03-7ef5-42da-9069-724602c31f6b";

    fn users(text: &str) -> Vec<Uuid> {
        PresenceResource::parse(text).unwrap().users().to_vec()
    }

    fn uuid(text: &str) -> Uuid {
        Uuid::parse_str(text).unwrap()
    }

    fn unsupported(text: &str) -> DomainError {
        DomainError::UnsupportedSubscriptionResource(text.to_string())
    }

    #[test]
    fn a_single_user_resource_is_accepted_with_or_without_leading_slash() {
        for text in [
            format!("/communications/presences/{A}"),
            format!("communications/presences/{A}"),
            format!("/Communications/Presences/{}", A.to_uppercase()),
        ] {
            let resource = PresenceResource::parse(&text).unwrap();
            assert_eq!(resource.users(), [uuid(A)]);
            assert_eq!(resource.text(), text, "the text is kept as given");
        }
    }

    #[test]
    fn a_filter_resource_lists_its_users_in_order() {
        let text = format!("/communications/presences?$filter=id in ('{A}','{B}')");
        let resource = PresenceResource::try_from(text.as_str()).unwrap();
        assert_eq!(resource.users(), [uuid(A), uuid(B)]);
        assert_eq!(resource.text(), text);
    }

    #[test]
    fn a_filter_tolerates_case_whitespace_and_url_encoding() {
        for text in [
            format!("communications/presences?$FILTER=ID IN ('{A}','{B}')"),
            format!("/communications/presences?$filter= id  in(  '{A}' ,\t'{B}'  ) "),
            format!("/communications/presences?%24filter=id%20in%20(%27{A}%27,%27{B}%27)"),
            format!("/communications/presences?%24Filter=id+in+(%27{A}%27%2C+%27{B}%27)"),
            format!("/communications/presences?$filter=id in ('{A}','{B}')&"),
        ] {
            assert_eq!(users(&text), [uuid(A), uuid(B)], "{text}");
        }
    }

    #[test]
    fn repeated_ids_are_watched_once() {
        let upper = A.to_uppercase();
        let text = format!("/communications/presences?$filter=id in ('{A}','{B}','{upper}','{B}')");
        assert_eq!(users(&text), [uuid(A), uuid(B)]);
    }

    #[test]
    fn other_resources_are_refused_naming_the_supported_forms() {
        for text in [
            String::new(),
            "/me/presence".to_string(),
            format!("/users/{A}/presence"),
            "/communications/presences".to_string(),
            "/communications/presences/".to_string(),
            "/communications/presences?".to_string(),
            format!("/communications/presencesX/{A}"),
            format!("/communications/presences/{A}/x"),
            format!("//communications/presences/{A}"),
            format!(" /communications/presences/{A}"),
            format!("/communications/presences('{A}')"),
            format!("/communications/presences?$filter=id eq '{A}'"),
            format!("/communications/presences?$filter=idin ('{A}')"),
            format!("/communications/presences?$filter=id in '{A}'"),
            format!("/communications/presences?$filter=id in ('{A}'"),
            format!("/communications/presences?$filter=id in ('{A}') and x"),
            format!("/communications/presences?$filter=id in ({A})"),
            format!("/communications/presences?$filter=id in (\"{A}\")"),
            format!("/communications/presences?$filter=id in ('{A}',)"),
            format!("/communications/presences?$filter=id in ('{A}')&$filter=id in ('{B}')"),
            "/communications/presences?$filter".to_string(),
            "/communications/presences?$filter=%FF".to_string(),
        ] {
            assert_eq!(
                PresenceResource::parse(&text),
                Err(unsupported(&text)),
                "{text:?}"
            );
        }
        let msg = unsupported("/me/presence").to_string();
        assert_eq!(
            msg,
            "'/me/presence' is not a supported presence subscription resource; expected /communications/presences/{id} or /communications/presences?$filter=id in ('{id}','{id}',…) with user object-id GUIDs"
        );
    }

    #[test]
    fn a_non_guid_id_is_refused_by_name() {
        for (text, bad) in [
            (
                "/communications/presences/alice@contoso.com".to_string(),
                "alice@contoso.com",
            ),
            (
                format!("/communications/presences?$filter=id in ('{A}','bob')"),
                "bob",
            ),
            (
                format!("/communications/presences?$filter=id in (' {A}')"),
                &*format!(" {A}"),
            ),
        ] {
            assert_eq!(
                PresenceResource::parse(&text),
                Err(DomainError::InvalidGuid(bad.to_string())),
                "{text}"
            );
        }
    }

    #[test]
    fn an_empty_id_list_is_refused() {
        for text in [
            "/communications/presences?$filter=id in ()",
            "/communications/presences?$filter=id in (  )",
        ] {
            assert_eq!(
                PresenceResource::parse(text),
                Err(DomainError::NoResourceUsers)
            );
        }
        assert_eq!(
            DomainError::NoResourceUsers.to_string(),
            "The resource's $filter lists no user ids; a presence subscription watches between 1 and 650 users"
        );
    }

    fn filter_of_n(n: u128) -> String {
        let ids: Vec<String> = (1..=n)
            .map(|i| format!("'{}'", Uuid::from_u128(i)))
            .collect();
        format!(
            "/communications/presences?$filter=id in ({})",
            ids.join(",")
        )
    }

    #[test]
    fn a_resource_with_650_ids_is_accepted() {
        assert_eq!(users(&filter_of_n(650)).len(), 650);
    }

    #[test]
    fn a_resource_with_651_ids_is_refused() {
        let err = PresenceResource::parse(&filter_of_n(651)).unwrap_err();
        assert_eq!(
            err,
            DomainError::TooManyResourceUsers {
                count: 651,
                max: 650
            }
        );
        assert_eq!(
            err.to_string(),
            "The resource names 651 distinct users; a presence subscription can watch at most 650"
        );
    }

    #[test]
    fn select_and_other_query_options_are_refused_by_name() {
        for (text, option) in [
            (
                format!("/communications/presences/{A}?$select=availability"),
                "$select",
            ),
            (
                format!("/communications/presences/{A}?%24select=availability"),
                "$select",
            ),
            (
                format!("/communications/presences/{A}?$filter=id in ('{A}')"),
                "$filter",
            ),
            (
                format!("/communications/presences?$filter=id in ('{A}')&$select=activity"),
                "$select",
            ),
            (
                format!("/communications/presences?$top=5&$filter=id in ('{A}')"),
                "$top",
            ),
        ] {
            assert_eq!(
                PresenceResource::parse(&text),
                Err(DomainError::UnsupportedResourceQueryOption(
                    option.to_string()
                )),
                "{text}"
            );
        }
        assert_eq!(
            DomainError::UnsupportedResourceQueryOption("$select".to_string()).to_string(),
            "The query option '$select' is not supported in a presence subscription resource; only $filter=id in (…) on /communications/presences is"
        );
    }

    /// One way of writing the same filter.
    #[derive(Debug, Clone, Copy)]
    enum Spelling {
        Plain,
        Spaced,
        Encoded,
        FormEncoded,
    }

    fn format_filter(ids: &[Uuid], spelling: Spelling, upper: bool) -> String {
        let ids: Vec<String> = ids
            .iter()
            .map(|id| {
                let id = id.to_string();
                if upper {
                    id.to_uppercase()
                } else {
                    id
                }
            })
            .collect();
        match spelling {
            Spelling::Plain => format!(
                "/communications/presences?$filter=id in ('{}')",
                ids.join("','")
            ),
            Spelling::Spaced => format!(
                "communications/presences?$filter= id in ( '{}' ) ",
                ids.join("' , '")
            ),
            Spelling::Encoded => format!(
                "/communications/presences?%24filter=id%20in%20(%27{}%27)",
                ids.join("%27,%27")
            ),
            Spelling::FormEncoded => format!(
                "/communications/presences?%24filter=id+in+(%27{}%27)",
                ids.join("%27%2C+%27")
            ),
        }
    }

    proptest! {
        #[test]
        fn any_list_of_up_to_650_guids_parses_back_deduplicated(
            // Small values repeat often, so duplicates are exercised too.
            raw in prop::collection::vec(prop_oneof![any::<u128>(), 0u128..8], 1..=650),
            spelling in prop_oneof![
                Just(Spelling::Plain),
                Just(Spelling::Spaced),
                Just(Spelling::Encoded),
                Just(Spelling::FormEncoded),
            ],
            upper in any::<bool>(),
        ) {
            let ids: Vec<Uuid> = raw.into_iter().map(Uuid::from_u128).collect();
            let mut expected = vec![];
            for id in &ids {
                if !expected.contains(id) {
                    expected.push(*id);
                }
            }
            let text = format_filter(&ids, spelling, upper);
            let resource = PresenceResource::parse(&text).unwrap();
            prop_assert_eq!(resource.users(), expected.as_slice());
            prop_assert_eq!(resource.text(), text.as_str());
        }
    }
}
