//! Tests of [`super`]: each lean path against the default format's on
//! the same events.

use std::time::Duration;

use uuid::Uuid;

use super::*;

/// Runs `log` under the default format and under [`TextFormat`] and
/// gives both outputs, timestamps cut off (each line's first 28 bytes).
fn both(log: impl Fn()) -> (String, String) {
    both_in(&[], log)
}

/// [`both`], run inside requests with `request_ids` (nested, the first
/// outermost): `request` spans for the default format, [`request`] scopes
/// for [`TextFormat`].
fn both_in(request_ids: &[Uuid], log: impl Fn()) -> (String, String) {
    let run = |lean: bool| {
        let sink = crate::logs::TestSink::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(sink.clone())
            .with_ansi(false)
            .with_max_level(Level::TRACE);
        if lean {
            let subscriber = builder
                .fmt_fields(LeanFields)
                .event_format(TextFormat::default())
                .finish();
            tracing::subscriber::with_default(subscriber, || request::in_scopes(request_ids, &log));
        } else {
            tracing::subscriber::with_default(builder.finish(), || {
                request::in_spans(request_ids, &log)
            });
        }
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| {
                assert_eq!(&line[26..28], "Z ", "a timestamp starts {line}");
                format!("{}\n", &line[28..])
            })
            .collect::<String>()
    };
    (run(false), run(true))
}

