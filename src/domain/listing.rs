//! The query of the users listing, `GET /_presenced/users` (SPEC §8):
//! `$top`, `$filter` on availability and `$skiptoken`, validated as one
//! `TryFrom<&str>` with a [`DomainError`] per broken rule.

use uuid::Uuid;

use super::query::{decode, query_options};
use super::vocab::Availability;
use super::DomainError;

/// How many users a page holds when `$top` is not given.
pub const DEFAULT_USERS_PAGE: usize = 100;
/// The largest `$top` the listing accepts.
pub const MAX_USERS_PAGE: usize = 999;

/// A validated users-listing query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersQuery {
    /// The page size: 1 to [`MAX_USERS_PAGE`].
    pub top: usize,
    /// Only users whose effective availability is one of these; `None` for
    /// every user.
    pub availability: Option<Vec<Availability>>,
    /// Continue after this user id (from a previous page's nextLink).
    pub after: Option<Uuid>,
}

impl Default for UsersQuery {
    fn default() -> Self {
        UsersQuery {
            top: DEFAULT_USERS_PAGE,
            availability: None,
            after: None,
        }
    }
}

impl UsersQuery {
    /// Whether a user with this effective availability belongs in the
    /// answer.
    pub fn admits(&self, availability: Availability) -> bool {
        self.availability
            .as_ref()
            .is_none_or(|wanted| wanted.contains(&availability))
    }
}

impl TryFrom<&str> for UsersQuery {
    type Error = DomainError;

    /// Parses the raw (still percent-encoded) query string.
    fn try_from(query: &str) -> Result<Self, DomainError> {
        let mut parsed = UsersQuery::default();
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in query_options(query) {
            let key = decode(key).unwrap_or_else(|| key.to_owned());
            let value = decode(value).unwrap_or_else(|| value.to_owned());
            if !key.starts_with('$') {
                continue;
            }
            let option = key.to_ascii_lowercase();
            if seen.contains(&option) {
                return Err(DomainError::RepeatedQueryOption(key));
            }
            seen.push(option.clone());
            match option.as_str() {
                "$top" => parsed.top = parse_top(&value)?,
                "$filter" => parsed.availability = Some(parse_filter(&value)?),
                "$skiptoken" => {
                    parsed.after = Some(
                        Uuid::try_parse(value.trim())
                            .map_err(|_| DomainError::InvalidSkipToken(value.clone()))?,
                    )
                }
                _ => return Err(DomainError::UnsupportedUsersQueryOption(key)),
            }
        }
        Ok(parsed)
    }
}

/// `$top`: a whole number from 1 to [`MAX_USERS_PAGE`].
fn parse_top(value: &str) -> Result<usize, DomainError> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_USERS_PAGE).contains(n))
        .ok_or_else(|| DomainError::InvalidTop(value.to_owned(), MAX_USERS_PAGE))
}

/// `$filter`: `availability eq 'X'`, or `availability in ('X','Y',…)`;
/// values ignore case like every vocabulary value (SPEC §1). An unknown
/// value is the same error as a malformed filter: the message lists what
/// is accepted.
fn parse_filter(value: &str) -> Result<Vec<Availability>, DomainError> {
    let refuse = || DomainError::InvalidUsersFilter(value.to_owned());
    let text = value.trim();
    let rest = strip_word(text, "availability").ok_or_else(refuse)?;
    let names: Vec<&str> = if let Some(literal) = strip_word(rest, "eq") {
        vec![quoted(literal).ok_or_else(refuse)?]
    } else if let Some(list) = strip_word(rest, "in") {
        let inner = list
            .trim()
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(refuse)?;
        inner
            .split(',')
            .map(|item| quoted(item).ok_or_else(refuse))
            .collect::<Result<_, _>>()?
    } else {
        return Err(refuse());
    };
    names
        .into_iter()
        .map(|name| Availability::parse(name).ok_or_else(refuse))
        .collect()
}

