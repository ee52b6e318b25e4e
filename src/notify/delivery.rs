//! Webhook delivery from the durable outbox (SPEC §7): at least once, in
//! Graph's exact format, several items per POST, retried with exponential
//! backoff on the presence clock for up to 4 hours, then dropped, counted
//! and reported with a `missed` lifecycle notification. Each endpoint has a
//! bounded number of POSTs in flight, so a slow or dead receiver never
//! delays the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{json, Value};
use uuid::Uuid;

use super::crypto::{encrypt, EncryptionCertificate};
use super::{utc_timestamp, Notifier, Until};
use crate::clock::wall_now;
use crate::store::{Delivery, LifecycleEvent, NewDelivery, Payload, StoreError, Subscription};

/// A first attempt must be answered within this (SPEC §7).
pub const FIRST_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// A retry must be answered within this.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries are given up this long after they were queued.
pub const GIVE_UP_AFTER: TimeDelta = TimeDelta::hours(4);
/// The most items in one POST.
const MAX_ITEMS_PER_POST: usize = 100;
/// The most deliveries taken from the outbox in one round: enough that,
/// with many subscriptions queued at once, each POST still fills up.
const ROUND: usize = 10_000;
/// The most bytes of items in one POST (each item repeats its
/// subscription's resource string, up to ~27 KB for 650 users): receivers
/// commonly cap bodies at 1–2 MB.
const MAX_POST_BYTES: usize = 1024 * 1024;
/// How often a round is retried while due deliveries wait for a busy
/// endpoint (a finished POST retries at once).
const BUSY_RECHECK: Duration = Duration::from_millis(250);

/// The wait before retry number `attempt` (1-based): 10 s doubling, at most
/// 30 minutes.
pub fn backoff(attempt: u32) -> TimeDelta {
    let doublings = attempt.saturating_sub(1).min(8);
    TimeDelta::seconds(10 * (1i64 << doublings)).min(TimeDelta::minutes(30))
}

/// A delivery with the subscription it is for.
type Item = (Delivery, Arc<Subscription>);

/// One POST to make: its target and the deliveries in it.
struct Post {
    url: String,
    lifecycle: bool,
    items: Vec<Item>,
}

impl Notifier {
    /// The delivery task: sends what is due, then sleeps until the next due
    /// delivery (presence clock) or a wake-up, until cancelled. Sends in
    /// flight at shutdown finish (they are bounded by their timeouts);
    /// anything not yet sent stays in the outbox for the next start.
    pub(crate) async fn deliver(self: Arc<Self>) {
        loop {
            // A scheduler pass (say 100 000 fades falling due at once) runs
            // first: rounds started beside it would compete with it for the
            // CPU and the store, and it queues what they would send anyway.
            drop(self.pass.lock().await);
            let mut blocked = false;
            let next = match self.deliver_due(&mut blocked).await {
                Ok(()) => self.store.next_delivery_at(&self.in_flight_ids()).await,
                Err(e) => Err(e),
            };
            let next = match next {
                Ok(next) => next,
                Err(e) if self.back_off("a delivery round", &e).await => continue,
                Err(_) => return,
            };
            // Due rows waiting for a busy endpoint: a finished POST nudges
            // this loop; the timer only bounds the wait for rows of other
            // endpoints that fall due meanwhile.
            let until = match next {
                Some(_) if blocked => Until::Real(BUSY_RECHECK),
                next => Until::Clock(next),
            };
            if !self.idle(until, &self.bus.deliveries).await {
                return;
            }
        }
    }

