//! The fleet as the scaling guide draws it, for real: one Redis, three `arshai` processes and
//! nginx balancing across them on loopback. Any instance serves any conversation, and turns
//! racing on one conversation through different instances are all recorded.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use arshai_testkit::{FakeUpstream, RedisServer};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const INSTANCES: usize = 3;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Polls `url` until it answers 200, for at most 30 s.
async fn wait_until_up(http: &reqwest::Client, url: &str, child: &mut Child) -> anyhow::Result<()> {
    for _ in 0..300 {
        if let Some(status) = child.try_wait()? {
            bail!("{url}: the process exited early with {status}");
        }
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} did not come up within 30 s")
}

/// One process (`master_process off`), so that killing it on drop leaves no orphaned worker.
fn nginx_config(dir: &Path, listen: u16, backends: &[u16]) -> String {
    let servers: String = backends
        .iter()
        .map(|port| format!("    server 127.0.0.1:{port};\n"))
        .collect();
    let d = dir.display();
    format!(
        "master_process off;\nworker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  log_format upstream '$upstream_addr';\n  access_log {d}/access.log upstream;\n\
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         upstream arshai {{\n{servers}    keepalive 16;\n  }}\n\
         server {{\n    listen 127.0.0.1:{listen};\n    location / {{\n      proxy_pass http://arshai;\n\
         proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_instance_serves_any_conversation_behind_nginx() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir()?;

    let mut children = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..INSTANCES {
        let port = free_port()?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_arshai"))
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .env("REDIS_URL", redis.url())
            .env("OPENAI_BASE_URL", upstream.base_url())
            .env("OPENAI_API_KEY", "sk-fleet")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawn arshai")?;
        wait_until_up(
            &http,
            &format!("http://127.0.0.1:{port}/health"),
            &mut child,
        )
        .await?;
        children.push(child);
        ports.push(port);
    }

    let listen = free_port()?;
    let config = dir.path().join("nginx.conf");
    std::fs::write(&config, nginx_config(dir.path(), listen, &ports))?;
    let mut nginx = Command::new("nginx")
        .args(["-e", "stderr", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawn nginx (scripts/test installs it)")?;
    let base = format!("http://127.0.0.1:{listen}");
    wait_until_up(&http, &format!("{base}/health"), &mut nginx).await?;

    // Six sequential turns of one conversation, spread round-robin over the instances.
    let turn = |message: String| {
        let http = http.clone();
        let url = format!("{base}/v1/agents/assistant/messages");
        async move {
            let response = http
                .post(url)
                .json(&json!({"conversation_id": "fleet-1", "message": message}))
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await?;
            anyhow::ensure!(status == 200, "turn failed with {status}: {body}");
            anyhow::Ok(body)
        }
    };
    for i in 0..6 {
        turn(format!("turn {i}")).await?;
    }
    let last = upstream.requests().last().cloned().context("a request")?;
    let history: Vec<&str> = last.body["messages"]
        .as_array()
        .context("messages")?
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(
        history,
        ["turn 0", "turn 1", "turn 2", "turn 3", "turn 4", "turn 5"],
        "the sixth turn saw every earlier turn, whichever instance served it"
    );

    // Ten turns racing on one conversation through different instances: all recorded.
    let racing: Vec<_> = (0..10)
        .map(|i| tokio::spawn(turn(format!("race {i}"))))
        .collect();
    for task in racing {
        task.await??;
    }
    let check = turn("count".to_owned()).await?;
    assert_eq!(check["conversation_id"], "fleet-1");
    let last = upstream.requests().last().cloned().context("a request")?;
    let messages = last.body["messages"].as_array().context("messages")?;
    let raced = messages
        .iter()
        .filter(|m| {
            m["role"] == "user"
                && m["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("race "))
        })
        .count();
    assert_eq!(raced, 10, "no racing turn was lost");
    // Each user message is directly followed by its own answer: turns were serialized.
    for pair in messages[1..].chunks(2).filter(|pair| pair.len() == 2) {
        assert_eq!(pair[0]["role"], "user");
        assert_eq!(
            pair[1]["content"].as_str(),
            pair[0]["content"]
                .as_str()
                .map(|c| format!("echo: {c}"))
                .as_deref()
        );
    }

    let served_by: std::collections::HashSet<String> =
        std::fs::read_to_string(dir.path().join("access.log"))?
            .lines()
            .map(str::to_owned)
            .collect();
    assert!(
        served_by.len() >= INSTANCES,
        "nginx spread turns over every instance: {served_by:?}"
    );
    Ok(())
}

/// Starts one instance of the fleet on `port`, draining within 5 s on SIGTERM.
fn spawn_instance(
    port: u16,
    redis: &RedisServer,
    upstream: &FakeUpstream,
) -> anyhow::Result<Child> {
    Command::new(env!("CARGO_BIN_EXE_arshai"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("REDIS_URL", redis.url())
        .env("OPENAI_BASE_URL", upstream.base_url())
        .env("OPENAI_API_KEY", "sk-fleet")
        .env("ARSHAI_SHUTDOWN__GRACE_SECONDS", "5")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("spawn arshai")
}

/// A base port whose next `count` ports, and one more for nginx, are free now.
fn free_port_block(count: u16) -> anyhow::Result<u16> {
    for _ in 0..200 {
        let base = 20_000 + fastrand_port();
        let free =
            (1..=count + 1).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return Ok(base);
        }
    }
    bail!("no block of {count} free ports")
}

/// A pseudo-random offset below 20 000, from the clock (no extra dependency).
fn fastrand_port() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos % 20_000) as u16
}

/// scripts/fleet's own nginx configuration, for instances on `base + 1..=base + count` and
/// nginx on `listen`; single-process, so that killing it on drop leaves no worker behind.
async fn fleet_nginx_config(
    dir: &Path,
    base: u16,
    count: u16,
    listen: u16,
) -> anyhow::Result<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/fleet");
    let output = Command::new("bash")
        .args([script, "--print-nginx-config", &count.to_string()])
        .env("FLEET_BASE_PORT", base.to_string())
        .env("FLEET_PORT", listen.to_string())
        .env("FLEET_RUN_DIR", dir)
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "scripts/fleet --print-nginx-config failed"
    );
    Ok(format!(
        "master_process off;\n{}",
        String::from_utf8(output.stdout)?
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_the_fleet_nginx_fails_no_request() -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    // 30 ms per answer, so that turns are in flight whenever an instance is stopped.
    let upstream = FakeUpstream::start_with(arshai_testkit::UpstreamOptions {
        latency: Duration::from_millis(30),
        port: 0,
        record: false,
    })
    .await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let dir = tempfile::tempdir()?;
    let count: u16 = 3;
    let base = free_port_block(count + 1)?;
    let listen = base + count + 1;
    let mut children = Vec::new();
    for i in 1..=count {
        let mut child = spawn_instance(base + i, &redis, &upstream)?;
        wait_until_up(
            &http,
            &format!("http://127.0.0.1:{}/health/ready", base + i),
            &mut child,
        )
        .await?;
        children.push(child);
    }
    let config = dir.path().join("nginx.conf");
    std::fs::write(
        &config,
        fleet_nginx_config(dir.path(), base, count, listen).await?,
    )?;
    let mut nginx = Command::new("nginx")
        .args(["-e", "stderr", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("spawn nginx (scripts/test installs it)")?;
    let front = format!("http://127.0.0.1:{listen}");
    wait_until_up(&http, &format!("{front}/health"), &mut nginx).await?;

    // nginx keeps a client's request id (and makes one when there is none).
    let response = http
        .get(format!("{front}/health"))
        .header("x-request-id", "client-chosen-id")
        .send()
        .await?;
    assert_eq!(response.headers()["x-request-id"], "client-chosen-id");
    let response = http.get(format!("{front}/health")).send().await?;
    assert_eq!(
        response.headers()["x-request-id"].len(),
        32,
        "nginx's $request_id"
    );

    // Modest, bounded load: 4 clients, each one turn at a time, at most 400 turns each.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (http, stop, url) = (http.clone(), stop.clone(), format!("{front}/v1/agents/assistant/messages"));
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, Vec::new());
                for turn in 0..400 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let body = json!({"conversation_id": format!("rolling-{worker}"), "message": format!("turn {turn}")});
                    match http.post(&url).json(&body).send().await {
                        Ok(response) if response.status() == 200 => ok += 1,
                        Ok(response) => {
                            let status = response.status();
                            failed.push(format!("{status}: {}", response.text().await.unwrap_or_default()));
                        }
                        Err(error) => failed.push(error.to_string()),
                    }
                }
                (ok, failed)
            })
        })
        .collect();

    // Each instance in turn: SIGTERM, drained exit, restart, ready again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (index, child) in children.iter_mut().enumerate() {
        let port = base + 1 + index as u16;
        let pid = child.id().context("pid")?;
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        anyhow::ensure!(killed.success(), "kill -TERM {pid}");
        let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .context("an instance did not drain within 15 s")??;
        anyhow::ensure!(status.success(), "instance on {port} drained with {status}");
        *child = spawn_instance(port, &redis, &upstream)?;
        wait_until_up(
            &http,
            &format!("http://127.0.0.1:{port}/health/ready"),
            child,
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for worker in workers {
        let (worker_ok, worker_failed) = tokio::time::timeout(Duration::from_secs(60), worker)
            .await
            .context("a client did not finish")??;
        ok += worker_ok;
        failed.extend(worker_failed);
    }
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        ok as usize + failed.len()
    );
    assert!(ok >= 40, "the load ran through the restarts: {ok} turns");

    // While Redis restarts, the instances' own 503s reach the client (nginx does not mark
    // every instance failed and answer its own 502s), and turns work again at once after.
    let turn_url = format!("{front}/v1/agents/assistant/messages");
    let turn = || {
        http.post(&turn_url)
            .json(&json!({"conversation_id": "redis-restart", "message": "hi"}))
            .send()
    };
    redis.kill().await?;
    for _ in 0..3 {
        let response = turn().await?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .context("arshai's JSON error, not nginx's page")?;
        assert_eq!(status, 503, "{body}");
        assert!(body["error"]["type"].is_string(), "{body}");
    }
    redis.restart().await?;
    let response = turn().await?;
    assert_eq!(response.status(), 200, "served at once after Redis is back");
    Ok(())
}
