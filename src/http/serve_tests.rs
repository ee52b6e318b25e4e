//! Tests of [`super`]: the connection watch, the head budget and
//! eviction at the cap.

use super::*;

fn policy() -> ConnectionPolicy {
    ConnectionPolicy {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: 4,
    }
}

#[test]
fn a_fresh_silent_connection_expires_after_the_header_timeout() {
    let w = Watch::new(1_000);
    assert!(!w.expired(11_000, &policy()));
    assert!(w.expired(11_001, &policy()));
}

#[test]
fn a_started_head_must_finish_within_the_header_timeout() {
    let w = Watch::new(1_000);
    w.served.store(true, Ordering::Release);
    w.head_since.store(30_000, Ordering::Release);
    assert!(!w.expired(40_000, &policy()));
    assert!(w.expired(40_001, &policy()));
}

#[test]
fn a_connection_that_served_a_request_may_idle_for_the_idle_timeout() {
    let w = Watch::new(1_000);
    w.served.store(true, Ordering::Release);
    assert!(!w.expired(61_000, &policy()));
    assert!(w.expired(61_001, &policy()));
}

#[test]
fn a_busy_connection_never_expires_and_is_never_evicted() {
    let registry = Registry::default();
    let w = Arc::new(Watch::new(0));
    let busy = Busy::start(w.clone(), &registry, Instant::now());
    registry.connections.lock().unwrap().insert(1, w.clone());
    assert!(!w.expired(u64::MAX, &policy()));
    assert!(!registry.evict_longest_waiting());
    drop(busy);
    assert!(w.served.load(Ordering::Acquire));
    assert!(registry.evict_longest_waiting());
    assert!(w.close.is_cancelled());
}

#[test]
fn over_the_head_budget_only_connections_with_big_unfinished_heads_are_closed() {
    let registry = Arc::new(Registry::default());
    let watched = |registry: &Arc<Registry>| Watched {
        inner: (),
        watch: Arc::new(Watch::new(0)),
        registry: registry.clone(),
        epoch: Instant::now(),
    };
    let flooder = watched(&registry);
    let mut sent = 0;
    while flooder.count_head_bytes(8 * 1024).is_ok() {
        sent += 8 * 1024;
        assert!(sent <= HEAD_BUDGET, "the budget was never enforced");
    }
    assert!(sent + 8 * 1024 > HEAD_BUDGET);
    let ordinary = watched(&registry);
    assert!(
        ordinary.count_head_bytes(2 * 1024).is_ok(),
        "a small head is never refused"
    );
    drop(flooder);
    drop(ordinary);
    assert_eq!(
        registry.head_bytes.load(Ordering::Acquire),
        0,
        "closed connections give their bytes back"
    );
}

#[test]
fn a_started_request_no_longer_counts_its_head() {
    let registry = Arc::new(Registry::default());
    let watch = Arc::new(Watch::new(0));
    let conn = Watched {
        inner: (),
        watch: watch.clone(),
        registry: registry.clone(),
        epoch: Instant::now(),
    };
    conn.count_head_bytes(4000).unwrap();
    assert_eq!(registry.head_bytes.load(Ordering::Acquire), 4000);
    let busy = Busy::start(watch, &registry, Instant::now());
    assert_eq!(registry.head_bytes.load(Ordering::Acquire), 0);
    drop(busy);
    drop(conn);
    assert_eq!(registry.head_bytes.load(Ordering::Acquire), 0);
}

#[test]
fn the_connection_waiting_longest_is_evicted_first() {
    let registry = Registry::default();
    let (old, new) = (Arc::new(Watch::new(5)), Arc::new(Watch::new(9)));
    registry.connections.lock().unwrap().insert(1, new.clone());
    registry.connections.lock().unwrap().insert(2, old.clone());
    assert!(registry.evict_longest_waiting());
    assert!(old.close.is_cancelled());
    assert!(!new.close.is_cancelled());
}
