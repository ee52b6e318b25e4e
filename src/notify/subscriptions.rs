//! Graph presence subscriptions (SPEC §7): create, list, get, renew,
//! delete and reauthorize, with Graph's rules, the validation handshake and
//! the destination checks. The HTTP layer authenticates and renders; the
//! decisions are here and in `domain::subscription`.

use std::time::Duration;

use serde::Deserialize;
use uuid::Uuid;

use super::crypto::{CertificateError, EncryptionCertificate};
use super::Notifier;
use crate::clock::Instant;
use crate::domain::{
    check_certificate_id, check_client_state, subscription_expiry, ChangeType, DomainError,
    NotificationUrl, PresenceResource, SubscriptionLimits, UrlField,
};
use crate::store::conflict_with;
use crate::store::{StoreError, Subscription, SubscriptionConflict};

/// How long a receiver has to answer the validation request (SPEC §7).
pub const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);

/// The `latestSupportedTlsVersion` values Graph accepts.
const TLS_VERSIONS: [&str; 4] = ["v1_0", "v1_1", "v1_2", "v1_3"];

/// Who asks: the verified caller, in the words subscriptions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's tenant.
    pub tenant: Uuid,
    /// The calling application.
    pub app_id: String,
    /// The signed-in user of a delegated token.
    pub user: Option<Uuid>,
}

impl Caller {
    /// Whether `s` is the caller's own: same app and, for delegated
    /// tokens, same user.
    fn owns(&self, s: &Subscription) -> bool {
        s.tenant == self.tenant
            && s.app_id == self.app_id
            && (self.user.is_none() || s.owner == self.user)
    }
}

/// Why a receiver failed the validation handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationFailure {
    /// It answered, but not `200`.
    NotOk,
    /// It answered `200` with something other than the token.
    WrongEcho,
    /// It did not answer within 10 seconds.
    TimedOut,
    /// It could not be reached.
    Unreachable,
}

/// Why a subscription request failed; the HTTP layer renders each as
/// Graph does (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// A broken rule (400).
    #[error(transparent)]
    Rule(#[from] DomainError),
    /// A required field is missing (400).
    #[error("{0} is required.")]
    Missing(&'static str),
    /// A field that is not valid (400), with the message to show.
    #[error("{0}")]
    Invalid(String),
    /// The encryption certificate cannot be used (400).
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// Not allowed for this caller under Graph's limits (403).
    #[error("Operation: Create; Exception: [Status Code: Forbidden; Reason: The request is not authorized for this user or application.]")]
    NotAuthorized,
    /// A conflicting subscription exists (409).
    #[error("{}", conflict_message(.0))]
    Conflict(SubscriptionConflict),
    /// No such subscription for this caller (404).
    #[error("The object was not found.")]
    NotFound,
    /// The receiver failed the validation handshake (400).
    #[error("{}", validation_message(*.0))]
    Validation(ValidationFailure),
    /// The destination is an internal address (400).
    #[error("{0}")]
    InternalDestination(String),
    /// The store failed (503 while unavailable, 500 for corrupt data).
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn conflict_message(c: &SubscriptionConflict) -> String {
    match c {
        SubscriptionConflict::SameCombination(id) => {
            format!("Subscription Id {id} already exists for the requested combination")
        }
        SubscriptionConflict::OnePerUserAndApp(_) => "Operation: Create; Exception: [Status Code: Conflict; Reason: A subscripton already exists. It must be deleted before a another can be made.]".to_string(),
    }
}

fn validation_message(f: ValidationFailure) -> &'static str {
    match f {
        ValidationFailure::NotOk | ValidationFailure::Unreachable => "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
        ValidationFailure::WrongEcho => "Subscription validation request failed. Response must exactly match validationToken query parameter.",
        ValidationFailure::TimedOut => "Subscription validation request timed out.",
    }
}

/// Body of `POST /subscriptions`. Wire names as Graph's.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateBody {
    /// Required: `updated`.
    #[schema(example = "updated")]
    change_type: Option<String>,
    /// Required: an https URL (or http on loopback) that answers the
    /// validation handshake.
    #[schema(example = "https://example.com/notify")]
    notification_url: Option<String>,
    /// Required: `/communications/presences/{id}` or
    /// `/communications/presences?$filter=id in ('{id}', …)`.
    #[schema(example = "/communications/presences/66825e03-7ef5-42da-9069-724602c31f6b")]
    resource: Option<String>,
    /// Required: RFC 3339, at most one hour ahead under Graph's limits.
    #[schema(example = "2026-11-27T10:00:00Z")]
    expiration_date_time: Option<String>,
    /// Echoed in every notification; at most 255 characters.
    client_state: Option<String>,
    /// Where lifecycle notifications go.
    lifecycle_notification_url: Option<String>,
    /// Rich notifications: encrypted resource data.
    #[serde(default)]
    include_resource_data: bool,
    /// Base64 DER X.509 certificate with an RSA key (rich notifications).
    encryption_certificate: Option<String>,
    /// The certificate's id, echoed in notifications (rich notifications).
    encryption_certificate_id: Option<String>,
    /// `v1_0` to `v1_3`; `v1_2` when absent.
    latest_supported_tls_version: Option<String>,
    /// The application id expected in validation tokens.
    notification_url_app_id: Option<String>,
    /// Not supported for presence; must be absent or null.
    notification_query_options: Option<String>,
}

