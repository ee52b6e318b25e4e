//! OData query options on presence reads (SPEC §2): `$select` picks
//! properties; every other system query option (`$filter`, `$expand`,
//! `$top`, …) is refused rather than silently ignored, as Graph does.
//! Options without a `$` are not OData's and are ignored.

use super::query::{decode, query_options};
use super::DomainError;

/// A property of the presence resource, as `$select` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceProperty {
    /// `id` (always returned).
    Id,
    /// `availability`.
    Availability,
    /// `activity`.
    Activity,
    /// `sequenceNumber`.
    SequenceNumber,
    /// `outOfOfficeSettings`.
    OutOfOfficeSettings,
    /// `statusMessage`.
    StatusMessage,
    /// `workLocation`.
    WorkLocation,
}

impl PresenceProperty {
    /// Every property, in the order the resource renders them.
    pub const ALL: [PresenceProperty; 7] = [
        PresenceProperty::Id,
        PresenceProperty::Availability,
        PresenceProperty::Activity,
        PresenceProperty::SequenceNumber,
        PresenceProperty::OutOfOfficeSettings,
        PresenceProperty::StatusMessage,
        PresenceProperty::WorkLocation,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            PresenceProperty::Id => "id",
            PresenceProperty::Availability => "availability",
            PresenceProperty::Activity => "activity",
            PresenceProperty::SequenceNumber => "sequenceNumber",
            PresenceProperty::OutOfOfficeSettings => "outOfOfficeSettings",
            PresenceProperty::StatusMessage => "statusMessage",
            PresenceProperty::WorkLocation => "workLocation",
        }
    }

    /// The property a `$select` item names, ignoring ASCII case as Graph does.
    fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(text))
    }
}

/// The OData query options of a presence read, checked: which properties to
/// return. `None` means all (no `$select`, an empty one, or `*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceQuery {
    select: Option<Vec<PresenceProperty>>,
}

impl PresenceQuery {
    /// The selected properties (with `id`, in rendering order), or `None`
    /// for all of them.
    pub fn selected(&self) -> Option<&[PresenceProperty]> {
        self.select.as_deref()
    }
}

impl TryFrom<&str> for PresenceQuery {
    type Error = DomainError;

    /// Parses a raw (still percent-encoded) query string such as
    /// `$select=availability,activity`. Option names are matched ignoring
    /// case (`$SELECT`, `%24select`).
    fn try_from(query: &str) -> Result<Self, DomainError> {
        let mut select: Option<Vec<PresenceProperty>> = None;
        let mut seen_select = false;
        for (key, value) in query_options(query) {
            let key = decode(key).unwrap_or_else(|| key.to_string());
            if !key.starts_with('$') {
                continue;
            }
            if !key.eq_ignore_ascii_case("$select") {
                return Err(DomainError::UnsupportedQueryOption(key));
            }
            if seen_select {
                return Err(DomainError::RepeatedQueryOption(key));
            }
            seen_select = true;
            let value = decode(value).unwrap_or_else(|| value.to_string());
            let mut wanted = vec![PresenceProperty::Id];
            let mut all = false;
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if item == "*" {
                    all = true;
                    continue;
                }
                let property = PresenceProperty::parse(item)
                    .ok_or_else(|| DomainError::UnknownPresenceProperty(item.to_string()))?;
                wanted.push(property);
            }
            if !all && wanted.len() > 1 {
                select = Some(
                    PresenceProperty::ALL
                        .into_iter()
                        .filter(|p| wanted.contains(p))
                        .collect(),
                );
            }
        }
        Ok(PresenceQuery { select })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PresenceProperty::*;

    fn parse(query: &str) -> Result<PresenceQuery, DomainError> {
        PresenceQuery::try_from(query)
    }

    #[test]
    fn no_query_or_an_empty_or_star_select_means_every_property() {
        for query in [
            "",
            "$select=",
            "$select=*",
            "$select=*,availability",
            "foo=bar",
        ] {
            assert_eq!(parse(query).unwrap().selected(), None, "{query}");
        }
    }

    #[test]
    fn select_returns_the_named_properties_plus_id_in_resource_order() {
        let q = parse("$select=activity,availability").unwrap();
        assert_eq!(q.selected(), Some(&[Id, Availability, Activity][..]));
        let q = parse("%24SELECT=StatusMessage%2C%20workLocation").unwrap();
        assert_eq!(q.selected(), Some(&[Id, StatusMessage, WorkLocation][..]));
        let q = parse("$select=id").unwrap();
        assert_eq!(q.selected(), Some(&[Id][..]));
    }

    #[test]
    fn an_unknown_property_is_refused_by_name() {
        let err = parse("$select=availability,mood").unwrap_err();
        assert_eq!(
            err,
            DomainError::UnknownPresenceProperty("mood".to_string())
        );
        assert_eq!(
            err.to_string(),
            "Could not find a property named 'mood' on type 'microsoft.graph.presence'."
        );
        assert!(parse("$select=statusMessage/message").is_err());
    }

    #[test]
    fn other_odata_options_are_refused_by_name() {
        for option in [
            "$filter",
            "$expand",
            "$orderby",
            "$top",
            "$skip",
            "$count",
            "$search",
            "$format",
            "$skiptoken",
        ] {
            let err = parse(&format!("{option}=x")).unwrap_err();
            assert_eq!(err, DomainError::UnsupportedQueryOption(option.to_string()));
        }
        assert!(parse("%24filter=x").is_err());
        assert_eq!(
            DomainError::UnsupportedQueryOption("$top".to_string()).to_string(),
            "Query option '$top' is not supported on presence; only $select is."
        );
    }

    #[test]
    fn a_repeated_select_is_refused() {
        assert_eq!(
            parse("$select=activity&$select=availability").unwrap_err(),
            DomainError::RepeatedQueryOption("$select".to_string())
        );
    }
}
