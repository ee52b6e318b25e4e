//! The other fields of a subscription request, each fed the same text:
//! `changeType`, `notificationUrl` and `lifecycleNotificationUrl` (with and
//! without emulator mode), `--webhook-allow-cidr` networks (one a line) and
//! `encryptionCertificate`. Never panics; an accepted URL obeys the scheme,
//! credential and length rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use presenced::domain::{
    AllowedNetworks, ChangeType, NotificationUrl, UrlField, MAX_NOTIFICATION_URL_LENGTH,
};
use presenced::notify::crypto::EncryptionCertificate;

fuzz_target!(|text: &str| {
    if let Err(e) = ChangeType::parse(text) {
        assert!(!e.to_string().is_empty());
    }
    let networks = AllowedNetworks::parse(&text.lines().map(str::to_owned).collect::<Vec<_>>());
    for field in [UrlField::Notification, UrlField::Lifecycle] {
        for emulator in [false, true] {
            let url = match NotificationUrl::parse(field, text, emulator) {
                Ok(url) => url,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    continue;
                }
            };
            assert!(text.chars().count() <= MAX_NOTIFICATION_URL_LENGTH);
            let scheme = url.url().scheme();
            assert!(
                scheme == "https" || (emulator && scheme == "http" && url.is_loopback_host()),
                "{text:?} accepted as {url} (emulator {emulator})"
            );
            assert!(url.url().username().is_empty() && url.url().password().is_none());
            assert!(!url.host().is_empty(), "{text:?} accepted without a host");
            let _ = url.port();
            if let (Some(ip), Ok(networks)) = (url.host_ip_literal(), &networks) {
                let _ = networks.check(field, ip);
            }
        }
    }
    if let Err(e) = EncryptionCertificate::parse(text) {
        assert!(!e.to_string().is_empty());
    }
});