/// Body of `PATCH /subscriptions/{id}`: only these may change.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchBody {
    /// The new expiry, RFC 3339.
    expiration_date_time: Option<String>,
    /// A new notification URL (validated again).
    notification_url: Option<String>,
}

/// Parses Graph's `expirationDateTime` (RFC 3339 / ISO 8601 with offset).
fn parse_expiry(text: &str) -> Result<Instant, SubscriptionError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| {
            SubscriptionError::Invalid(format!(
                "expirationDateTime '{text}' is not a date-time with an offset such as 2026-01-01T10:00:00Z."
            ))
        })
}

impl Notifier {
    /// Under Graph's limits only delegated tokens may subscribe to presence.
    fn check_caller(&self, caller: &Caller) -> Result<(), SubscriptionError> {
        if caller.user.is_none() && self.settings.limits == SubscriptionLimits::Graph {
            return Err(SubscriptionError::NotAuthorized);
        }
        Ok(())
    }

    /// `POST /subscriptions`.
    pub async fn create_subscription(
        &self,
        caller: &Caller,
        body: CreateBody,
    ) -> Result<Subscription, SubscriptionError> {
        self.check_caller(caller)?;
        let now = self.clock.now();
        let change_type = body
            .change_type
            .ok_or(SubscriptionError::Missing("changeType"))?;
        ChangeType::parse(&change_type)?;
        let notification_url = body
            .notification_url
            .ok_or(SubscriptionError::Missing("notificationUrl"))?;
        let resource_text = body
            .resource
            .ok_or(SubscriptionError::Missing("resource"))?;
        let expiry = body
            .expiration_date_time
            .ok_or(SubscriptionError::Missing("expirationDateTime"))?;
        let resource = PresenceResource::parse(&resource_text)?;
        let expires_at = subscription_expiry(parse_expiry(&expiry)?, now, self.settings.limits)?;
        check_client_state(body.client_state.as_deref())?;
        if body.notification_query_options.is_some() {
            return Err(SubscriptionError::Invalid(
                "notificationQueryOptions is not supported for presence subscriptions.".into(),
            ));
        }
        let tls = body
            .latest_supported_tls_version
            .unwrap_or_else(|| "v1_2".to_string());
        if !TLS_VERSIONS.contains(&tls.as_str()) {
            return Err(SubscriptionError::Invalid(format!(
                "latestSupportedTlsVersion '{tls}' is not one of v1_0, v1_1, v1_2, v1_3."
            )));
        }
        let url = NotificationUrl::parse(
            UrlField::Notification,
            &notification_url,
            self.settings.emulator,
        )?;
        let lifecycle = body
            .lifecycle_notification_url
            .as_deref()
            .map(|u| NotificationUrl::parse(UrlField::Lifecycle, u, self.settings.emulator))
            .transpose()?;
        let (certificate, certificate_id) = if body.include_resource_data {
            let cert = body
                .encryption_certificate
                .ok_or(SubscriptionError::Missing(
                    "encryptionCertificate (with includeResourceData)",
                ))?;
            let id = body
                .encryption_certificate_id
                .ok_or(SubscriptionError::Missing(
                    "encryptionCertificateId (with includeResourceData)",
                ))?;
            EncryptionCertificate::parse(&cert)?;
            check_certificate_id(Some(&id))?;
            (Some(cert), Some(id))
        } else {
            check_certificate_id(body.encryption_certificate_id.as_deref())?;
            (None, body.encryption_certificate_id)
        };
        let subscription = Subscription {
            id: Uuid::new_v4(),
            tenant: caller.tenant,
            app_id: caller.app_id.clone(),
            creator_id: caller
                .user
                .map_or_else(|| caller.app_id.clone(), |u| u.to_string()),
            owner: caller.user,
            resource: resource_text,
            users: resource.users().to_vec(),
            change_type,
            client_state: body.client_state,
            notification_url,
            lifecycle_url: body.lifecycle_notification_url,
            expires_at,
            include_resource_data: body.include_resource_data,
            encryption_certificate: certificate,
            encryption_certificate_id: certificate_id,
            latest_supported_tls_version: tls,
            notification_url_app_id: body.notification_url_app_id,
            reauthorization_sent: false,
            created_at: now,
        };
        let one_per_user = self.settings.limits == SubscriptionLimits::Graph;
        // A conflict is known before any receiver is bothered with a
        // handshake; the store checks again, atomically, when it inserts.
        let existing = self
            .store
            .subscriptions_of(caller.tenant, &caller.app_id)
            .await?;
        if let Some(conflict) = conflict_with(existing.iter(), &subscription, one_per_user) {
            return Err(SubscriptionError::Conflict(conflict));
        }
        self.check_destination(&url).await?;
        if let Some(l) = &lifecycle {
            self.check_destination(l).await?;
        }
        self.validate(&url).await?;
        if let Some(l) = &lifecycle {
            self.validate(l).await?;
        }
        self.store
            .create_subscription(subscription.clone(), one_per_user)
            .await?
            .map_err(SubscriptionError::Conflict)?;
        self.bus.reschedule();
        tracing::info!(subscription = %subscription.id, users = subscription.users.len(), "subscription created");
        Ok(subscription)
    }

