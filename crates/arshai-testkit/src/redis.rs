//! Real `redis-server` processes for tests: standalone, a 3-master cluster, and a master +
//! replica + sentinel group.
//!
//! Every process listens on an ephemeral loopback port, keeps its files in its own temporary
//! directory, is killed when its handle is dropped, and every wait here is bounded.

use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Longest wait for a server to answer `PING` after it is spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for a cluster or a sentinel group to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between polls.
const POLL: Duration = Duration::from_millis(25);

/// A port on 127.0.0.1 that was free a moment ago (and, with `bus`, so was port + 10000,
/// which Redis Cluster uses for its bus).
fn free_port(bus: bool) -> anyhow::Result<u16> {
    for _ in 0..100 {
        let listener = StdTcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        if !bus {
            return Ok(port);
        }
        if port < 55_535 && StdTcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free loopback port found")
}

/// Sends `PING` over a raw socket; `true` on `+PONG` (or `-NOAUTH`: up, with a password).
async fn pings(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n" || &reply == b"-NOAUTH")
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Runs `redis-cli -p PORT ARGS…` and returns its standard output (bounded by `SETTLE_TIMEOUT`).
pub async fn redis_cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::time::timeout(
        SETTLE_TIMEOUT,
        Command::new("redis-cli")
            .arg("-h")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("redis-cli did not finish in time")?
    .context("cannot run redis-cli (install redis-tools)")?;
    if !output.status.success() {
        bail!(
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Polls `check` until it returns `Some`, at most `timeout`.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One `redis-server` (or sentinel) process on a loopback port. Killed on drop.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    // Kept last so the directory outlives the process.
    _temp: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// Starts a standalone server with persistence off.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts a server with extra `redis-server` arguments (`["--maxmemory", "10mb"]`).
    pub async fn start_with(extra: &[&str]) -> anyhow::Result<Self> {
        let cluster = extra.contains(&"--cluster-enabled");
        let temp = tempfile::tempdir()?;
        let dir = temp.path().to_path_buf();
        let port = free_port(cluster)?;
        let mut args: Vec<String> = ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = Self {
            port,
            dir,
            args,
            child: None,
            _temp: Some(temp),
        };
        server.spawn(None).await?;
        Ok(server)
    }

    /// Starts a sentinel from `config` (written to `sentinel.conf` in its directory).
    async fn start_sentinel(port: u16, config: &str) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let dir = temp.path().to_path_buf();
        let file = dir.join("sentinel.conf");
        tokio::fs::write(&file, config).await?;
        let mut server = Self {
            port,
            dir,
            args: vec!["--sentinel".to_owned()],
            child: None,
            _temp: Some(temp),
        };
        server.spawn(Some(&file)).await?;
        Ok(server)
    }

    async fn spawn(&mut self, config_file: Option<&Path>) -> anyhow::Result<()> {
        let log = self.dir.join("redis.log");
        let mut command = Command::new("redis-server");
        if let Some(file) = config_file {
            command.arg(file);
        }
        command
            .args(&self.args)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .context("cannot run redis-server (install redis-server)")?;
        let port = self.port;
        let ready = wait_for(
            "redis-server to answer PING",
            READY_TIMEOUT,
            || async move { pings(port).await.then_some(()) },
        );
        tokio::select! {
            ready = ready => ready?,
            status = child.wait() => {
                let log = tokio::fs::read_to_string(&log).await.unwrap_or_default();
                bail!("redis-server exited at start ({status:?}): {log}");
            }
        }
        self.child = Some(child);
        Ok(())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the process (SIGKILL, as a crash would) and waits for it to exit.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            tokio::time::timeout(READY_TIMEOUT, child.wait())
                .await
                .context("redis-server did not exit after SIGKILL")??;
        }
        Ok(())
    }

    /// Starts the process again on the same port and directory (after [`Self::kill`]).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        let config = self.dir.join("sentinel.conf");
        let config = config.is_file().then_some(config);
        self.spawn(config.as_deref()).await
    }

    /// Runs `redis-cli` against this server.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        redis_cli(self.port, args).await
    }
}

