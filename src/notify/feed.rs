//! The event feed behind `/_presenced/events` (SPEC §8): a cursor over the
//! durable event log, woken by the bus, so `Last-Event-ID` resumes exactly
//! where a reader left off within the retention.

use std::collections::{HashSet, VecDeque};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Notifier;
use crate::store::{Event, StoreError};

/// Events read from the log per query.
const PAGE: usize = 500;

/// What a feed yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    /// The reader's `Last-Event-ID` is older than the retained log: it must
    /// re-read the presences; the feed continues from `resume_at`.
    Reset {
        /// The position the feed continues from.
        resume_at: u64,
    },
    /// A change of a presence resource the reader may see.
    Event(Box<Event>),
}

/// Why a feed cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// `Last-Event-ID` names a position this server never reached.
    #[error("Last-Event-ID is newer than any event this server sent.")]
    FromTheFuture,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A reader's position in the event log, limited to one tenant and,
/// optionally, some of its users.
pub struct Feed {
    notifier: std::sync::Arc<Notifier>,
    tenant: Uuid,
    users: Option<HashSet<Uuid>>,
    after: u64,
    pending: VecDeque<FeedItem>,
    wake: tokio::sync::watch::Receiver<u64>,
    stopping: CancellationToken,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("tenant", &self.tenant)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A feed of `tenant`'s changes (only `users`' when given), from
    /// `resume` (a `Last-Event-ID`) or from now. `Some(0)`, an id no event
    /// has, asks for everything the log still holds (the dashboard's
    /// timeline), without a reset. It ends when `stopping` is cancelled.
    pub async fn feed(
        self: &std::sync::Arc<Self>,
        tenant: Uuid,
        users: Option<HashSet<Uuid>>,
        resume: Option<u64>,
        stopping: CancellationToken,
    ) -> Result<Feed, FeedError> {
        // Subscribe before reading the bounds: nothing committed after
        // them can be missed.
        let wake = self.bus.events();
        let bounds = self.store.event_bounds().await?;
        let mut pending = VecDeque::new();
        let after = match resume {
            Some(id) if id > bounds.last => return Err(FeedError::FromTheFuture),
            Some(0) => bounds.pruned_through,
            Some(id) if id < bounds.pruned_through => {
                pending.push_back(FeedItem::Reset {
                    resume_at: bounds.last,
                });
                bounds.last
            }
            Some(id) => id,
            None => bounds.last,
        };
        Ok(Feed {
            notifier: self.clone(),
            tenant,
            users,
            after,
            pending,
            wake,
            stopping,
        })
    }
}

impl Feed {
    /// The next item, waiting for the log to grow; `None` when the server
    /// is stopping or the log cannot be read (logged).
    pub async fn next(&mut self) -> Option<FeedItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            // Read before querying: every event up to `last` is committed,
            // so the query below sees all of them.
            let last = *self.wake.borrow_and_update();
            let page = match self
                .notifier
                .store
                .events_since(Some(self.tenant), self.after, PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "an event feed cannot read the log");
                    return None;
                }
            };
            if page.is_empty() {
                // Events up to `last` belong to other tenants: skip them.
                self.after = self.after.max(last);
                tokio::select! {
                    () = self.stopping.cancelled() => return None,
                    changed = self.wake.changed() => if changed.is_err() { return None },
                }
                continue;
            }
            for e in page {
                self.after = e.seq;
                if self.users.as_ref().is_none_or(|u| u.contains(&e.key.user)) {
                    self.pending.push_back(FeedItem::Event(Box::new(e)));
                }
            }
        }
    }
}
