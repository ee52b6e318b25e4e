//! A subscription's `resource`: `/communications/presences/{id}` or the
//! `$filter=id in (…)` list. Never panics; an accepted resource keeps its
//! text, names 1 to 650 distinct users, and those users written in the
//! canonical filter form parse back to the same list.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use presenced::domain::{PresenceResource, MAX_SUBSCRIPTION_USERS};

fuzz_target!(|text: &str| {
    let resource = match PresenceResource::parse(text) {
        Ok(resource) => resource,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert_eq!(resource.text(), text);
    let users = resource.users();
    assert!(
        (1..=MAX_SUBSCRIPTION_USERS).contains(&users.len()),
        "{text:?}"
    );
    assert_eq!(users.iter().collect::<HashSet<_>>().len(), users.len());
    let list: Vec<String> = users.iter().map(|u| format!("'{u}'")).collect();
    let canonical = format!(
        "/communications/presences?$filter=id in ({})",
        list.join(",")
    );
    let again = PresenceResource::parse(&canonical)
        .unwrap_or_else(|e| panic!("{text:?} → {canonical:?} refused: {e}"));
    assert_eq!(again.users(), users);
});
