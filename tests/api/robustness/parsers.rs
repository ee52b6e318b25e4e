//! Pure parsers fed arbitrary and near-miss input never panic: durations,
//! date-times, zones, `$filter`, change types, URLs, networks, certificates,
//! rates, GUIDs, `Authorization` headers and JSON bodies.

use chrono::{DateTime, Datelike, TimeDelta, Timelike};
use presenced::auth::bearer_token;
use presenced::clock::{earliest_instant, latest_instant};
use presenced::domain::{
    format_duration, format_local, parse_duration, parse_guid, parse_local_date_time,
    AllowedNetworks, ChangeType, ClearPresenceBody, LocationBody, NotificationUrl,
    PresenceResource, SetPreferredBody, SetPresenceBody, SetStatusMessageBody, StatusMessageInput,
    TimeZoneName, UrlField, MAX_NOTIFICATION_URL_LENGTH, MAX_PLACE_ID_CHARS,
    MAX_STATUS_MESSAGE_CHARS, MAX_SUBSCRIPTION_USERS, SESSION_MAX, SESSION_MIN,
};
use presenced::http::throttle::RateLimit;
use presenced::notify::crypto::EncryptionCertificate;
use presenced::notify::subscriptions::CreateBody;
use proptest::collection::vec;
use proptest::prelude::*;
use uuid::Uuid;

use super::bodies::{
    check_change, clear_presence_body, clock_instant, content_like, deserialize, json_value,
    location_body, set_preferred_body, set_presence_body, status_message_body,
};
use super::subscriptions::{certificate_like, filter_like, network_like, url_like};
use super::times::{date_time_like, duration_like, zone_like, SAMPLE_ZONES};
use super::{arbitrary_text, config, edited, guid_text, or_arbitrary, pick, recased, CASES};
use crate::helpers::APP;

