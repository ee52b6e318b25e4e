//! Real `redis-server` processes for tests: one server, or a 3-master Redis
//! Cluster, on free loopback ports in temp dirs, durable (`appendonly yes`,
//! `appendfsync always`), killed by pid on drop. Shared by the integration
//! tests and the store's unit tests (`src/store/redis.rs` includes this
//! file), so it uses std only.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MISSING: &str = "redis-server/redis-cli not found: run scripts/test.sh, which installs them (apt-get install redis-server)";

/// A port that is free now, and whose cluster bus port (+10000) is too.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{MISSING} ({e})"));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits up to `deadline` for `ready`, failing the test with `what`.
fn wait_for(deadline: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} not within {deadline:?}");
}

/// One `redis-server` child process.
pub struct RedisServer {
    child: Option<Child>,
    /// Its loopback port.
    pub port: u16,
    dir: PathBuf,
    cluster: bool,
    _temp: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// A durable standalone server in a new temp dir.
    pub fn start() -> Self {
        Self::spawn(false)
    }

    fn spawn(cluster: bool) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: temp.path().to_path_buf(),
            cluster,
            _temp: Some(temp),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port, "--bind", "127.0.0.1", "--dir", &dir])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .args(["--logfile", "redis.log"]);
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "3000"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{MISSING} ({e})"));
        self.child = Some(child);
        let port = self.port;
        wait_for(
            Duration::from_secs(10),
            &format!("redis-server on port {port} answering PING"),
            || cli(port, &["PING"]).is_some_and(|o| o.trim() == "PONG"),
        );
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The temp dir holding its append-only file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills it with SIGKILL (no chance to flush anything) and waits.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and dir (after [`Self::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three cluster-enabled masters joined with `redis-cli --cluster create`.
pub struct RedisCluster {
    /// The masters.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three masters and waits for `cluster_state:ok` on each.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::spawn(true)).collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let created = cli(nodes[0].port, &args);
        assert!(created.is_some(), "redis-cli --cluster create failed");
        for n in &nodes {
            let port = n.port;
            wait_for(
                Duration::from_secs(20),
                &format!("cluster_state:ok on port {port}"),
                || cli(port, &["CLUSTER", "INFO"]).is_some_and(|o| o.contains("cluster_state:ok")),
            );
        }
        Self { nodes }
    }

    /// Every master as `redis://127.0.0.1:PORT`.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// How many keys each master holds.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| {
                cli(n.port, &["DBSIZE"])
                    .and_then(|o| o.trim().parse().ok())
                    .unwrap_or(0)
            })
            .collect()
    }
}
