//! `GET /_presenced/users` (SPEC §8): the users of the caller's tenant that
//! presenced knows, each with its presence, paged and filterable by
//! availability. The dashboard's roster reads it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::request::Parts;
use axum::Json;

use super::error::GraphError;
use super::extract::{authenticate, request_base};
use super::model::{ListedUser, UserCollection};
use super::{render, AppState};
use crate::auth::{authorize, Operation, Principal};
use crate::domain::{effective, last_seen, UsersQuery};

/// How many users one store read takes while filling a page.
const SCAN_CHUNK: usize = 256;
/// The most users one request looks at: a filter that matches few users
/// answers a short page with a nextLink rather than walking the whole
/// tenant in one request.
const MAX_SCAN: usize = 10_000;

/// The authenticated caller, the request's base URL and its query.
pub struct ListCall {
    principal: Arc<Principal>,
    base: Arc<str>,
    query: UsersQuery,
}

impl axum::extract::FromRequestParts<AppState> for ListCall {
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GraphError> {
        let principal = authenticate(parts, state).await?;
        authorize(&principal, Operation::ReadMany, None)?;
        let query = UsersQuery::try_from(parts.uri.query().unwrap_or(""))?;
        Ok(ListCall {
            principal,
            base: request_base(parts, state),
            query,
        })
    }
}

/// `GET /_presenced/users[?$top=N][&$filter=availability eq 'X'][&$skiptoken=ID]`.
pub async fn list(
    State(state): State<AppState>,
    call: ListCall,
) -> Result<Json<UserCollection>, GraphError> {
    let ListCall {
        principal,
        base,
        query,
    } = call;
    let now = state.clock.now();
    let tenant = principal.tenant;
    let mut value = Vec::new();
    let mut cursor = query.after;
    let mut scanned = 0;
    let more = 'scan: loop {
        let chunk = state
            .service
            .users_page(tenant, cursor, SCAN_CHUNK.max(query.top))
            .await?;
        let exhausted = chunk.len() < SCAN_CHUNK.max(query.top);
        let mut rest = chunk.into_iter();
        for (user, facts) in rest.by_ref() {
            cursor = Some(user);
            scanned += 1;
            let e = effective(&facts, now);
            if query.admits(e.availability) {
                value.push(ListedUser {
                    id: user,
                    presence: render::presence(user, e, principal.user() == Some(user)),
                    session_count: facts.sessions.iter().filter(|s| s.is_live(now)).count(),
                    last_seen_date_time: last_seen(&facts, now).map(render::utc_timestamp),
                });
                if value.len() == query.top {
                    break 'scan rest.len() > 0 || !exhausted;
                }
            }
        }
        if exhausted {
            break false;
        }
        if scanned >= MAX_SCAN {
            break true;
        }
    };
    let next_link = more
        .then_some(cursor)
        .flatten()
        .map(|after| next_link(&base, &query, after));
    Ok(Json(UserCollection { value, next_link }))
}

/// The next page's URL: the same `$top` and `$filter`, continuing after
/// `after`.
fn next_link(base: &str, query: &UsersQuery, after: uuid::Uuid) -> String {
    let mut link = format!("{base}/_presenced/users?$top={}", query.top);
    if let Some(wanted) = &query.availability {
        let names: Vec<String> = wanted.iter().map(|a| format!("'{}'", a.as_str())).collect();
        link.push_str(&format!(
            "&$filter=availability%20in%20({})",
            names.join(",")
        ));
    }
    link.push_str(&format!("&$skiptoken={after}"));
    link
}