    fn in_flight_ids(&self) -> Vec<u64> {
        self.in_flight
            .lock()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// One round: takes the due deliveries not in flight and starts, for
    /// each subscription with nothing in flight, one POST of its oldest due
    /// items (up to 100), when the endpoint has a free slot. One POST at a
    /// time per subscription keeps its notifications in order (a receiver
    /// applying rich notifications as they come never ends on a stale
    /// state); only a retried item can arrive after newer ones, and its
    /// `sequenceNumber` tells. The rest wait for the next round.
    async fn deliver_due(self: &Arc<Self>, blocked: &mut bool) -> Result<(), StoreError> {
        let now = self.clock.now();
        let due = self
            .store
            .due_deliveries(now, ROUND, &self.in_flight_ids())
            .await?;
        if due.is_empty() {
            return Ok(());
        }
        let due_count = due.len();
        let mut subscriptions: HashMap<Uuid, Option<Arc<Subscription>>> = HashMap::new();
        let mut orphans = Vec::new();
        // Keyed by (subscription, lifecycle): lifecycle notices go to their
        // own URL and do not wait behind change notifications. Lanes stay
        // in the order of their oldest due item (`due` is oldest first), so
        // when an endpoint has fewer free slots than lanes, the slots go to
        // the lanes that waited longest, which also hold most of the
        // window's items. In subscription-id order, a lane with a few items
        // here (its others beyond the window) took each freed slot: a
        // 30,000-fade backlog went out at about 10 items per POST instead
        // of about 38 (BENCHMARKS.md).
        let mut lanes: HashMap<Lane, usize> = HashMap::new();
        let mut posts: Vec<(Lane, (String, Vec<Item>))> = Vec::new();
        for d in due {
            let known = match subscriptions.get(&d.subscription) {
                Some(s) => s.clone(),
                None => {
                    let s = self
                        .subscription_for_delivery(d.tenant, d.subscription)
                        .await?;
                    subscriptions.insert(d.subscription, s.clone());
                    s
                }
            };
            let live = known.filter(|s| s.expires_at > now);
            let Some(s) = live else {
                // The subscription was deleted or expired: nothing more is
                // delivered for it (SPEC §7).
                orphans.push(d.id);
                continue;
            };
            let (url, lifecycle) = match &d.payload {
                Payload::Change { .. } => (s.notification_url.clone(), false),
                Payload::Lifecycle { .. } => match &s.lifecycle_url {
                    Some(url) => (url.clone(), true),
                    None => {
                        orphans.push(d.id);
                        continue;
                    }
                },
            };
            let lane = (s.id, lifecycle);
            let at = *lanes.entry(lane).or_insert_with(|| {
                posts.push((lane, (url, Vec::new())));
                posts.len() - 1
            });
            if let Some((_, (_, items))) = posts.get_mut(at) {
                items.push((d, s));
            }
        }
        if !orphans.is_empty() {
            self.store.remove_deliveries(&orphans).await?;
        }
        let mut round = RoundStats {
            due: due_count,
            lanes: posts.len(),
            ..RoundStats::default()
        };
        for ((subscription, lifecycle), (url, mut items)) in posts {
            let lane = (subscription, lifecycle);
            if self.busy.lock().map_or(true, |busy| busy.contains(&lane)) {
                *blocked = true; // its POST in flight finishes first
                round.lane_busy += 1;
                continue;
            }
            let fits = fitting(&items);
            if items.len() > fits {
                items.truncate(fits);
                *blocked = true;
            }
            let Some(permit) = self.endpoint_slot(&url) else {
                // This endpoint is busy; the next round retries.
                *blocked = true;
                round.endpoint_busy += 1;
                continue;
            };
            round.posts += 1;
            round.items += items.len();
            let ids: Vec<u64> = items.iter().map(|(d, _)| d.id).collect();
            if let (Ok(mut in_flight), Ok(mut busy)) = (self.in_flight.lock(), self.busy.lock()) {
                in_flight.extend(ids.iter().copied());
                busy.insert(lane);
            }
            let post = Post {
                url,
                lifecycle,
                items,
            };
            let this = self.clone();
            self.tasks.spawn(async move {
                let failure = this.post(&post).await;
                let mut permit = Some(permit);
                if failure.is_none() {
                    // Delivered: the lane and the endpoint slot are free for
                    // the next POST while the removal of these rows waits
                    // for its commit (they stay in flight, so no round
                    // takes them again). A failed POST keeps its lane until
                    // its retry is recorded, so newer items do not overtake
                    // it in a burst.
                    if let Ok(mut busy) = this.busy.lock() {
                        busy.remove(&lane);
                    }
                    permit = None;
                    this.bus.deliveries_queued();
                }
                if let Err(e) = this.record(post, failure).await {
                    tracing::error!(error = %e, "recording a delivery outcome failed");
                }
                if let (Ok(mut in_flight), Ok(mut busy)) = (this.in_flight.lock(), this.busy.lock())
                {
                    for id in ids {
                        in_flight.remove(&id);
                    }
                    busy.remove(&lane);
                }
                drop(permit);
                this.bus.deliveries_queued();
            });
        }
        tracing::debug!(
            due = round.due,
            lanes = round.lanes,
            posts = round.posts,
            items = round.items,
            lane_busy = round.lane_busy,
            endpoint_busy = round.endpoint_busy,
            "delivery round"
        );
        Ok(())
    }

    /// A free POST slot of the endpoint serving `url` (its origin), if any.
    fn endpoint_slot(&self, url: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let origin = reqwest::Url::parse(url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| url.to_string());
        let semaphore = {
            let mut endpoints = self.endpoints.lock().ok()?;
            endpoints
                .entry(origin)
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Semaphore::new(
                        self.settings.posts_per_endpoint,
                    ))
                })
                .clone()
        };
        semaphore.try_acquire_owned().ok()
    }

    /// Sends one POST: `None` when the receiver took it, else why not.
    async fn post(&self, post: &Post) -> Option<String> {
        let retry = post.items.iter().any(|(d, _)| d.attempts > 0);
        let timeout = if retry {
            RETRY_TIMEOUT
        } else {
            FIRST_ATTEMPT_TIMEOUT
        };
        let body = self.body(post);
        let started = std::time::Instant::now();
        let outcome = self
            .client
            .post(&post.url)
            .header("content-type", "application/json; charset=utf-8")
            .timeout(timeout)
            .body(body.to_string())
            .send()
            .await;
        let failure = match outcome {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("answered {}", r.status())),
            Err(e) if e.is_timeout() => Some(format!("no answer within {timeout:?}")),
            Err(e) => Some(format!("unreachable: {}", without_url(&e))),
        };
        let outcome = if failure.is_none() {
            "delivered"
        } else {
            "failed"
        };
        crate::metrics::delivery(outcome, post.items.len(), started.elapsed());
        if failure.is_none() {
            tracing::debug!(url = %redacted(&post.url), items = post.items.len(), elapsed = ?started.elapsed(), "delivered");
        }
        failure
    }

    /// Records the outcome of a POST: delivered rows are removed; failed
    /// ones are retried later or, after 4 hours, dropped and reported as
    /// `missed`.
    async fn record(&self, post: Post, failure: Option<String>) -> Result<(), StoreError> {
        let Some(failure) = failure else {
            let ids: Vec<u64> = post.items.iter().map(|(d, _)| d.id).collect();
            return self.store.remove_deliveries(&ids).await;
        };
        let now = self.clock.now();
        let (expired, retrying): (Vec<_>, Vec<_>) = post
            .items
            .iter()
            .partition(|(d, _)| now - d.created_at >= GIVE_UP_AFTER);
        if !retrying.is_empty() {
            let attempts = retrying.iter().map(|(d, _)| d.attempts).max().unwrap_or(0) + 1;
            let next = now + backoff(attempts);
            let ids: Vec<u64> = retrying.iter().map(|(d, _)| d.id).collect();
            tracing::warn!(url = %redacted(&post.url), items = ids.len(), attempts, %failure, next = %next, "delivery failed; will retry");
            self.store.retry_deliveries(&ids, next).await?;
        }
        if !expired.is_empty() {
            let ids: Vec<u64> = expired.iter().map(|(d, _)| d.id).collect();
            self.dropped
                .fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
            crate::metrics::deliveries_dropped(ids.len());
            tracing::warn!(url = %redacted(&post.url), items = ids.len(), %failure, "deliveries dropped after retrying for 4 hours");
            self.store.remove_deliveries(&ids).await?;
            if !post.lifecycle {
                let mut missed: Vec<NewDelivery> = Vec::new();
                for (_, s) in &expired {
                    if s.lifecycle_url.is_some() && !missed.iter().any(|m| m.subscription == s.id) {
                        missed.push(NewDelivery {
                            subscription: s.id,
                            tenant: s.tenant,
                            payload: Payload::Lifecycle {
                                event: LifecycleEvent::Missed,
                            },
                        });
                    }
                }
                if !missed.is_empty() {
                    self.store.enqueue(missed, now).await?;
                }
            }
        }
        Ok(())
    }

    /// The JSON of one POST (SPEC §7).
    fn body(&self, post: &Post) -> Value {
        let mut tokens: Vec<(String, Uuid)> = Vec::new();
        let items: Vec<Value> = post
            .items
            .iter()
            .map(|(d, s)| match &d.payload {
                Payload::Lifecycle { event } => json!({
                    "subscriptionId": s.id,
                    "subscriptionExpirationDateTime": utc_timestamp(s.expires_at),
                    "tenantId": s.tenant,
                    "clientState": s.client_state,
                    "lifecycleEvent": event.as_str(),
                }),
                Payload::Change {
                    user,
                    availability,
                    activity,
                    sequence_number,
                } => {
                    let mut item = json!({
                        "subscriptionId": s.id,
                        "clientState": s.client_state,
                        "changeType": "updated",
                        "tenantId": s.tenant,
                        "organizationId": s.tenant,
                        "resource": s.resource,
                        "subscriptionExpirationDateTime": utc_timestamp(s.expires_at),
                        "resourceData": {
                            "@odata.type": "#Microsoft.Graph.presence",
                            "@odata.id": format!("users/{user}/presence"),
                            "id": user,
                        },
                    });
                    if s.include_resource_data {
                        let data = json!({
                            "@odata.id": format!("users/{user}/presence"),
                            "@odata.type": "#Microsoft.Graph.presence",
                            "id": user,
                            "availability": availability,
                            "activity": activity,
                            "sequenceNumber": sequence_number,
                        });
                        if let Some(content) = encrypted(s, &data) {
                            item["encryptedContent"] = content;
                            if !tokens.contains(&(s.app_id.clone(), s.tenant)) {
                                tokens.push((s.app_id.clone(), s.tenant));
                            }
                        }
                    }
                    item
                }
            })
            .collect();
        let mut body = json!({ "value": items });
        if !tokens.is_empty() {
            let now = wall_now();
            let signed: Vec<String> = tokens
                .iter()
                .filter_map(|(app, tenant)| match self.signer.token(app, *tenant, now) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot sign a validation token");
                        None
                    }
                })
                .collect();
            body["validationTokens"] = json!(signed);
        }
        body
    }
}

