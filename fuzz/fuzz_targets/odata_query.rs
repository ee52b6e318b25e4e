//! The query string of a presence read (`$select`, SPEC §2). Never panics;
//! a selection always starts with `id` and names each property once.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use presenced::domain::{PresenceProperty, PresenceQuery};

fuzz_target!(|text: &str| {
    match PresenceQuery::try_from(text) {
        Ok(query) => {
            if let Some(selected) = query.selected() {
                assert_eq!(selected.first(), Some(&PresenceProperty::Id));
                let distinct: HashSet<_> = selected.iter().collect();
                assert_eq!(distinct.len(), selected.len());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