// ---------------------------------------------------------------------------
// Pure parsers
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn arbitrary_durations_never_panic(text in or_arbitrary(duration_like())) {
        match parse_duration(&text) {
            Ok(d) => {
                prop_assert!(d.0 >= TimeDelta::zero(), "{:?}", d);
                let canonical = format_duration(d.0);
                prop_assert_eq!(
                    parse_duration(&canonical).map(|c| c.0),
                    Ok(d.0),
                    "{} renders as {}",
                    text,
                    canonical
                );
                match d.within(&text, SESSION_MIN, SESSION_MAX) {
                    Ok(t) => prop_assert!((SESSION_MIN..=SESSION_MAX).contains(&t)),
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_local_date_times_never_panic(text in or_arbitrary(date_time_like())) {
        match parse_local_date_time(&text) {
            Ok(local) => {
                prop_assert!(local.nanosecond() < 1_000_000_000, "{}", local);
                let rendered = format_local(local);
                prop_assert_eq!(
                    rendered.split_once('.').map(|(_, f)| f.len()),
                    Some(7),
                    "{}",
                    rendered
                );
                if (0..=9999).contains(&local.year()) {
                    prop_assert_eq!(parse_local_date_time(&rendered), Ok(local), "{}", rendered);
                }
                for name in SAMPLE_ZONES {
                    let zone = TimeZoneName::parse(name).unwrap();
                    let back = zone.to_local(zone.to_utc(local));
                    // A gap moves a reading forward by its length, at most a day.
                    prop_assert!(
                        (back - local).abs() <= TimeDelta::days(1),
                        "{} in {} reads back {}",
                        local,
                        name,
                        back
                    );
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_zone_names_never_panic(
        name in or_arbitrary(zone_like()),
        secs in -62_135_596_800i64..=253_402_300_799,
    ) {
        match TimeZoneName::parse(&name) {
            Ok(zone) => {
                prop_assert_eq!(zone.name(), name.as_str());
                let edges = [
                    parse_local_date_time("0001-01-01T00:00:00").unwrap(),
                    parse_local_date_time("9999-12-31T23:59:59.9999999").unwrap(),
                    DateTime::from_timestamp(secs, 0).unwrap().naive_utc(),
                ];
                for local in edges {
                    let back = zone.to_local(zone.to_utc(local));
                    prop_assert!((back - local).abs() <= TimeDelta::days(1), "{} → {}", local, back);
                }
                let _ = zone.to_local(earliest_instant());
                let _ = zone.to_local(latest_instant());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_subscription_resources_never_panic(text in or_arbitrary(filter_like())) {
        match PresenceResource::parse(&text) {
            Ok(resource) => {
                prop_assert_eq!(resource.text(), text.as_str());
                let users = resource.users();
                prop_assert!((1..=MAX_SUBSCRIPTION_USERS).contains(&users.len()), "{}", users.len());
                let distinct: std::collections::HashSet<_> = users.iter().collect();
                prop_assert_eq!(distinct.len(), users.len(), "users repeat");
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_change_types_never_panic(
        text in or_arbitrary(
            vec(
                recased(pick(&["updated", " updated ", "created", "deleted", "", "updated\u{0}", "updatedd"])),
                1..4,
            )
            .prop_map(|entries| entries.join(","))
        ),
    ) {
        let only_updated = text.split(',').all(|e| e.trim().eq_ignore_ascii_case("updated"));
        match ChangeType::parse(&text) {
            Ok(change_type) => {
                prop_assert!(only_updated, "{:?} accepted", text);
                prop_assert_eq!(change_type.as_str(), "updated");
            }
            Err(e) => {
                prop_assert!(!only_updated, "{:?} refused", text);
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_notification_urls_never_panic(
        text in or_arbitrary(url_like()),
        emulator in any::<bool>(),
        lifecycle in any::<bool>(),
    ) {
        let field = if lifecycle { UrlField::Lifecycle } else { UrlField::Notification };
        match NotificationUrl::parse(field, &text, emulator) {
            Ok(url) => {
                prop_assert!(text.chars().count() <= MAX_NOTIFICATION_URL_LENGTH);
                let scheme = url.url().scheme();
                prop_assert!(
                    scheme == "https" || (emulator && scheme == "http" && url.is_loopback_host()),
                    "{} accepted (emulator: {})",
                    url,
                    emulator
                );
                prop_assert!(url.url().username().is_empty() && url.url().password().is_none());
                prop_assert!(!url.host().is_empty(), "{}", url);
                let _ = url.port();
                if let Some(ip) = url.host_ip_literal() {
                    let _ = AllowedNetworks::default().permits(ip);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_allowed_networks_never_panic(list in vec(or_arbitrary(network_like()), 0..4)) {
        match AllowedNetworks::parse(&list) {
            Ok(networks) => {
                prop_assert_eq!(networks.networks().len(), list.len());
                for net in networks.networks() {
                    let addr = net.addr();
                    // IPv4-mapped rules are kept as the IPv4 networks they mean.
                    prop_assert_eq!(addr.to_canonical(), addr);
                    prop_assert!(networks.permits(addr), "{} not permitted by {}", addr, net);
                }
                for ip in ["127.0.0.1", "::1", "8.8.8.8", "::ffff:10.0.0.1", "fe80::1"] {
                    let _ = networks.permits(ip.parse().unwrap());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_encryption_certificates_never_panic(text in certificate_like()) {
        match EncryptionCertificate::parse(&text) {
            Ok(cert) => {
                let thumbprint = cert.thumbprint();
                prop_assert_eq!(thumbprint.len(), 40);
                prop_assert!(thumbprint.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
                prop_assert!(!cert.der().is_empty());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_rate_limits_never_panic(
        text in or_arbitrary(prop_oneof![
            "\\s{0,2}[+-]?[0-9]{0,25}\\s{0,2}/\\s{0,2}[+-]?[0-9]{0,25}[smhdéS ]?\\s{0,2}",
            edited(pick(&[
                "1500/30s", "1/86400s", "1/86401s", "1/1440m", "1/1441m", "1/24h", "1/25h",
                "0/1s", "1/0s", "4294967295/1s", "4294967296/1s", "1/18446744073709551615h",
                "1/5124095576030432h", "/", "1/", "/1s", "1/s", "1/1é", "1/1", "1 / 1 s",
            ])),
        ]),
    ) {
        match RateLimit::parse(&text) {
            Ok(limit) => {
                prop_assert!(limit.requests >= 1);
                prop_assert!((1..=86_400).contains(&limit.window.as_secs()), "{:?}", limit);
                prop_assert_eq!(limit.window.subsec_nanos(), 0);
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }

    #[test]
    fn arbitrary_guids_and_status_messages_never_panic(
        id in or_arbitrary(guid_text()),
        content in content_like(),
        content_type in prop::option::of(or_arbitrary(recased(pick(&["text", "html"])))),
    ) {
        match parse_guid(&id) {
            Ok(guid) => prop_assert!(id.eq_ignore_ascii_case(&guid.to_string()), "{} read as {}", id, guid),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        match StatusMessageInput::parse(&content, content_type.as_deref()) {
            Ok(input) => prop_assert!(input.content.chars().count() <= MAX_STATUS_MESSAGE_CHARS),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_authorization_headers_never_panic(
        header in prop_oneof![
            arbitrary_text(),
            (recased(pick(&["Bearer", "Basic", "Bearer:", ""])), pick(&[" ", "  ", "\t", ""]), arbitrary_text())
                .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        ],
    ) {
        match bearer_token(Some(&header)) {
            Ok(token) => {
                prop_assert!(!token.is_empty());
                prop_assert_eq!(token, token.trim());
                prop_assert!(header.contains(token));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn arbitrary_json_bodies_never_panic(body in json_value(), now in clock_instant()) {
        if let Some(b) = deserialize::<SetPresenceBody>(&body)? {
            check_change(b.into_change(APP, now), now)?;
        }
        if let Some(b) = deserialize::<ClearPresenceBody>(&body)? {
            check_change(b.into_change(APP), now)?;
        }
        if let Some(b) = deserialize::<SetPreferredBody>(&body)? {
            check_change(b.into_change(now), now)?;
        }
        if let Some(b) = deserialize::<SetStatusMessageBody>(&body)? {
            check_change(b.into_change(now), now)?;
        }
        if let Some(b) = deserialize::<LocationBody>(&body)? {
            let _ = b.into_layer(now);
        }
        let _ = deserialize::<CreateBody>(&body)?;
    }

    #[test]
    fn near_miss_presence_bodies_never_panic(
        presence in set_presence_body(),
        clear in clear_presence_body(),
        preferred in set_preferred_body(),
        now in clock_instant(),
    ) {
        if let Some(b) = deserialize::<SetPresenceBody>(&presence)? {
            check_change(b.into_change(APP, now), now)?;
        }
        if let Some(b) = deserialize::<ClearPresenceBody>(&clear)? {
            check_change(b.into_change(APP), now)?;
        }
        if let Some(b) = deserialize::<SetPreferredBody>(&preferred)? {
            check_change(b.into_change(now), now)?;
        }
    }

    #[test]
    fn near_miss_status_message_and_location_bodies_never_panic(
        status in status_message_body(),
        location in location_body(),
        now in clock_instant(),
    ) {
        if let Some(b) = deserialize::<SetStatusMessageBody>(&status)? {
            check_change(b.into_change(now), now)?;
        }
        if let Some(b) = deserialize::<LocationBody>(&location)? {
            match b.into_layer(now) {
                Ok(layer) => {
                    prop_assert_eq!(layer.set_at, now);
                    if let Some(place) = &layer.place_id {
                        prop_assert!(!place.is_empty() && place.chars().count() <= MAX_PLACE_ID_CHARS);
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn filters_naming_more_than_650_distinct_users_are_refused(
        distinct in 645usize..=655,
        repeats in 0usize..5,
        key in pick(&["$filter", "%24filter", "$FILTER"]),
        quote in pick(&["'", "%27"]),
        sep in pick(&[",", "%2C", " , "]),
        seed in any::<u128>(),
    ) {
        let ids: Vec<Uuid> = (0..distinct)
            .map(|i| Uuid::from_u128(seed.wrapping_add(i as u128)))
            .collect();
        let mut texts: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        texts.extend(ids.iter().take(repeats).map(|u| u.to_string().to_uppercase()));
        let list: Vec<String> = texts.iter().map(|t| format!("{quote}{t}{quote}")).collect();
        let text = format!("/communications/presences?{key}=id in ({})", list.join(&sep));
        match PresenceResource::parse(&text) {
            Ok(resource) => {
                prop_assert!(distinct <= MAX_SUBSCRIPTION_USERS, "{} distinct accepted", distinct);
                prop_assert_eq!(resource.users(), &ids[..]);
            }
            Err(e) => {
                prop_assert!(distinct > MAX_SUBSCRIPTION_USERS, "{} distinct refused: {}", distinct, e);
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}
