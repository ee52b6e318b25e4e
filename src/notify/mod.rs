//! Change notifications (SPEC §7, §8): Graph subscriptions, the scheduler
//! of time-driven changes, webhook delivery from the durable outbox, and
//! the event log behind `/_presenced/events`.
//!
//! `notify` consumes what the write path recorded (the store's event log
//! and outbox) and the schedule of next transitions; it never calls back
//! into `service` or `http`. Its background tasks belong to the
//! [`crate::app::App`] that started them.

mod bus;
mod cache;
pub mod crypto;
pub mod delivery;
pub mod feed;
mod peers;
pub mod scheduler;
pub mod signing;
pub mod subscriptions;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use bus::Bus;
pub use signing::ValidationTokenSigner;

use crate::clock::{Clock, Instant};
use crate::domain::{format_local, AllowedNetworks, SubscriptionLimits};
use crate::store::Store;

/// Renders an instant as Graph's UTC timestamp with 7 fractional digits.
pub fn utc_timestamp(t: Instant) -> String {
    format!("{}Z", format_local(t.naive_utc()))
}

/// How notifications behave; from the server configuration.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Graph's subscription limits, or none (`--subscription-limits none`).
    pub limits: SubscriptionLimits,
    /// Emulator mode: plain `http` to loopback receivers is allowed.
    pub emulator: bool,
    /// Internal networks webhooks may still reach (`--webhook-allow-cidr`).
    pub allowed_networks: AllowedNetworks,
    /// How long the event log keeps events (SPEC §8: at least 24 hours).
    pub event_retention: chrono::TimeDelta,
    /// POSTs in flight per receiving endpoint.
    pub posts_per_endpoint: usize,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            limits: SubscriptionLimits::Graph,
            emulator: false,
            allowed_networks: AllowedNetworks::default(),
            event_retention: chrono::TimeDelta::hours(24),
            posts_per_endpoint: 4,
        }
    }
}

/// The notification machinery of one app: scheduler, deliveries, handshake.
pub struct Notifier {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    bus: Arc<Bus>,
    settings: NotifySettings,
    client: reqwest::Client,
    signer: ValidationTokenSigner,
    tasks: TaskTracker,
    cancel: CancellationToken,
    in_flight: Mutex<HashSet<u64>>,
    /// (subscription, lifecycle) lanes with a POST in flight.
    busy: Mutex<HashSet<(uuid::Uuid, bool)>>,
    endpoints: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Parsed subscriptions for the delivery rounds.
    subscriptions: cache::SubscriptionCache,
    pass: tokio::sync::Mutex<()>,
    last_prune: tokio::sync::Mutex<Option<Instant>>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The store key of the validation-token signing key.
const SIGNING_KEY: &str = "notification-signing-key";

impl Notifier {
    /// Builds the notifier: loads (or generates once and keeps) the
    /// validation-token signing key and the webhook HTTP client.
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        bus: Arc<Bus>,
        settings: NotifySettings,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> anyhow::Result<Self> {
        let pem = store
            .keep_secret(SIGNING_KEY, ValidationTokenSigner::generate_pem())
            .await?;
        let signer = ValidationTokenSigner::from_pem(&pem)?;
        let client = webhook_client(&settings)?;
        Ok(Self {
            store,
            clock,
            bus,
            settings,
            client,
            signer,
            tasks,
            cancel,
            in_flight: Mutex::default(),
            busy: Mutex::default(),
            endpoints: Mutex::default(),
            subscriptions: cache::SubscriptionCache::default(),
            pass: tokio::sync::Mutex::new(()),
            last_prune: tokio::sync::Mutex::new(None),
            dropped: AtomicU64::new(0),
        })
    }

    /// Starts the scheduler and the delivery worker on the app's tracker.
    pub fn start(self: &Arc<Self>) {
        self.tasks.spawn(self.clone().schedule());
        self.tasks.spawn(self.clone().deliver());
        self.tasks.spawn(self.clone().watch_peers());
    }

    /// Subscription `id` for a delivery round: from the cache, else from
    /// the store (then cached).
    async fn subscription_for_delivery(
        &self,
        tenant: uuid::Uuid,
        id: uuid::Uuid,
    ) -> Result<Option<Arc<crate::store::Subscription>>, crate::store::StoreError> {
        if let Some(s) = self.subscriptions.get(id) {
            return Ok(Some(s));
        }
        let generation = self.subscriptions.generation();
        let s = self.store.subscription(tenant, id).await?.map(Arc::new);
        if let Some(s) = &s {
            self.subscriptions.keep(generation, s.clone());
        }
        Ok(s)
    }

