//! The parameters operations share: the Graph version, a GUID `{id}`,
//! `$select` on presence reads, and the users listing's query options.

use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required};

use crate::domain::PresenceProperty;

pub(super) fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String)
}

pub(super) fn path_param(name: &str, description: &str, schema: ObjectBuilder) -> Parameter {
    Parameter::builder()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// The `{id}` path parameter: a GUID.
pub(super) fn id_param(description: &str) -> Parameter {
    path_param(
        "id",
        description,
        string_schema().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Uuid,
        ))),
    )
}

pub(super) fn version_param() -> Parameter {
    path_param(
        "version",
        "The Graph API version; both answer alike.",
        string_schema().enum_values(Some(["v1.0", "beta"])),
    )
}

/// The `$select` query option of presence reads (SPEC §2).
pub(super) fn select_param() -> Parameter {
    let name = PresenceProperty::ALL
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join("|");
    Parameter::builder()
        .name("$select")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(
            "Comma-separated presence properties to return (plus id); an unknown property is a 400. Other OData options ($filter, $top, …) are refused with 400.",
        ))
        .schema(Some(
            string_schema().pattern(Some(format!("^(\\*|({name})(,({name}))*)?$"))),
        ))
        .build()
}

pub(super) fn user_param() -> Parameter {
    id_param("The user's id.")
}

/// The users listing's query options.
pub(super) fn users_params() -> Vec<Parameter> {
    let string = || ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String);
    vec![
        Parameter::builder()
            .name("$top")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("Users per page [default: 100]."))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(crate::domain::MAX_USERS_PAGE as u64)),
            ))
            .build(),
        Parameter::builder()
            .name("$filter")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(
                "availability eq 'Busy', or availability in ('Busy','Away').",
            ))
            .schema(Some(string().pattern(Some(
                r"^\s*[Aa][Vv][Aa][Ii][Ll][Aa][Bb][Ii][Ll][Ii][Tt][Yy]\s+([Ee][Qq]\s+'[A-Za-z]+'|[Ii][Nn]\s*\(\s*'[A-Za-z]+'(\s*,\s*'[A-Za-z]+')*\s*\))\s*$",
            ))))
            .build(),
        Parameter::builder()
            .name("$skiptoken")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("From the previous page's @odata.nextLink."))
            .schema(Some(string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Uuid,
            )))))
            .build(),
    ]
}
