//! The rules of `notificationUrl` / `lifecycleNotificationUrl` (SPEC §7):
//! scheme, length, credentials. Where the host resolves to is judged
//! separately (`network.rs`).

use std::net::IpAddr;

use reqwest::Url;

use crate::domain::DomainError;

/// The longest notification URL accepted, in characters.
pub const MAX_NOTIFICATION_URL_LENGTH: usize = 2048;

/// Which of a subscription's two URLs is meant, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlField {
    /// `notificationUrl`, where change notifications go.
    Notification,
    /// `lifecycleNotificationUrl`, where lifecycle notifications go.
    Lifecycle,
}

impl UrlField {
    /// The JSON property name (`notificationUrl`).
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Notification => "notificationUrl",
            Self::Lifecycle => "lifecycleNotificationUrl",
        }
    }

    /// The name as Graph capitalises it in its messages (`NotificationUrl`).
    pub fn graph_name(self) -> &'static str {
        match self {
            Self::Notification => "NotificationUrl",
            Self::Lifecycle => "LifecycleNotificationUrl",
        }
    }
}

impl std::fmt::Display for UrlField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// A notification URL that passed the scheme rules: absolute, `https` (or, in
/// emulator mode, `http` to a loopback host), without credentials, at most
/// [`MAX_NOTIFICATION_URL_LENGTH`] characters. Whether its host resolves to
/// an allowed destination is a separate, later check
/// ([`AllowedNetworks::permits`](super::AllowedNetworks::permits)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationUrl(Url);

impl NotificationUrl {
    /// Validates `text` as the URL in `field`. `emulator` allows `http` to
    /// `localhost`, 127.0.0.0/8 and `[::1]`.
    pub fn parse(field: UrlField, text: &str, emulator: bool) -> Result<Self, DomainError> {
        let length = text.chars().count();
        if length > MAX_NOTIFICATION_URL_LENGTH {
            return Err(DomainError::NotificationUrlTooLong {
                field,
                length,
                max: MAX_NOTIFICATION_URL_LENGTH,
            });
        }
        // The URL is not echoed in messages: it may carry credentials.
        let url = Url::parse(text).map_err(|e| DomainError::InvalidNotificationUrl {
            field,
            reason: e.to_string(),
        })?;
        let url = Self(url);
        match url.0.scheme() {
            "https" => {}
            "http" if emulator && url.is_loopback_host() => {}
            "http" => return Err(DomainError::HttpNotificationUrl(field)),
            other => {
                return Err(DomainError::UnsupportedNotificationUrlScheme {
                    field,
                    scheme: other.to_string(),
                })
            }
        }
        if !url.0.username().is_empty() || url.0.password().is_some() {
            return Err(DomainError::NotificationUrlWithCredentials(field));
        }
        Ok(url)
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The URL as text (normalised by the parser, e.g. a lowercase host).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host as written in the URL: a domain name, an IPv4 literal, or an
    /// IPv6 literal in brackets. Never empty for an accepted URL.
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// The port to connect to (explicit, or the scheme's default).
    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(443)
    }

    /// The host's address when the URL names one literally (no resolution
    /// needed); `None` for a domain name.
    pub fn host_ip_literal(&self) -> Option<IpAddr> {
        // The parser canonicalises IP hosts (`http://2130706433/` reads
        // 127.0.0.1), so a literal always has this textual form.
        let host = self.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        host.parse().ok()
    }

    /// Whether the host is `localhost` or a loopback address literal.
    pub fn is_loopback_host(&self) -> bool {
        match self.host_ip_literal() {
            Some(ip) => ip.to_canonical().is_loopback(),
            None => {
                let name = self.host();
                let name = name.strip_suffix('.').unwrap_or(name);
                name.eq_ignore_ascii_case("localhost")
            }
        }
    }

    /// The URL, owned.
    pub fn into_url(self) -> Url {
        self.0
    }
}

impl std::fmt::Display for NotificationUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, emulator: bool) -> Result<NotificationUrl, DomainError> {
        NotificationUrl::parse(UrlField::Notification, text, emulator)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn https_urls_are_accepted_with_their_query_kept() {
        for emulator in [false, true] {
            let url = parse("https://example.com/hook?tenant=a&x=1", emulator).unwrap();
            assert_eq!(url.as_str(), "https://example.com/hook?tenant=a&x=1");
            assert_eq!(url.host(), "example.com");
            assert_eq!(url.port(), 443);
            assert_eq!(url.host_ip_literal(), None);
        }
        assert!(parse("HTTPS://Example.COM:8443/", false).is_ok());
    }