#[test]
fn access_lines_are_written_as_the_default_format_writes_them() {
    let tenant = uuid::Uuid::new_v4();
    let (full, lean) = both(|| {
        for route in [
            "/{version}/users/{id}/presence",
            "/with \"quotes\" and \\ and\ttab",
            "/ünïcode/\u{1b}[31m",
            "",
        ] {
            let tenant_field = Some(tracing::field::display(tenant));
            tracing::info!(
                target: ACCESS_TARGET,
                method = "GET",
                route,
                status = 200u16,
                latency_ms = 0.7662669999999999,
                request_id = "f4d9b51d-4b9b-4912-a174-432fda5ade81",
                tenant = tenant_field,
                app_id = Option::<&str>::None,
                "request"
            );
        }
        for latency_ms in [0.0, 1.0, 1e-7, 12345.678, 1e17, f64::NAN] {
            tracing::info!(target: ACCESS_TARGET, latency_ms, signed = -3i64, ok = true, "request");
        }
        tracing::error!(
            target: ACCESS_TARGET,
            status = 500u16,
            code = "generalException",
            cause = "disk full",
            "request failed"
        );
        let io = std::io::Error::other("inner");
        tracing::warn!(target: ACCESS_TARGET, error = &io as &(dyn std::error::Error + 'static), "odd");
        tracing::info!(target: ACCESS_TARGET, r#type = "raw name", "message with \u{1b} escape");
        // Other targets and lines inside spans take the default path.
        tracing::info!(target: "presenced::other", answer = 42, "not an access line");
        tracing::warn!(target: "presenced::other", path = "/a\"b", n = -1i64, "{}", "formatted");
        let span = tracing::info_span!("request", request_id = "abc", odd = "q\"uote");
        let _inside = span.enter();
        let inner = tracing::info_span!("inner", n = 7u64, flag = false);
        let _inner = inner.enter();
        tracing::info!(target: ACCESS_TARGET, status = 200u16, "request");
        tracing::error!(target: "presenced::store", user = "u1", "inside spans");
    });
    assert_eq!(lean, full);
    assert_eq!(lean.lines().count(), 17, "{lean}");
    assert!(
        lean.contains(r#"request{request_id="abc" odd="q\"uote"}:inner{n=7 flag=false}: presenced::store: inside spans user="u1""#),
        "{lean}"
    );
    assert!(
        lean.contains(r#" INFO presenced::access: request method="GET" route="/{version}/users/{id}/presence" status=200 latency_ms=0.7662669999999999"#),
        "{lean}"
    );
}

#[test]
fn lines_in_a_request_scope_are_written_as_in_its_span() {
    let ids = [Uuid::new_v4(), Uuid::new_v4()];
    let log = || {
        tracing::info!(target: "presenced::notify", url = "http://127.0.0.1:1", "failed validation");
        tracing::warn!(target: "presenced::other", path = "/a\"b", n = -1i64, "{}", "formatted");
        tracing::error!(target: ACCESS_TARGET, status = 500u16, cause = "disk full", "request failed");
        tracing::info!(target: ACCESS_TARGET, method = "GET", status = 200u16, "request");
        tracing::debug_span!("handler", tenant = "t", user = 7u64).in_scope(|| {
            tracing::info_span!("empty").in_scope(|| {
                tracing::trace!(target: "presenced::store", user = "u1", "inside spans");
            });
        });
    };
    for depth in 1..=2 {
        let (full, lean) = both_in(&ids[..depth], log);
        assert_eq!(lean, full, "{depth} request(s) deep");
        assert_eq!(lean.lines().count(), 5, "{lean}");
        let scopes: String = ids[..depth]
            .iter()
            .map(|id| format!("request{{request_id=\"{id}\"}}:"))
            .collect();
        assert!(
            lean.contains(&format!(
                "TRACE {scopes}handler{{tenant=\"t\" user=7}}:empty: presenced::store: inside spans user=\"u1\""
            )),
            "{lean}"
        );
        assert!(
            lean.contains(&format!(
                " INFO {scopes} presenced::access: request method=\"GET\" status=200"
            )),
            "{lean}"
        );
    }
}

#[test]
fn direct_access_lines_are_written_as_the_default_format_writes_them() {
    let tenant = uuid::Uuid::new_v4();
    let lines = [
        AccessLine {
            method: "GET",
            route: "/{version}/users/{id}/presence",
            status: 200,
            latency: LatencyMs { micros: 766 },
            request_id: "f4d9b51d-4b9b-4912-a174-432fda5ade81",
            client_request_id: "client-1",
            tenant: Some(tenant),
            app_id: Some("22553876-f5ab-4529-bffb-000000000000"),
        },
        AccessLine {
            method: "PROPFIND",
            route: "/no/such/route?x=1",
            status: 404,
            latency: LatencyMs { micros: 12_345_678 },
            request_id: "r",
            client_request_id: "r",
            tenant: None,
            app_id: None,
        },
        AccessLine {
            method: "POST",
            route: "/a",
            status: 401,
            latency: LatencyMs { micros: 0 },
            request_id: "r2",
            client_request_id: "c2",
            tenant: Some(tenant),
            app_id: Some(""),
        },
    ];
    let (full, _) = both(|| {
        for line in &lines {
            let tenant = line.tenant.map(tracing::field::display);
            tracing::info!(
                target: ACCESS_TARGET,
                method = line.method,
                route = line.route,
                status = line.status,
                latency_ms = line.latency.as_f64(),
                request_id = line.request_id,
                client_request_id = line.client_request_id,
                tenant,
                app_id = line.app_id,
                "request"
            );
        }
    });
    let now = DateTime::<Utc>::UNIX_EPOCH + Duration::from_micros(1_795_806_037_489_703);
    let direct: String = lines
        .iter()
        .map(|line| {
            assert!(line.plain());
            let mut text = String::new();
            format_access(&mut text, now, line).unwrap();
            assert!(text.starts_with("2026-11-27T19:00:37.489703Z "), "{text}");
            text[28..].to_string()
        })
        .collect();
    assert_eq!(direct, full);
    assert_eq!(direct.lines().count(), 3);
}

#[test]
fn access_lines_that_need_escaping_are_left_to_tracing() {
    let plain = AccessLine {
        method: "GET",
        route: "/a",
        status: 200,
        latency: LatencyMs { micros: 1000 },
        request_id: "r",
        client_request_id: "c",
        tenant: None,
        app_id: Some("app"),
    };
    assert!(plain.plain());
    for odd in [
        "with \"quote\"",
        "back\\slash",
        "tab\t",
        "ünïcode",
        "\u{1b}[31m",
    ] {
        assert!(
            !AccessLine {
                route: odd,
                ..plain
            }
            .plain(),
            "route {odd:?}"
        );
        assert!(
            !AccessLine {
                client_request_id: odd,
                ..plain
            }
            .plain(),
            "client id {odd:?}"
        );
        assert!(
            !AccessLine {
                app_id: Some(odd),
                ..plain
            }
            .plain(),
            "app id {odd:?}"
        );
    }
}

#[test]
fn timestamps_are_those_of_the_default_format() {
    let start = DateTime::<Utc>::UNIX_EPOCH + Duration::from_micros(1_795_806_037_000_000);
    // Within a second, across seconds, minutes, days and years.
    for offset in [
        0,
        1,
        999_999,
        1_000_000,
        59_999_999,
        86_399_999_999,
        86_400_000_000,
        31_536_000_000_001,
    ] {
        let now = start + Duration::from_micros(offset);
        let mut text = String::new();
        write_timestamp(&mut text, now).unwrap();
        assert_eq!(text, format!("{} ", rfc3339(now)), "{offset}");
    }
    let mut text = String::new();
    write_timestamp(&mut text, DateTime::<Utc>::UNIX_EPOCH).unwrap();
    assert_eq!(text, "1970-01-01T00:00:00.000000Z ");
    let before = DateTime::<Utc>::UNIX_EPOCH - Duration::from_micros(1_500_000);
    text.clear();
    write_timestamp(&mut text, before).unwrap();
    assert_eq!(text, "1969-12-31T23:59:58.500000Z ");
}

#[test]
fn latencies_are_written_as_debug_writes_them() {
    let mut micros: Vec<u64> = (0..200_000).collect();
    // Then across every magnitude up to the fast path's end and past it.
    let mut n: u64 = 200_000;
    while n < u64::MAX / 7 {
        micros.extend([n - 1, n, n + 1, n / 1000 * 1000, n / 10 * 10]);
        n = n * 7 / 3 + 1;
    }
    micros.extend([(1 << 52) - 1, 1 << 52, (1 << 53) + 1, u64::MAX]);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..100_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        micros.push(seed >> (seed % 64));
    }
    for micros in micros {
        let latency = LatencyMs { micros };
        let mut ours = String::new();
        write_latency(&mut ours, latency).unwrap();
        assert_eq!(ours, format!("{:?}", latency.as_f64()), "{micros} µs");
    }
    let written = |micros| {
        let mut text = String::new();
        write_latency(&mut text, LatencyMs { micros }).unwrap();
        text
    };
    assert_eq!(written(0), "0.0");
    assert_eq!(written(47), "0.047");
    assert_eq!(written(12_500), "12.5");
    assert_eq!(written(3_000), "3.0");
    assert_eq!(
        LatencyMs::of(Duration::from_nanos(47_999)),
        LatencyMs { micros: 47 },
        "truncated to the microsecond"
    );
    assert_eq!(LatencyMs::of(Duration::MAX), LatencyMs { micros: u64::MAX });
}
