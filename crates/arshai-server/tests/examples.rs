//! The runnable examples, run as a newcomer would run them (their built binaries, as
//! separate processes) against the fake upstream (`OPENAI_BASE_URL`) and a real Redis.
//!
//! `cargo test` builds a package's examples before its tests, so the binaries are beside
//! this test's own executable.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use arshai_testkit::{FakeUpstream, RedisServer, Reply};
use tokio::process::Command;

/// The built example `name`.
fn example(name: &str) -> PathBuf {
    let test = std::env::current_exe().expect("the test's path");
    let path = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built (cargo test builds examples; run it without --test filters)",
        path.display()
    );
    path
}

/// Runs example `name` to its end with `env` and returns its standard output.
async fn run(name: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let mut command = Command::new(example(name));
    command.args(args).env_remove("OPENAI_API_KEY");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the example ends within a minute")
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn upstream_env(upstream: &FakeUpstream) -> Vec<(&'static str, String)> {
    vec![
        ("OPENAI_BASE_URL", upstream.base_url()),
        ("OPENAI_API_KEY", "sk-example".to_owned()),
    ]
}

#[tokio::test]
async fn stream_to_terminal_prints_the_answer_as_it_streams() {
    let upstream = FakeUpstream::start().await.unwrap();
    let out = run(
        "stream_to_terminal",
        &["Once upon a time"],
        &upstream_env(&upstream),
    )
    .await;
    assert_eq!(out.trim(), "echo: Once upon a time");
}

#[tokio::test]
async fn custom_tool_runs_the_tool_the_model_asks_for() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::tool_call(
        "word_count",
        r#"{"text":"the quick brown fox jumps"}"#,
    ));
    upstream.push(Reply::text("There are 5 words."));
    let out = run("custom_tool", &[], &upstream_env(&upstream)).await;
    assert!(out.contains("[calls word_count("), "{out}");
    assert!(out.contains("[word_count → 5]"), "{out}");
    assert!(out.contains("There are 5 words."), "{out}");
}

#[tokio::test]
async fn shared_redis_memory_continues_a_conversation_in_a_second_process() {
    let upstream = FakeUpstream::start().await.unwrap();
    let redis = RedisServer::start().await.unwrap();
    let mut env = upstream_env(&upstream);
    env.push(("REDIS_URL", redis.url()));
    let out = run("shared_redis_memory", &[], &env).await;
    let processes: std::collections::BTreeSet<&str> = out
        .lines()
        .filter_map(|line| line.strip_prefix("[process "))
        .filter_map(|rest| rest.split(']').next())
        .collect();
    assert_eq!(processes.len(), 2, "two processes answered: {out}");
    assert!(
        out.contains("the conversation has 4 messages in Redis"),
        "{out}"
    );
    assert!(out.contains("User: Hello! My name is Ada."), "{out}");
}

#[tokio::test]
async fn custom_agent_over_http_serves_and_drains() {
    let upstream = FakeUpstream::start().await.unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut child = Command::new(example("custom_agent_over_http"))
        .env_remove("OPENAI_API_KEY")
        .envs(upstream_env(&upstream))
        .env("ARSHAI_SERVER__PORT", port.to_string())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http
            .get(format!("{base}/health/live"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the example server came up");
    let answer: serde_json::Value = http
        .post(format!("{base}/v1/agents/desk/messages"))
        .json(&serde_json::json!({"message": "My invoice is wrong"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["reply"], "echo: My invoice is wrong", "{answer}");
    let requests = upstream.requests();
    let system = requests[0].body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("billing"), "routed to billing: {system}");
    let completion: serde_json::Value = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&serde_json::json!({"model": "desk",
            "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "echo: Hello"
    );
    let pid = child.id().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("drains and exits")
        .unwrap();
    assert!(status.success(), "{status}");
}
