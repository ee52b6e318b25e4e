//! The request a log line is written in, without a tracing span.
//!
//! README "Logs" promises that every line written while a request runs
//! reads as if inside a `request{request_id=…}` span, so `grep` by request
//! id finds them all. A tracing span does that, but it costs every request
//! a span in the registry, its fields formatted into a string, an enter
//! and an exit per poll and a close, about 7 % of a getPresence's CPU under
//! load (issue #14), for lines that almost no request writes.
//!
//! So, where the binary's own formats write the lines (see
//! [`use_request_scopes`]), the edge runs the request in a task-local
//! [`Scope`] holding its request id instead, which costs a thread-local
//! swap per poll. [`crate::logs::text::TextFormat`] (without colour)
//! writes `request{request_id="…"}:` for it where the default format
//! writes a span, and [`crate::logs::json::JsonFormat`] adds it to `span`
//! and `spans` as tracing's JSON format would: byte for byte the same
//! lines. Anywhere else (colour, tests with their own subscriber, a
//! `RUST_LOG` that filters by span) the edge keeps the tracing span.
//!
//! As with a span, a line belongs to the request when it is written while
//! the request's task polls it: a task the request spawns is on its own.
//! A batched request runs inside its batch's scope, so its lines carry
//! both ids, the batch's first, as nested spans do.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use uuid::Uuid;

/// Whether the edge runs requests in a [`Scope`] rather than a span.
static SCOPES: AtomicBool = AtomicBool::new(false);

tokio::task_local! {
    /// The request the current task is running.
    static REQUEST: Scope;
}

/// A request being run, and the request it runs in, if any (a batch's).
#[derive(Debug, Clone)]
pub struct Scope {
    request_id: Uuid,
    outer: Option<Arc<Scope>>,
}

/// Tells the edge to run requests in a [`Scope`] rather than a tracing
/// span. Only for a subscriber whose event format writes scopes, the way
/// [`crate::logs::text::TextFormat`] does without colour.
pub fn use_request_scopes() {
    SCOPES.store(true, Ordering::Relaxed);
}

/// Whether [`use_request_scopes`] was called.
pub fn scopes_in_use() -> bool {
    SCOPES.load(Ordering::Relaxed)
}

/// Runs `request` in a scope with `request_id`, inside the current one if
/// there is one.
pub fn run_in_scope<F: Future>(request_id: Uuid, request: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(Scope::inside_current(request_id), request)
}

/// Runs `f` in a scope with `request_id`, inside the current one if there
/// is one (for code that is not a future: tests, mostly).
pub fn sync_in_scope<R>(request_id: Uuid, f: impl FnOnce() -> R) -> R {
    REQUEST.sync_scope(Scope::inside_current(request_id), f)
}

impl Scope {
    /// The scope of a request with `request_id`, inside the current one if
    /// there is one.
    fn inside_current(request_id: Uuid) -> Self {
        let outer = REQUEST.try_with(|outer| Arc::new(outer.clone())).ok();
        Self { request_id, outer }
    }
}

/// Whether the current task is running a request in a scope.
pub fn in_scope() -> bool {
    REQUEST.try_with(|_| ()).is_ok()
}

/// Writes `request{request_id="…"}:` for every request the current task
/// runs in, the outermost first, as the default format writes such spans
/// without colour. `Ok(false)` when there is none.
pub fn write_scopes(out: &mut impl fmt::Write) -> Result<bool, fmt::Error> {
    let ids = request_ids();
    for id in &ids {
        let mut buffer = Uuid::encode_buffer();
        out.write_str("request{request_id=\"")?;
        out.write_str(id.hyphenated().encode_lower(&mut buffer))?;
        out.write_str("\"}:")?;
    }
    Ok(!ids.is_empty())
}

/// The request ids of every request the current task runs in, the
/// outermost first; empty when there is none.
pub fn request_ids() -> Vec<Uuid> {
    fn push(ids: &mut Vec<Uuid>, scope: &Scope) {
        if let Some(outer) = &scope.outer {
            push(ids, outer);
        }
        ids.push(scope.request_id);
    }
    let mut ids = Vec::new();
    let _ = REQUEST.try_with(|scope| push(&mut ids, scope));
    ids
}

/// Runs `log` inside requests with `ids` (nested, the first outermost) in
/// real `request` spans, as the edge does without scopes: what the
/// formats' tests compare scopes with.
#[cfg(test)]
pub(crate) fn in_spans(ids: &[Uuid], log: &dyn Fn()) {
    match ids.split_first() {
        None => log(),
        Some((id, inner)) => {
            let text = id.to_string();
            tracing::info_span!("request", request_id = text.as_str())
                .in_scope(|| in_spans(inner, log));
        }
    }
}

/// [`in_spans`] with scopes instead of spans.
#[cfg(test)]
pub(crate) fn in_scopes(ids: &[Uuid], log: &dyn Fn()) {
    match ids.split_first() {
        None => log(),
        Some((id, inner)) => sync_in_scope(*id, || in_scopes(inner, log)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes() -> String {
        let mut out = String::new();
        let written = write_scopes(&mut out).unwrap();
        assert_eq!(written, !out.is_empty());
        out
    }

    #[test]
    fn outside_a_request_there_is_no_scope() {
        assert!(!in_scope());
        assert_eq!(scopes(), "");
    }

    #[test]
    fn a_request_writes_its_id_as_a_span_would() {
        let id = Uuid::new_v4();
        let written = sync_in_scope(id, || {
            assert!(in_scope());
            scopes()
        });
        assert_eq!(written, format!("request{{request_id=\"{id}\"}}:"));
        assert!(!in_scope(), "the scope ends with the request");
    }

    #[test]
    fn a_batched_request_writes_the_batch_id_first() {
        let (batch, inner) = (Uuid::new_v4(), Uuid::new_v4());
        let (written, ids) =
            sync_in_scope(batch, || sync_in_scope(inner, || (scopes(), request_ids())));
        assert_eq!(ids, [batch, inner]);
        assert!(request_ids().is_empty());
        assert_eq!(
            written,
            format!("request{{request_id=\"{batch}\"}}:request{{request_id=\"{inner}\"}}:")
        );
    }

    #[tokio::test]
    async fn the_scope_holds_across_awaits_and_not_in_spawned_tasks() {
        let id = Uuid::new_v4();
        let (after_await, spawned) = run_in_scope(id, async {
            tokio::task::yield_now().await;
            let after_await = scopes();
            let spawned = tokio::spawn(async { in_scope() }).await.unwrap();
            (after_await, spawned)
        })
        .await;
        assert_eq!(after_await, format!("request{{request_id=\"{id}\"}}:"));
        assert!(!spawned, "a spawned task is on its own, as with a span");
    }
}
