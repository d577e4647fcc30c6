//! Per-node checkpoints of workflow runs against a real Redis and real processes: a worker
//! `kill -9`ed while a workflow run waits on its second agent node is taken over by another
//! worker, which restores the finished first node instead of running it again and
//! finishes the run with each agent node's turn recorded once in the conversation.

#[path = "runs_support/mod.rs"]
mod runs_support;

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use arshai_testkit::{FakeUpstream, RedisServer, Reply, UpstreamOptions};
use runs_support::Fleet;
use serde_json::{Value, json};

/// Two agent nodes on the run's conversation: `draft` answers the input, `final`
/// answers the draft.
const CONFIG: &str = r#"
[[agents]]
name = "writer"
type = "conversation"
system_prompt = "Write."

[[workflows]]
name = "two-step"
entry = "draft"
output = "/final"

[[workflows.nodes]]
name = "draft"
agent = "writer"
output = "draft"

[[workflows.nodes]]
name = "final"
agent = "writer"
input = "/draft"
output = "final"

[[workflows.edges]]
from = "draft"
to = "final"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_workflow_run_resumes_from_its_last_checkpoint() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        record: true,
        ..UpstreamOptions::default()
    })
    .await?;
    // The draft is answered at once; the final answer never comes to the first worker
    // (it is killed while waiting); the second worker's call gets the echo.
    upstream.push(Reply::text("the draft"));
    upstream.push(Reply::text("too late").delayed(Duration::from_secs(300)));
    let mut config = tempfile::NamedTempFile::new()?;
    config.write_all(CONFIG.as_bytes())?;
    let config = config.path().to_str().context("config path")?.to_owned();
    let fleet = Fleet::new(redis.url(), upstream.base_url());
    let api = fleet.serve_config(0, &config).await?;
    let mut doomed = fleet.worker_config(1, &config).await?;

    let body = json!({"workflow": "two-step", "input": "write it", "conversation_id": "ckpt-1"});
    let (status, queued) = api.post("/v1/runs", &body, None).await?;
    assert_eq!(status, 202, "{queued}");
    let run_id = queued["run_id"].as_str().context("run_id")?.to_owned();
    // Wait until the first worker is inside the second node's model call.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while upstream.request_count() < 2 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the second node was never reached: {} upstream calls",
            upstream.request_count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    doomed.kill_9().await?;
    let _rescuer = fleet.worker_config(1, &config).await?;

    let run = api
        .wait_run(&run_id, None, Duration::from_secs(60), |run| {
            run["status"] == "succeeded" || run["status"] == "failed"
        })
        .await?;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["attempts"], 2, "taken over once: {run}");
    let steps: Vec<(String, String)> = run["output"]["steps"]
        .as_array()
        .context("steps")?
        .iter()
        .map(|step| {
            (
                step["node"].as_str().unwrap_or_default().to_owned(),
                step["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("draft".to_owned(), "restored".to_owned()),
            ("final".to_owned(), "ok".to_owned())
        ],
        "the first node came from its checkpoint: {run}"
    );
    assert_eq!(run["output"]["state"]["draft"], "the draft", "{run}");
    assert_eq!(
        upstream.request_count(),
        3,
        "draft once, final twice (the killed call and the rescuer's)"
    );

    // The checkpoints are one hash per run, expiring with the run's retention.
    let key = format!("{{arshai:runs}}:ckpt:{run_id}");
    let fields = redis.cli(&["HKEYS", &key]).await?;
    let mut paths: Vec<&str> = fields.split_whitespace().collect();
    paths.sort_unstable();
    assert_eq!(paths, ["draft#1", "final#1"], "{fields}");
    let ttl: i64 = redis.cli(&["TTL", &key]).await?.trim().parse()?;
    assert!(
        ttl > 0 && ttl <= 7 * 24 * 3600,
        "the checkpoints expire: TTL {ttl}"
    );

    let (status, conversation) = api
        .get("/v1/agents/writer/conversations/ckpt-1", None)
        .await?;
    assert_eq!(status, 200, "{conversation}");
    let messages: Vec<(String, String)> = conversation["messages"]
        .as_array()
        .context("messages")?
        .iter()
        .map(|message: &Value| {
            (
                message["role"].as_str().unwrap_or_default().to_owned(),
                message["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let users: Vec<&str> = messages
        .iter()
        .filter(|(role, _)| role == "user")
        .map(|(_, content)| content.as_str())
        .collect();
    assert_eq!(
        users,
        ["write it", "the draft"],
        "each agent node's turn is recorded once: {messages:?}"
    );
    assert_eq!(
        messages
            .iter()
            .filter(|(role, _)| role == "assistant")
            .count(),
        2,
        "{messages:?}"
    );
    Ok(())
}
