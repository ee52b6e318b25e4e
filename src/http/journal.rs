//! The request journal (SPEC §8), as WireMock keeps one: the most recent
//! Graph requests, newest first, for tests to assert on. Bounded in memory
//! (`--journal-size`); emulator mode only. Authorization headers and
//! tokens are never kept: an entry holds the tenant and application the
//! token named, never the token, and query parameters whose name contains
//! `token` are kept with their value replaced.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::admin::{Admin, Emulator};
use super::error::GraphError;
use super::AppState;

/// The default number of requests kept.
pub const DEFAULT_JOURNAL_SIZE: usize = 1_000;

/// The most requests `--journal-size` may keep.
pub const MAX_JOURNAL_SIZE: usize = 100_000;

/// One journaled request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// The presence clock's time of the request, UTC with 7 fractional digits.
    pub date_time: String,
    /// The HTTP method.
    pub method: String,
    /// The path and query string.
    pub path: String,
    /// The answer's status.
    pub status: u16,
    /// The token's tenant, when it carried a valid one.
    pub tenant_id: Option<Uuid>,
    /// The token's application, when it carried a valid one.
    pub app_id: Option<String>,
    /// The `request-id` the answer carried.
    pub request_id: String,
    /// The `client-request-id` the answer carried.
    pub client_request_id: String,
    /// The JSON object body, if the request had one.
    #[schema(value_type = Option<Object>)]
    pub body: Option<serde_json::Value>,
    /// Whether an injected fault answered it.
    pub faulted: bool,
    /// The fault rule that answered it.
    pub fault_rule_id: Option<Uuid>,
}

/// The answer of `GET /_presenced/requests`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JournalCollection {
    /// Requests, newest first.
    pub value: Vec<JournalEntry>,
}

/// The kept requests, oldest at the front.
#[derive(Debug)]
pub struct Journal {
    capacity: usize,
    entries: Mutex<VecDeque<JournalEntry>>,
}

impl Journal {
    /// A journal keeping the latest `capacity` requests (0 keeps none).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// Keeps `entry`, dropping the oldest beyond the capacity.
    pub fn record(&self, entry: JournalEntry) {
        if self.capacity == 0 {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            while entries.len() >= self.capacity {
                entries.pop_front();
            }
            entries.push_back(entry);
        }
    }

    /// The newest `limit` entries, newest first.
    pub fn newest(&self, limit: usize) -> Vec<JournalEntry> {
        self.entries
            .lock()
            .map(|e| e.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets `tenant`'s entries, or every entry.
    pub fn clear(&self, tenant: Option<Uuid>) {
        if let Ok(mut entries) = self.entries.lock() {
            match tenant {
                Some(t) => entries.retain(|e| e.tenant_id != Some(t)),
                None => entries.clear(),
            }
        }
    }
}

/// `path?query` with the values of parameters named like a token replaced.
pub fn redacted_path(uri: &axum::http::Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.to_ascii_lowercase().contains("token") => {
                format!("{name}=REDACTED")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// Query of `GET /_presenced/requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalQuery {
    /// How many of the newest requests [default: all kept].
    limit: Option<String>,
}

/// `GET /_presenced/requests?limit=N`: the newest journaled Graph requests,
/// newest first.
pub async fn list(
    State(state): State<AppState>,
    _emulator: Emulator,
    _admin: Admin,
    query: Result<Query<JournalQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JournalCollection>, GraphError> {
    let Query(query) = query
        .map_err(|e| GraphError::bad_request(format!("The query is invalid: {}", e.body_text())))?;
    let limit = match query.limit.as_deref() {
        None => usize::MAX,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_JOURNAL_SIZE).contains(n))
            .ok_or_else(|| {
                GraphError::bad_request(format!(
                    "limit: '{text}' is not a number from 1 to {MAX_JOURNAL_SIZE}."
                ))
            })?,
    };
    let journal = &state
        .emulator
        .as_ref()
        .ok_or_else(|| GraphError::not_found("The journal exists only in emulator mode."))?
        .journal;
    Ok(Json(JournalCollection {
        value: journal.newest(limit),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u16, tenant: Option<Uuid>) -> JournalEntry {
        JournalEntry {
            date_time: String::new(),
            method: "GET".into(),
            path: "/".into(),
            status: n,
            tenant_id: tenant,
            app_id: None,
            request_id: String::new(),
            client_request_id: String::new(),
            body: None,
            faulted: false,
            fault_rule_id: None,
        }
    }

    #[test]
    fn the_journal_keeps_the_newest_and_answers_newest_first() {
        let journal = Journal::new(3);
        let t = Uuid::new_v4();
        for n in 1..=5 {
            journal.record(entry(n, (n % 2 == 0).then_some(t)));
        }
        let statuses =
            |j: &Journal, limit| -> Vec<u16> { j.newest(limit).iter().map(|e| e.status).collect() };
        assert_eq!(statuses(&journal, 10), vec![5, 4, 3]);
        assert_eq!(statuses(&journal, 2), vec![5, 4]);
        journal.clear(Some(t));
        assert_eq!(statuses(&journal, 10), vec![5, 3]);
        journal.clear(None);
        assert!(journal.newest(10).is_empty());
        let none = Journal::new(0);
        none.record(entry(1, None));
        assert!(none.newest(10).is_empty());
    }

    #[test]
    fn token_query_values_are_redacted() {
        let uri: axum::http::Uri = "/x?a=1&access_token=secret&Token=s2&b".parse().unwrap();
        assert_eq!(
            redacted_path(&uri),
            "/x?a=1&access_token=REDACTED&Token=REDACTED&b"
        );
    }
}
