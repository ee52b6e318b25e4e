//! The contract run against every store (memory, SQLite, one Redis server,
//! a Redis Cluster), and the SQLite store's own cases: what survives
//! reopening the file (`sqlite_reopen`), the file itself (`sqlite_files`),
//! rows damaged at rest or under a running store (`sqlite_damage`) and
//! writes that fail inside a group commit (`sqlite_failures`).

use super::*;
use crate::clock::latest_instant;
use crate::store::memory::MemoryStore;
use crate::store::sqlite::SqliteStore;

mod sqlite_damage;
mod sqlite_failures;
mod sqlite_files;
mod sqlite_reopen;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_meets_the_contract() {
    run_contract(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
    run_state_contract(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_meets_the_contract() {
    let dirs = std::sync::Mutex::new(vec![]);
    run_contract(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        dirs.lock().unwrap().push(dir);
        async move { Arc::new(store) as Arc<dyn Store> }
    })
    .await;
    run_state_contract(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        dirs.lock().unwrap().push(dir);
        async move { Arc::new(store) as Arc<dyn Store> }
    })
    .await;
}

/// The SQLite store keeps an active user's earlier due time instead of
/// moving its index on every write, across a restart too (the resident
/// copy loads the stored time); a write that brings the next
/// transition earlier stores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_an_earlier_due_time_across_writes_and_restarts() {
    use super::notify::{available, t0_plus};
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        active_now_and_a_minute_later(&store, k).await;
        assert_eq!(
            store.due_users(latest_instant(), 10).await.unwrap(),
            vec![(k, t0_plus(5))]
        );
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    store
        .upsert_session(k, available(t0_plus(2)), t0_plus(2))
        .await
        .unwrap();
    assert_eq!(
        store.due_users(latest_instant(), 10).await.unwrap(),
        vec![(k, t0_plus(5))]
    );
    // Expiring at +4 minutes: earlier than the stored +5.
    let short = Session {
        expires_at: t0_plus(4),
        ..available(t0_plus(2))
    };
    store.upsert_session(k, short, t0_plus(2)).await.unwrap();
    assert_eq!(
        store.due_users(latest_instant(), 10).await.unwrap(),
        vec![(k, t0_plus(4))]
    );
}

/// Stores on `target`, each in a fresh namespace (the contract expects
/// a fresh store per case).
async fn redis_contract(target: crate::store::redis::Target) {
    use crate::store::redis::RedisStore;
    run_contract(|| {
        let target = target.clone();
        async move {
            let namespace = format!("contract-{}", Uuid::new_v4());
            Arc::new(RedisStore::open(&target, &namespace).await.unwrap()) as Arc<dyn Store>
        }
    })
    .await;
    run_state_contract(|| {
        let target = target.clone();
        async move {
            let namespace = format!("contract-{}", Uuid::new_v4());
            Arc::new(RedisStore::open(&target, &namespace).await.unwrap()) as Arc<dyn Store>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_meets_the_contract() {
    let server = crate::store::redis::test_server::RedisServer::start();
    redis_contract(crate::store::redis::Target::Server(server.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_meets_the_contract() {
    let cluster = crate::store::redis::test_server::RedisCluster::start();
    redis_contract(crate::store::redis::Target::Cluster(cluster.seeds())).await;
    let keys = cluster.keys_per_node();
    assert!(
        keys.iter().all(|k| *k > 0),
        "users spread over every master: {keys:?}"
    );
}

/// A raw connection to a store's database, for damaging it.
fn raw(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(SqliteStore::file_in(dir)).unwrap()
}

/// SQLite's literal for a uuid column value.
fn blob(id: Uuid) -> String {
    format!("X'{}'", id.simple())
}
