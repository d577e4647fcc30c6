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
