//! A bare axum server: the same-run baseline `scripts/bench.sh` measures
//! presenced against (issue #14). It is what an HTTP service on the same
//! axum, tokio and serde versions costs when it does no presence work: no
//! authentication, no store, no fsync.
//!
//! - `GET /v1.0/users/{id}/presence` answers a Graph presence resource of
//!   the same shape and size presenced answers for a user with one session
//!   (the id parsed from the path, the body serialized per request).
//! - `POST /v1.0/users/{id}/presence/setPresence` parses a setPresence body
//!   and answers `200` with no body, as presenced does.
//! - `POST /v1.0/communications/getPresencesByUserId` parses the ids and
//!   answers a collection of one such presence per id, the shape and size
//!   presenced answers: what a bulk read costs in HTTP, JSON and the
//!   network alone, the floor under presenced's bulk latencies.
//!
//! Run with `cargo run --release --example baseline -- 127.0.0.1:PORT`
//! (port 0 picks a free one); like `presenced serve` it prints
//! `baseline listening on http://ADDR` as its first line.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The presence resource (SPEC §2), as presenced renders it for a user
/// with one live Busy/InACall session and nothing else set.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Presence {
    /// Only on a single presence; a collection's items have none.
    #[serde(rename = "@odata.context", skip_serializing_if = "Option::is_none")]
    context: Option<String>,
    id: String,
    availability: &'static str,
    activity: &'static str,
    sequence_number: String,
    out_of_office_settings: OutOfOffice,
    status_message: Option<()>,
    work_location: WorkLocation,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutOfOffice {
    message: Option<()>,
    is_out_of_office: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkLocation {
    work_location_type: &'static str,
    source: &'static str,
    place_id: Option<()>,
}

/// The setPresence body (SPEC §3); parsed, then dropped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // parsed for the cost of parsing, never read
struct SetPresence {
    session_id: String,
    availability: String,
    activity: String,
    expiration_duration: Option<String>,
}

/// The getPresencesByUserId body (SPEC §4).
#[derive(Deserialize)]
struct Ids {
    ids: Vec<Uuid>,
}

/// The getPresencesByUserId answer.
#[derive(Serialize)]
struct Collection {
    #[serde(rename = "@odata.context")]
    context: String,
    value: Vec<Presence>,
}

/// The base URL (`http://ADDR`), the start of `@odata.context`.
type Base = Arc<str>;

async fn get_presence(State(base): State<Base>, Path(id): Path<Uuid>) -> Json<Presence> {
    Json(Presence {
        context: Some(format!(
            "{base}/v1.0/$metadata#users('{id}')/presence/$entity"
        )),
        ..presence(id)
    })
}

async fn get_many(State(base): State<Base>, Json(body): Json<Ids>) -> Json<Collection> {
    Json(Collection {
        context: format!("{base}/v1.0/$metadata#Collection(microsoft.graph.presence)"),
        value: body.ids.into_iter().map(presence).collect(),
    })
}

/// A user's presence with one live Busy/InACall session, without context.
fn presence(id: Uuid) -> Presence {
    Presence {
        context: None,
        id: id.to_string(),
        availability: "Busy",
        activity: "InACall",
        // presenced's is 32 hex digits (version and last write).
        sequence_number: format!("{:016X}{:016X}", 1u64, 1_764_000_000_000_000u64),
        out_of_office_settings: OutOfOffice {
            message: None,
            is_out_of_office: false,
        },
        status_message: None,
        work_location: WorkLocation {
            work_location_type: "unspecified",
            source: "none",
            place_id: None,
        },
    }
}

async fn set_presence(Path(_id): Path<Uuid>, Json(_body): Json<SetPresence>) -> StatusCode {
    StatusCode::OK
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let base: Base = format!("http://{}", listener.local_addr()?).into();
    let app = Router::new()
        .route("/v1.0/users/{id}/presence", get(get_presence))
        .route("/v1.0/users/{id}/presence/setPresence", post(set_presence))
        .route("/v1.0/communications/getPresencesByUserId", post(get_many))
        .with_state(base.clone());
    println!("baseline listening on {base}");
    axum::serve(listener, app).await
}