/// `text` without a leading `word` (ignoring ASCII case) that is not
/// followed by another letter or digit; `None` if it does not start so.
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let text = text.trim_start();
    let head = text.get(..word.len())?;
    let rest = text.get(word.len()..)?;
    let ends = !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_');
    (head.eq_ignore_ascii_case(word) && ends && !rest.is_empty()).then_some(rest)
}

/// The content of a single-quoted OData string literal.
fn quoted(text: &str) -> Option<&str> {
    text.trim()
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .filter(|t| !t.contains('\''))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<UsersQuery, DomainError> {
        UsersQuery::try_from(q)
    }

    #[test]
    fn an_empty_query_is_the_default_page() {
        assert_eq!(parse(""), Ok(UsersQuery::default()));
        assert_eq!(parse("").map(|q| q.top), Ok(DEFAULT_USERS_PAGE));
    }

    #[test]
    fn top_takes_one_to_the_maximum() {
        assert_eq!(parse("$top=1").map(|q| q.top), Ok(1));
        assert_eq!(parse("%24top=999").map(|q| q.top), Ok(999));
        for bad in ["0", "1000", "-1", "ten", ""] {
            assert_eq!(
                parse(&format!("$top={bad}")),
                Err(DomainError::InvalidTop(bad.into(), MAX_USERS_PAGE)),
                "{bad}"
            );
        }
    }

    #[test]
    fn filter_takes_eq_and_in_on_availability_ignoring_case() {
        assert_eq!(
            parse("$filter=availability+eq+'busy'").map(|q| q.availability),
            Ok(Some(vec![Availability::Busy]))
        );
        assert_eq!(
            parse("$filter=Availability%20in%20('Away',%20'Offline')").map(|q| q.availability),
            Ok(Some(vec![Availability::Away, Availability::Offline]))
        );
        assert_eq!(
            parse("$filter=availability in('Away')").map(|q| q.availability),
            Ok(Some(vec![Availability::Away]))
        );
    }

    #[test]
    fn filter_refuses_other_shapes_and_unknown_values() {
        for bad in [
            "activity eq 'Busy'",
            "availability ne 'Busy'",
            "availability eq Busy",
            "availability in 'Busy'",
            "availabilityeq 'Busy'",
            "availability eq 'Bu'sy'",
        ] {
            assert_eq!(
                parse(&format!("$filter={bad}")),
                Err(DomainError::InvalidUsersFilter(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            parse("$filter=availability eq 'Sleeping'"),
            Err(DomainError::InvalidUsersFilter(
                "availability eq 'Sleeping'".into()
            ))
        );
    }

    #[test]
    fn skiptoken_is_a_user_id() {
        let id = Uuid::from_u128(7);
        assert_eq!(
            parse(&format!("$skiptoken={id}")).map(|q| q.after),
            Ok(Some(id))
        );
        assert_eq!(
            parse("$skiptoken=abc"),
            Err(DomainError::InvalidSkipToken("abc".into()))
        );
    }

    #[test]
    fn other_options_are_refused_and_plain_parameters_ignored() {
        assert_eq!(
            parse("$orderby=id"),
            Err(DomainError::UnsupportedUsersQueryOption("$orderby".into()))
        );
        assert_eq!(
            parse("$top=2&$TOP=3"),
            Err(DomainError::RepeatedQueryOption("$TOP".into()))
        );
        assert_eq!(parse("cachebuster=1"), Ok(UsersQuery::default()));
    }

    #[test]
    fn admits_every_availability_without_a_filter() {
        let all = UsersQuery::default();
        assert!(Availability::ALL.iter().all(|a| all.admits(*a)));
        let busy = parse("$filter=availability eq 'Busy'").unwrap_or_default();
        assert!(busy.admits(Availability::Busy));
        assert!(!busy.admits(Availability::Available));
    }
}