    #[test]
    fn an_http_url_is_refused_with_graphs_message() {
        let err = parse("http://example.com/hook", false).unwrap_err();
        assert_eq!(
            err,
            DomainError::HttpNotificationUrl(UrlField::Notification)
        );
        assert_eq!(
            err.to_string(),
            "NotificationUrl scheme='http' is not supported."
        );
        let err =
            NotificationUrl::parse(UrlField::Lifecycle, "http://example.com/", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "LifecycleNotificationUrl scheme='http' is not supported."
        );
    }

    #[test]
    fn http_to_loopback_is_allowed_only_in_emulator_mode() {
        for text in [
            "http://localhost:7071/api/hook",
            "http://LOCALHOST/",
            "http://127.0.0.1:8080/",
            "http://127.1.2.3/",
            "http://[::1]:9000/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(parse(text, true).is_ok(), "{text}");
            assert_eq!(
                parse(text, false),
                Err(DomainError::HttpNotificationUrl(UrlField::Notification)),
                "{text}"
            );
        }
        for text in [
            "http://example.com/",
            "http://10.0.0.1/",
            "http://localhost.example.com/",
            "http://[::2]/",
        ] {
            assert_eq!(
                parse(text, true),
                Err(DomainError::HttpNotificationUrl(UrlField::Notification)),
                "{text}"
            );
        }
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        for (text, scheme) in [
            ("ftp://example.com/", "ftp"),
            ("mailto:ops@example.com", "mailto"),
            ("ws://localhost/", "ws"),
            ("localhost:8080/hook", "localhost"),
        ] {
            assert_eq!(
                parse(text, true),
                Err(DomainError::UnsupportedNotificationUrlScheme {
                    field: UrlField::Notification,
                    scheme: scheme.to_string()
                }),
                "{text}"
            );
        }
        assert_eq!(
            parse("ftp://example.com/", false).unwrap_err().to_string(),
            "notificationUrl scheme 'ftp' is not supported; use https (http only to a loopback host in emulator mode)"
        );
    }

    #[test]
    fn relative_and_unparsable_urls_are_refused() {
        for text in [
            "",
            "/hook",
            "example.com/hook",
            "https://",
            "https://exa mple.com/",
        ] {
            assert!(
                matches!(
                    parse(text, true),
                    Err(DomainError::InvalidNotificationUrl {
                        field: UrlField::Notification,
                        ..
                    })
                ),
                "{text:?}"
            );
        }
        assert_eq!(
            parse("/hook", false).unwrap_err().to_string(),
            "notificationUrl is not a valid absolute URL: relative URL without a base"
        );
    }

    #[test]
    fn urls_with_credentials_are_refused_without_echoing_them() {
        for text in [
            "https://user:secret@example.com/",
            "https://user@example.com/",
            "https://:secret@example.com/",
        ] {
            let err = parse(text, false).unwrap_err();
            assert_eq!(
                err,
                DomainError::NotificationUrlWithCredentials(UrlField::Notification)
            );
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        assert_eq!(
            parse("https://u:p@example.com/", false)
                .unwrap_err()
                .to_string(),
            "notificationUrl must not contain a user name or password"
        );
    }

    #[test]
    fn a_url_of_2048_characters_is_accepted_and_2049_refused() {
        let base = "https://example.com/";
        let fits = format!("{base}{}", "a".repeat(2048 - base.len()));
        assert!(parse(&fits, false).is_ok());
        let long = format!("{fits}a");
        let err = NotificationUrl::parse(UrlField::Lifecycle, &long, false).unwrap_err();
        assert_eq!(
            err,
            DomainError::NotificationUrlTooLong {
                field: UrlField::Lifecycle,
                length: 2049,
                max: 2048
            }
        );
        assert_eq!(
            err.to_string(),
            "lifecycleNotificationUrl is 2049 characters long; the limit is 2048"
        );
    }

    #[test]
    fn ip_literal_hosts_are_reported_and_names_are_not() {
        assert_eq!(
            parse("https://10.1.2.3:8443/", false)
                .unwrap()
                .host_ip_literal(),
            Some(ip("10.1.2.3"))
        );
        let v6 = parse("https://[fd00::1]/", false).unwrap();
        assert_eq!(v6.host_ip_literal(), Some(ip("fd00::1")));
        assert_eq!(v6.host(), "[fd00::1]");
        assert!(!v6.is_loopback_host());
        assert_eq!(parse("http://localhost:80/", true).unwrap().port(), 80);
    }
}
