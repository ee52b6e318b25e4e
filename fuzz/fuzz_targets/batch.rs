//! A `$batch` body (SPEC §3a). Never panics; an accepted batch holds 1 to
//! 20 requests with ids unique ignoring case, urls that start with `/` and
//! are printable ASCII without a fragment, dependencies inside the batch;
//! checking it against either version never panics.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use presenced::domain::{Batch, MAX_BATCH_REQUESTS};

fuzz_target!(|bytes: &[u8]| {
    let batch = match Batch::try_from(bytes) {
        Ok(batch) => batch,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let requests = batch.requests();
    assert!((1..=MAX_BATCH_REQUESTS).contains(&requests.len()));
    let ids: HashSet<String> = requests.iter().map(|r| r.id.to_ascii_lowercase()).collect();
    assert_eq!(ids.len(), requests.len());
    for r in requests {
        assert!(r.url.starts_with('/'), "{:?}", r.url);
        assert!(
            r.url.bytes().all(|b| b.is_ascii_graphic() && b != b'#'),
            "{:?}",
            r.url
        );
        assert!(r.depends_on.iter().all(|&d| d < requests.len()));
    }
    let _ = batch.check_version("v1.0");
    let _ = batch.check_version("beta");
});
