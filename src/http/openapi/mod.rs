//! The OpenAPI 3.1 document served at `GET /_presenced/openapi.json`,
//! generated from the code: schemas come from the `ToSchema` derives on the
//! request bodies (`domain`, `notify`, `http`) and on the typed answers
//! ([`super::model`]); the presence actions come from the router's own
//! table ([`super::action_table`]). A snapshot test and the schemathesis run
//! of `scripts/test.sh` keep it true.
//!
//! `schemas` lists the component schemas, `paths` every documented
//! operation (the presence actions described in `actions`), `operation`
//! how one is rendered with its shared error responses, `params` the
//! parameters; this module assembles and serves the document.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, ObjectBuilder, OpenApi as Document, RefOr, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};

// In scope for `paths`, which calls it as `super::action_table()`.
use super::action_table;
use super::model;
use operation::{schema_ref, BEARER, ERROR_RESPONSES};
use paths::operations;
use schemas::Schemas;

mod actions;
mod operation;
mod params;
mod paths;
mod schemas;
#[cfg(test)]
mod tests;

/// Builds the document.
pub fn document() -> Document {
    let mut doc = Schemas::openapi();
    for (path, method, op) in operations() {
        doc.paths
            .add_path_operation(path, vec![method], op.into_operation());
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An Entra ID-shaped access token (`presenced token` mints one).",
                ))
                .build(),
        ),
    );
    for (status, description) in ERROR_RESPONSES {
        components.responses.insert(
            format!("Error{status}"),
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        Content::new(Some(schema_ref(&model::ErrorResponse::name()))),
                    )
                    .build(),
            ),
        );
    }
    components.schemas.insert(
        "OpenApiDocument".to_string(),
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .description(Some("An OpenAPI 3.1 document."))
            .into(),
    );
    doc
}

/// The document as JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot render the document: {e}\"}}"))
    })
}

/// `GET /_presenced/openapi.json`: the OpenAPI 3.1 document. Public.
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}