/// A Redis Cluster of three masters (no replicas). Killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them with `redis-cli --cluster create`,
    /// and waits until every node reports `cluster_state:ok`.
    pub async fn start() -> anyhow::Result<Self> {
        let mut nodes = Vec::with_capacity(3);
        for _ in 0..3 {
            nodes.push(
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
                .await?,
            );
        }
        let addresses: Vec<String> = nodes.iter().map(RedisServer::address).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        redis_cli(nodes[0].port(), &args).await?;
        for node in &nodes {
            let port = node.port();
            wait_for("cluster_state:ok", SETTLE_TIMEOUT, || async move {
                let info = redis_cli(port, &["cluster", "info"]).await.ok()?;
                info.contains("cluster_state:ok").then_some(())
            })
            .await?;
        }
        // Every node must also know every slot's owner before clients use it.
        for node in &nodes {
            let port = node.port();
            wait_for("a full slot map", SETTLE_TIMEOUT, || async move {
                let slots = redis_cli(port, &["cluster", "shards"]).await.ok()?;
                (slots.matches("127.0.0.1").count() >= 3).then_some(())
            })
            .await?;
        }
        Ok(Self { nodes })
    }

    /// Seed node addresses (`host:port`).
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::address).collect()
    }

    /// The nodes, to kill or restart one.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }
}

/// A master, one replica and one sentinel (quorum 1) monitoring them. Killed on drop.
pub struct RedisSentinelGroup {
    master: RedisServer,
    replica: RedisServer,
    sentinel: RedisServer,
}

impl RedisSentinelGroup {
    /// The name the sentinel monitors.
    pub const MASTER_NAME: &'static str = "arshai-master";

    /// Starts the group and waits until the replica is in sync and the sentinel sees it.
    pub async fn start() -> anyhow::Result<Self> {
        let master = RedisServer::start().await?;
        let master_port = master.port().to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master_port]).await?;
        let port = replica.port();
        wait_for("the replica to sync", SETTLE_TIMEOUT, || async move {
            let info = redis_cli(port, &["info", "replication"]).await.ok()?;
            info.contains("master_link_status:up").then_some(())
        })
        .await?;
        let sentinel_port = free_port(false)?;
        let config = format!(
            "sentinel monitor {name} 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 5000\n\
             sentinel parallel-syncs {name} 1\n",
            name = Self::MASTER_NAME,
        );
        let sentinel = RedisServer::start_sentinel(sentinel_port, &config).await?;
        wait_for(
            "the sentinel to see the replica",
            SETTLE_TIMEOUT,
            || async move {
                let replicas =
                    redis_cli(sentinel_port, &["sentinel", "replicas", Self::MASTER_NAME])
                        .await
                        .ok()?;
                replicas.contains(&port.to_string()).then_some(())
            },
        )
        .await?;
        Ok(Self {
            master,
            replica,
            sentinel,
        })
    }

    /// The sentinel's address (`host:port`).
    pub fn sentinel_address(&self) -> String {
        self.sentinel.address()
    }

    /// The port the sentinel names as master now.
    pub async fn current_master_port(&self) -> anyhow::Result<u16> {
        let reply = self
            .sentinel
            .cli(&["sentinel", "get-master-addr-by-name", Self::MASTER_NAME])
            .await?;
        reply
            .lines()
            .nth(1)
            .context("the sentinel names no master")?
            .trim()
            .parse()
            .context("the sentinel's master port is not a number")
    }

    /// The first master.
    pub fn master_mut(&mut self) -> &mut RedisServer {
        &mut self.master
    }

    /// The first replica.
    pub fn replica(&self) -> &RedisServer {
        &self.replica
    }

    /// Kills the master and waits until the sentinel has promoted the replica.
    pub async fn fail_over(&mut self) -> anyhow::Result<()> {
        // Let the replica catch up first, so the failover loses nothing written so far.
        let acked = self.master.cli(&["wait", "1", "5000"]).await?;
        anyhow::ensure!(
            acked.trim() == "1",
            "the replica did not acknowledge the master's writes before the failover: {acked}"
        );
        self.master.kill().await?;
        let replica = self.replica.port();
        let replica_cli = self.replica.port();
        let group = &*self;
        wait_for(
            "the sentinel to promote the replica",
            SETTLE_TIMEOUT,
            || async move {
                let named = group.current_master_port().await.ok()?;
                let role = redis_cli(replica_cli, &["role"]).await.ok()?;
                (named == replica && role.starts_with("master")).then_some(())
            },
        )
        .await
    }
}
