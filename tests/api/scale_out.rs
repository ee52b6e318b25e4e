//! Several presenced nodes on one Redis or one Redis Cluster (issue #15):
//! the real binary with `--store redis://…` / `redis-cluster://…`, real
//! `redis-server` processes on loopback, killed by pid.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::helpers::Reply;
use crate::process::{mint, Proc};
use crate::redis_server::{RedisCluster, RedisServer};

const APP: &str = "app-scale-out";

/// A node on `store`; the nodes share `data` for the token secret only.
fn node(data: &Path, store: &str) -> Proc {
    Proc::start(&["--data-dir", data.to_str().unwrap(), "--store", store])
}

fn app_token(data: &Path, tenant: Uuid) -> String {
    mint(
        data,
        tenant,
        None,
        APP,
        None,
        Some("Presence.ReadWrite.All Presence.Read.All"),
    )
}

async fn set_presence(
    node: &Proc,
    token: &str,
    user: Uuid,
    availability: &str,
    activity: &str,
) -> Reply {
    let body = json!({"sessionId": APP, "availability": availability, "activity": activity, "expirationDuration": "PT1H"});
    node.send(
        reqwest::Method::POST,
        &format!("/v1.0/users/{user}/presence/setPresence"),
        token,
        Some(body),
    )
    .await
}

async fn presence_of(node: &Proc, token: &str, user: Uuid) -> Reply {
    node.send(
        reqwest::Method::GET,
        &format!("/v1.0/users/{user}/presence"),
        token,
        None,
    )
    .await
}

async fn readyz(node: &Proc) -> Reply {
    node.send(reqwest::Method::GET, "/_presenced/readyz", "", None)
        .await
}

/// Writes on each node are read on the other.
async fn writes_cross_between(a: &Proc, b: &Proc, token: &str, users: &[Uuid]) {
    for (i, user) in users.iter().enumerate() {
        let (writer, reader) = if i % 2 == 0 { (a, b) } else { (b, a) };
        set_presence(writer, token, *user, "Busy", "InACall")
            .await
            .ok_empty();
        let read = presence_of(reader, token, *user).await;
        let body = read.ok_json();
        assert_eq!(
            (body["availability"].as_str(), body["activity"].as_str()),
            (Some("Busy"), Some("InACall")),
            "user {i}: {body}"
        );
    }
}

#[tokio::test]
async fn two_nodes_on_one_redis_read_each_others_writes() {
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let a = node(data.path(), &redis.url());
    let b = node(data.path(), &redis.url());
    let token = app_token(data.path(), Uuid::new_v4());
    let users: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();

    writes_cross_between(&a, &b, &token, &users).await;

    set_presence(&b, &token, users[0], "Away", "Away")
        .await
        .ok_empty();
    assert_eq!(
        presence_of(&a, &token, users[0]).await.ok_json()["availability"],
        "Away",
        "a later write on B replaces A's for readers on A"
    );
}

#[tokio::test]
async fn two_nodes_on_a_three_master_cluster_read_each_others_writes() {
    let cluster = RedisCluster::start();
    let seeds: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let store = format!("redis-cluster://{}", seeds.join(","));
    let data = tempfile::tempdir().unwrap();
    let a = node(data.path(), &store);
    let b = node(data.path(), &store);
    let token = app_token(data.path(), Uuid::new_v4());
    let users: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();

    writes_cross_between(&a, &b, &token, &users).await;

    let keys = cluster.keys_per_node();
    assert!(
        keys.iter().all(|k| *k > 0),
        "users spread over every master: {keys:?}"
    );
}

#[tokio::test]
async fn while_redis_is_down_requests_get_503_and_the_node_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let server = node(data.path(), &redis.url());
    let token = app_token(data.path(), Uuid::new_v4());
    let (written, refused) = (Uuid::new_v4(), Uuid::new_v4());
    set_presence(&server, &token, written, "Busy", "InACall")
        .await
        .ok_empty();
    assert_eq!(readyz(&server).await.ok_json()["status"], "ready");

    redis.kill();

    readyz(&server).await.error(503, "serviceNotAvailable");
    let write = set_presence(&server, &token, refused, "Busy", "InACall").await;
    write.error(503, "serviceNotAvailable");
    assert_eq!(write.headers["retry-after"], "5");
    presence_of(&server, &token, written)
        .await
        .error(503, "serviceNotAvailable");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(&server).await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "the node did not become ready again after redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        presence_of(&server, &token, written).await.ok_json()["availability"],
        "Busy",
        "the write acknowledged before the restart survived it"
    );
    set_presence(&server, &token, refused, "Away", "Away")
        .await
        .ok_empty();
}
