//! The real binary drains on SIGTERM and SIGINT: readiness fails and new turns get 503 at
//! once, in-flight turns complete, the process exits 0; past the grace period, what is left
//! is cancelled and logged.

use std::process::Stdio;
use std::time::Duration;

use arshai_testkit::{FakeUpstream, UpstreamOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

struct Binary {
    child: Child,
    base: String,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
    _config: tempfile::NamedTempFile,
}

async fn start_binary(upstream: &FakeUpstream, grace_seconds: f64) -> Binary {
    let mut config = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut config,
        format!(
            r#"
[server]
port = 0

[shutdown]
grace_seconds = {grace_seconds}

[providers.openai]
base_url = "{}"
api_key = "sk-test-secret"

[[agents]]
name = "assistant"
type = "conversation"
model = "fake-model"
system_prompt = "You are terse."
"#,
            upstream.base_url()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_arshai"))
        .args(["serve", "--config"])
        .arg(config.path())
        .env("ARSHAI_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("REDIS_URL")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the arshai binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if event["message"] == "arshai is serving" {
                return event["address"].as_str().unwrap().to_owned();
            }
        }
        panic!("the server exited before serving");
    })
    .await
    .expect("the server starts within 30 s");
    Binary {
        child,
        base: format!("http://{address}"),
        lines,
        _config: config,
    }
}

impl Binary {
    fn signal(&self, name: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit (bounded) and returns the exit code and the remaining log.
    async fn finish(mut self) -> (Option<i32>, String) {
        let mut log = String::new();
        let status = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                log.push_str(&line);
                log.push('\n');
            }
            self.child.wait().await.unwrap()
        })
        .await
        .expect("the server exits");
        (status.code(), log)
    }
}

async fn slow_upstream(latency: Duration) -> FakeUpstream {
    FakeUpstream::start_with(UpstreamOptions {
        latency,
        record: false,
        ..UpstreamOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn sigterm_during_50_in_flight_turns_completes_them_all_and_exits_0() {
    let upstream = slow_upstream(Duration::from_millis(1500)).await;
    let server = start_binary(&upstream, 30.0).await;
    let http = reqwest::Client::new();
    let turns: Vec<_> = (0..50)
        .map(|index| {
            let http = http.clone();
            let url = format!("{}/v1/agents/assistant/messages", server.base);
            tokio::spawn(async move {
                let response = http
                    .post(url)
                    .json(&json!({"conversation_id": format!("t{index}"), "message": "hi"}))
                    .send()
                    .await
                    .expect("an in-flight turn is not cut off");
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            })
        })
        .collect();
    while upstream.request_count() < 50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("TERM");
    // Readiness fails and new turns are refused while the 50 are still running.
    let mut ready = 200;
    for _ in 0..200 {
        ready = http
            .get(format!("{}/health/ready", server.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(ready, 503);
    let refused = http
        .post(format!("{}/v1/agents/assistant/messages", server.base))
        .json(&json!({"message": "new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    for turn in turns {
        let (status, body) = turn.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("echo: hi"), "{body}");
    }
    assert_eq!(upstream.request_count(), 50, "the refused turn never ran");
    let (code, log) = server.finish().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("every in-flight turn finished"), "{log}");
}

#[tokio::test]
async fn turns_still_running_at_the_deadline_are_cancelled_and_logged() {
    let upstream = slow_upstream(Duration::from_secs(30)).await;
    let server = start_binary(&upstream, 0.5).await;
    let http = reqwest::Client::new();
    let turns: Vec<_> = (0..3)
        .map(|_| {
            let http = http.clone();
            let url = format!("{}/v1/agents/assistant/messages", server.base);
            tokio::spawn(async move { http.post(url).json(&json!({"message": "hi"})).send().await })
        })
        .collect();
    while upstream.request_count() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("TERM");
    let (code, log) = server.finish().await;
    assert_eq!(code, Some(0), "{log}");
    let cancelled = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["cancelled_turns"].is_u64())
        .unwrap_or_else(|| panic!("no cancellation logged:\n{log}"));
    assert_eq!(cancelled["cancelled_turns"], 3);
    for turn in turns {
        assert!(turn.await.unwrap().is_err(), "the client sees the cut");
    }
}

#[tokio::test]
async fn sigint_on_an_idle_server_exits_0() {
    let upstream = slow_upstream(Duration::ZERO).await;
    let server = start_binary(&upstream, 30.0).await;
    server.signal("INT");
    let (code, log) = server.finish().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("received SIGINT"), "{log}");
}
