//! Real `redis-server` processes for tests: one server, or a 3-master Redis
//! Cluster, on free loopback ports in temp dirs, durable (`appendonly yes`,
//! `appendfsync always`), killed by pid on drop. Shared by the integration
//! tests and the store's unit tests (`src/store/redis/mod.rs` includes this
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
    cli_with(port, &[], args)
}

fn cli_with(port: u16, tls: &[String], args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(tls)
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
    /// TLS only (`rediss://`): the self-signed certificate's PEM file.
    tls: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// A durable standalone server in a new temp dir.
    pub fn start() -> Self {
        Self::spawn(false)
    }

    /// A durable server speaking TLS only, with a self-signed certificate
    /// for 127.0.0.1 (see [`Self::certificate`]).
    pub fn start_tls() -> Self {
        Self::spawn_with(false, true)
    }

    /// A durable standalone server on `port` (reserved earlier with
    /// [`free_port`]).
    pub fn start_on(port: u16) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut server = Self {
            child: None,
            port,
            dir: temp.path().to_path_buf(),
            cluster: false,
            tls: None,
            _temp: Some(temp),
        };
        server.launch();
        server
    }

    fn spawn(cluster: bool) -> Self {
        Self::spawn_with(cluster, false)
    }

    fn spawn_with(cluster: bool, tls: bool) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let tls = tls.then(|| {
            let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
                .expect("a self-signed certificate");
            let (cert, key) = (temp.path().join("cert.pem"), temp.path().join("key.pem"));
            std::fs::write(&cert, made.cert.pem()).expect("write the certificate");
            std::fs::write(&key, made.key_pair.serialize_pem()).expect("write the key");
            cert
        });
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: temp.path().to_path_buf(),
            cluster,
            tls,
            _temp: Some(temp),
        };
        server.launch();
        server
    }

    /// The certificate a TLS server presents (trust it to connect).
    pub fn certificate(&self) -> Option<&Path> {
        self.tls.as_deref()
    }

    /// What redis-cli needs to reach this server.
    fn cli_tls(&self) -> Vec<String> {
        match &self.tls {
            Some(cert) => vec![
                "--tls".into(),
                "--cacert".into(),
                cert.to_string_lossy().into_owned(),
            ],
            None => vec![],
        }
    }

    fn launch(&mut self) {
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            Some(cert) => {
                let cert = cert.to_string_lossy().into_owned();
                let key = self.dir.join("key.pem").to_string_lossy().into_owned();
                cmd.args(["--port", "0", "--tls-port", &port])
                    .args(["--tls-cert-file", &cert, "--tls-key-file", &key])
                    .args(["--tls-ca-cert-file", &cert, "--tls-auth-clients", "no"]);
            }
            None => {
                cmd.args(["--port", &port]);
            }
        }
        cmd.args(["--bind", "127.0.0.1", "--dir", &dir])
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
        let (port, tls) = (self.port, self.cli_tls());
        wait_for(
            Duration::from_secs(10),
            &format!("redis-server on port {port} answering PING"),
            || cli_with(port, &tls, &["PING"]).is_some_and(|o| o.trim() == "PONG"),
        );
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://…` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
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

    /// The `--store` URL naming every master: `redis-cluster://127.0.0.1:PORT,…`.
    pub fn store_url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis-cluster://{}", seeds.join(","))
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