    /// `GET /subscriptions`: the caller's own live subscriptions.
    pub async fn list_subscriptions(
        &self,
        caller: &Caller,
    ) -> Result<Vec<Subscription>, SubscriptionError> {
        let now = self.clock.now();
        Ok(self
            .store
            .subscriptions_of(caller.tenant, &caller.app_id)
            .await?
            .into_iter()
            .filter(|s| caller.owns(s) && s.expires_at > now)
            .collect())
    }

    /// `GET /subscriptions/{id}`: someone else's, another tenant's or an
    /// expired subscription is not found.
    pub async fn get_subscription(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Subscription, SubscriptionError> {
        let now = self.clock.now();
        self.store
            .subscription(caller.tenant, id)
            .await?
            .filter(|s| caller.owns(s) && s.expires_at > now)
            .ok_or(SubscriptionError::NotFound)
    }

    /// `PATCH /subscriptions/{id}`: a new expiry and/or notification URL
    /// (validated like on create).
    pub async fn update_subscription(
        &self,
        caller: &Caller,
        id: Uuid,
        body: PatchBody,
    ) -> Result<Subscription, SubscriptionError> {
        let mut s = self.get_subscription(caller, id).await?;
        let now = self.clock.now();
        if body.expiration_date_time.is_none() && body.notification_url.is_none() {
            return Err(SubscriptionError::Invalid(
                "Give expirationDateTime and/or notificationUrl to update.".into(),
            ));
        }
        if let Some(text) = &body.expiration_date_time {
            s.expires_at = subscription_expiry(parse_expiry(text)?, now, self.settings.limits)?;
            s.reauthorization_sent = false;
        }
        if let Some(text) = body.notification_url {
            let url =
                NotificationUrl::parse(UrlField::Notification, &text, self.settings.emulator)?;
            if text != s.notification_url {
                self.check_destination(&url).await?;
                self.validate(&url).await?;
            }
            s.notification_url = text;
        }
        if !self.update_stored(s.clone()).await? {
            return Err(SubscriptionError::NotFound);
        }
        self.bus.reschedule();
        Ok(s)
    }

    /// `DELETE /subscriptions/{id}`: pending deliveries go with it.
    pub async fn delete_subscription(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<(), SubscriptionError> {
        let s = self.get_subscription(caller, id).await?;
        if !self.delete_stored(s.tenant, s.id).await? {
            return Err(SubscriptionError::NotFound);
        }
        Ok(())
    }

    /// `POST /subscriptions/{id}/reauthorize`: `reauthorizationRequired`
    /// may be sent again before the expiry.
    pub async fn reauthorize_subscription(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<(), SubscriptionError> {
        let mut s = self.get_subscription(caller, id).await?;
        s.reauthorization_sent = false;
        if !self.update_stored(s).await? {
            return Err(SubscriptionError::NotFound);
        }
        self.bus.reschedule();
        Ok(())
    }

    /// Refuses destinations on internal networks outside emulator mode
    /// (SPEC §7 decision), unless `--webhook-allow-cidr` allows them.
    async fn check_destination(&self, url: &NotificationUrl) -> Result<(), SubscriptionError> {
        if self.settings.emulator {
            return Ok(());
        }
        let Some(host) = url.url().host_str() else {
            return Err(SubscriptionError::Invalid(format!(
                "'{}' has no host.",
                url.url()
            )));
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.url().port_or_known_default().unwrap_or(443);
        let addrs: Vec<std::net::IpAddr> =
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(addrs) => addrs.map(|a| a.ip()).collect(),
                // Unresolvable: the handshake will report it unreachable.
                Err(_) => return Ok(()),
            };
        if let Some(ip) = addrs
            .iter()
            .find(|ip| !self.settings.allowed_networks.permits(**ip))
        {
            return Err(SubscriptionError::InternalDestination(format!(
                "The notification endpoint host '{host}' resolves to the internal address {ip}; presenced does not send webhooks to loopback, private, link-local or unspecified addresses unless the operator allows them with --webhook-allow-cidr."
            )));
        }
        Ok(())
    }

    /// The validation handshake (SPEC §7): `POST {url}?validationToken=…`
    /// with `text/plain` and no body; the receiver must answer `200` with
    /// exactly the token within 10 seconds. Redirects are not followed.
    async fn validate(&self, url: &NotificationUrl) -> Result<(), SubscriptionError> {
        let token = format!(
            "Validation: Testing client application reachability for subscription Request-Id: {}",
            Uuid::new_v4()
        );
        let mut target = url.url().clone();
        target
            .query_pairs_mut()
            .append_pair("validationToken", &token);
        let answer = self
            .client
            .post(target)
            .header("content-type", "text/plain; charset=utf-8")
            .timeout(VALIDATION_TIMEOUT)
            .send()
            .await;
        let failure = match answer {
            Err(e) if e.is_timeout() => ValidationFailure::TimedOut,
            Err(_) => ValidationFailure::Unreachable,
            Ok(r) if r.status() != reqwest::StatusCode::OK => ValidationFailure::NotOk,
            Ok(r) => match tokio::time::timeout(VALIDATION_TIMEOUT, r.text()).await {
                Ok(Ok(body)) if body == token => return Ok(()),
                Ok(_) => ValidationFailure::WrongEcho,
                Err(_) => ValidationFailure::TimedOut,
            },
        };
        tracing::info!(url = %url.url().origin().ascii_serialization(), ?failure, "notification endpoint failed validation");
        Err(SubscriptionError::Validation(failure))
    }
}