/// The `encryptedContent` of a rich notification item, or `None` (logged)
/// when the stored certificate cannot be used.
fn encrypted(s: &Subscription, data: &Value) -> Option<Value> {
    let cert = s
        .encryption_certificate
        .as_deref()
        .map(EncryptionCertificate::parse)?;
    let result = cert
        .map_err(|e| e.to_string())
        .and_then(|cert| {
            encrypt(
                &cert,
                s.encryption_certificate_id.as_deref().unwrap_or_default(),
                data.to_string().as_bytes(),
            )
            .map_err(|e| e.to_string())
        })
        .and_then(|c| serde_json::to_value(c).map_err(|e| e.to_string()));
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(subscription = %s.id, error = %e, "cannot encrypt resource data");
            None
        }
    }
}

/// A POST lane: one subscription's change notifications, or (`true`) its
/// lifecycle notices.
type Lane = (Uuid, bool);

/// What one delivery round did, for the debug log.
#[derive(Debug, Default)]
struct RoundStats {
    /// Due rows read (not in flight).
    due: usize,
    /// Subscription lanes they belong to.
    lanes: usize,
    /// POSTs started.
    posts: usize,
    /// Items in them.
    items: usize,
    /// Lanes skipped: their previous POST is still in flight.
    lane_busy: usize,
    /// Lanes skipped: their endpoint had no free POST slot.
    endpoint_busy: usize,
}

