//! The `Last-Event-ID` header of `GET /_presenced/events`, as any header
//! value the HTTP layer lets through. Never panics; an accepted value is a
//! decimal `u64` between optional whitespace, anything else a 400.
#![no_main]

use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use presenced::http::events::last_event_id;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert("last-event-id", value);
    match last_event_id(&headers) {
        Ok(None) => panic!("a present header read as absent"),
        Ok(Some(id)) => {
            let text = std::str::from_utf8(data).expect("an accepted value is ASCII");
            let digits = text.trim().strip_prefix('+').unwrap_or(text.trim());
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
            assert_eq!(digits.parse::<u64>(), Ok(id));
        }
        Err(e) => {
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.code, "invalidRequest");
        }
    }
});