    /// Stores a changed subscription; false if it no longer exists.
    async fn update_stored(
        &self,
        s: crate::store::Subscription,
    ) -> Result<bool, crate::store::StoreError> {
        let id = s.id;
        let updated = self.store.update_subscription(s).await;
        self.subscriptions.forget(id);
        updated
    }

    /// Deletes a stored subscription (and its pending deliveries); false if
    /// it no longer existed.
    async fn delete_stored(
        &self,
        tenant: uuid::Uuid,
        id: uuid::Uuid,
    ) -> Result<bool, crate::store::StoreError> {
        let deleted = self.store.delete_subscription(tenant, id).await;
        self.subscriptions.forget(id);
        deleted
    }

    /// Wipes `tenant` (or everything) in the store and forgets the cached
    /// subscriptions with it ([`Store::reset`]).
    pub async fn reset(&self, tenant: Option<uuid::Uuid>) -> Result<(), crate::store::StoreError> {
        let done = self.store.reset(tenant).await;
        self.subscriptions.forget_all();
        self.bus.reschedule();
        done
    }

    /// Replaces the store's contents and forgets the cached subscriptions
    /// ([`Store::replace`]); the scheduler is woken by the caller's
    /// [`Notifier::run_due`].
    pub async fn replace(
        &self,
        contents: crate::store::Contents,
        now: Instant,
    ) -> Result<(), crate::store::StoreError> {
        let done = self.store.replace(contents, now).await;
        self.subscriptions.forget_all();
        self.bus.reschedule();
        done
    }

    /// The public keys that verify `validationTokens` (JWKS).
    pub fn jwks(&self) -> signing::JsonWebKeySet {
        self.signer.jwks()
    }

    /// The settings in force.
    pub fn settings(&self) -> &NotifySettings {
        &self.settings
    }

    /// The queued deliveries (due or waiting for a retry), earliest first,
    /// at most `limit`: what an operator or a test inspects.
    pub async fn queued(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::store::Delivery>, crate::store::StoreError> {
        self.store
            .due_deliveries(crate::clock::latest_instant(), limit, &[])
            .await
    }

    /// Deliveries dropped after 4 hours of retries since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What a background loop waits for before its next round.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// An instant of the presence clock; `None`: only a nudge.
    Clock(Option<Instant>),
    /// A span of real time.
    Real(std::time::Duration),
}

impl Notifier {
    /// Waits until `until` or a nudge on `nudge`; `false` when the app is
    /// shutting down (the loop should end).
    pub(crate) async fn idle(&self, until: Until, nudge: &tokio::sync::Notify) -> bool {
        let clock = self.clock.clone();
        let sleep = async move {
            match until {
                Until::Clock(Some(t)) => clock.sleep_until(t).await,
                Until::Clock(None) => std::future::pending().await,
                Until::Real(span) => tokio::time::sleep(span).await,
            }
        };
        tokio::select! {
            () = self.cancel.cancelled() => false,
            () = nudge.notified() => true,
            () = sleep => true,
        }
    }

    /// After a failed round: logs once and waits a second of real time (not
    /// woken by nudges, so a failing store is not hammered); `false` when
    /// shutting down.
    pub(crate) async fn back_off(&self, what: &str, error: &crate::store::StoreError) -> bool {
        tracing::error!(%error, "{what} failed; retrying in a second");
        tokio::select! {
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => true,
        }
    }
}

/// The HTTP client for webhooks and validation: no redirects (SPEC §7),
/// and outside emulator mode a resolver that refuses internal addresses,
/// so a name cannot be re-pointed at one between check and connect.
fn webhook_client(settings: &NotifySettings) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5))
        .user_agent(concat!("presenced/", env!("CARGO_PKG_VERSION")));
    if !settings.emulator {
        builder = builder.dns_resolver(Arc::new(SafeResolver {
            allowed: settings.allowed_networks.clone(),
        }));
    }
    Ok(builder.build()?)
}

/// Resolves names like the system does, then keeps only addresses that
/// webhooks may reach ([`AllowedNetworks::permits`]).
struct SafeResolver {
    allowed: AllowedNetworks,
}

impl reqwest::dns::Resolve for SafeResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| allowed.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> = format!(
                    "{host} resolves only to internal addresses, which webhooks may not reach"
                )
                .into();
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}