/// How many of `items` go in one POST: at most [`MAX_ITEMS_PER_POST`], and
/// no more than [`MAX_POST_BYTES`] by estimate (at least one).
fn fitting(items: &[Item]) -> usize {
    let mut bytes = 0;
    let mut n = 0;
    for (_, s) in items.iter().take(MAX_ITEMS_PER_POST) {
        // The resource string, the client state and ~1 KB of fixed fields
        // and (for rich notifications) encrypted content.
        bytes += s.resource.len() + s.client_state.as_ref().map_or(0, String::len) + 1024;
        if n > 0 && bytes > MAX_POST_BYTES {
            break;
        }
        n += 1;
    }
    n.max(1)
}

/// A URL for logs: scheme, host, port and path, never the query string
/// (receivers put secrets there).
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}{}", u.origin().ascii_serialization(), u.path()),
        Err(_) => "<unparsable url>".to_string(),
    }
}

/// A reqwest error's text without the URL (which may carry secrets in its
/// query string).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(resource_len: usize) -> Item {
        let at = chrono::DateTime::UNIX_EPOCH;
        let s = Subscription {
            resource: "x".repeat(resource_len),
            client_state: None,
            ..crate::store::sample_subscription(Uuid::new_v4(), "app", "app", &[])
        };
        let d = Delivery {
            id: 1,
            subscription: s.id,
            tenant: s.tenant,
            payload: Payload::Lifecycle {
                event: LifecycleEvent::Missed,
            },
            created_at: at,
            next_at: at,
            attempts: 0,
        };
        (d, Arc::new(s))
    }

    #[test]
    fn a_post_holds_at_most_100_items_and_about_a_megabyte() {
        let small: Vec<Item> = (0..150).map(|_| item(100)).collect();
        assert_eq!(fitting(&small), 100);
        let large: Vec<Item> = (0..100).map(|_| item(27_000)).collect();
        let n = fitting(&large);
        assert!(n < 100 && n * 28_024 <= MAX_POST_BYTES, "{n}");
        let huge = vec![item(2 * MAX_POST_BYTES)];
        assert_eq!(fitting(&huge), 1, "one item always goes");
    }

    #[test]
    fn logged_urls_never_carry_their_query_string() {
        assert_eq!(
            redacted("https://hooks.example:8443/presence?code=s3cret&x=1"),
            "https://hooks.example:8443/presence"
        );
        assert_eq!(redacted("not a url"), "<unparsable url>");
    }

    #[test]
    fn retries_back_off_from_10_seconds_doubling_to_at_most_30_minutes() {
        assert_eq!(backoff(1), TimeDelta::seconds(10));
        assert_eq!(backoff(2), TimeDelta::seconds(20));
        assert_eq!(backoff(5), TimeDelta::seconds(160));
        assert_eq!(backoff(9), TimeDelta::minutes(30));
        assert_eq!(backoff(u32::MAX), TimeDelta::minutes(30));
    }
}
