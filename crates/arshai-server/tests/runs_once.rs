//! Effectively-once results of durable runs against a real Redis: a run re-executed after
//! its worker died *after* committing the turn is answered from the turn's receipt (the
//! model is not called again, the conversation holds the turn once); and runs resume after
//! Redis restarts from its append-only file.

#[path = "runs_support/mod.rs"]
mod runs_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arshai::memory::MemoryProvider;
use arshai_server::AppState;
use arshai_server::runs::worker::Worker;
use arshai_server::runs::{RunExecutor, RunFailure, RunRecord, Runs, TargetExecutor};
use arshai_testkit::{FakeUpstream, RedisServer, UpstreamOptions};
use async_trait::async_trait;
use runs_support::{Fleet, status_is};
use serde_json::{Value, json};
use support::TestServer;
use tokio::sync::watch;

/// Executes the run for real (the turn is committed), then never returns: a worker that
/// dies between committing the turn and recording the run's outcome.
struct CommitThenHang(TargetExecutor);

#[async_trait]
impl RunExecutor for CommitThenHang {
    async fn execute(
        &self,
        run: &RunRecord,
        attempt: u32,
        runs: &Runs,
    ) -> Result<Value, RunFailure> {
        let _committed = self.0.execute(run, attempt, runs).await;
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reexecuted_after_its_turn_was_committed_does_not_repeat_it() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let mut settings = support::settings_for(&upstream);
    settings.memory.memory_provider = Some(MemoryProvider::Redis);
    settings.memory.redis_url = Some(redis.url());
    settings.runs.workers = 0;
    settings.runs.visibility_timeout_seconds = 2.0;
    settings.runs.check_interval_seconds = 0.5;
    settings.runs.block_seconds = 0.5;
    let state = AppState::from_settings(settings).await?;
    let runs = state.runs.clone().context("runs over redis")?;
    let server = TestServer::start_state(upstream, state.clone()).await;

    let response = server
        .http
        .post(server.url("/v1/runs"))
        .json(&json!({"agent": "assistant", "input": "exactly once"}))
        .send()
        .await?;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await?;
    let run_id = body["run_id"].as_str().context("run_id")?.to_owned();
    let conversation = body["conversation_id"]
        .as_str()
        .context("conversation")?
        .to_owned();

    let executor = TargetExecutor::new(Arc::clone(&state.agents), Arc::clone(&state.workflows));
    let doomed = Worker::new(
        Arc::clone(&runs),
        Arc::new(CommitThenHang(executor.clone())),
        Arc::clone(&state.metrics),
        1,
    );
    let (_stop_doomed, stopped) = watch::channel(false);
    let doomed = tokio::spawn(doomed.run(stopped, Duration::from_secs(1)));
    let path = format!("/v1/agents/assistant/conversations/{conversation}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = server.http.get(server.url(&path)).send().await?;
        if response.status() == 200 {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the turn was never committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The worker dies: no outcome, no renewal, no hand-back.
    doomed.abort();
    let _ = doomed.await;
    let (status, run) = get_run(&server, &run_id).await?;
    assert_eq!(
        (status, run["status"].as_str()),
        (200, Some("running")),
        "{run}"
    );

    let rescuer = Worker::new(
        Arc::clone(&runs),
        Arc::new(executor),
        Arc::clone(&state.metrics),
        1,
    );
    let (stop_rescuer, stopped) = watch::channel(false);
    let rescuer = tokio::spawn(rescuer.run(stopped, Duration::from_secs(1)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let run = loop {
        let (_, run) = get_run(&server, &run_id).await?;
        if run["status"] == "succeeded" {
            break run;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not taken over: {run}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["attempts"], 2, "{run}");
    assert!(
        run["output"]["reply"]
            .as_str()
            .is_some_and(|reply| reply.contains("exactly once")),
        "the second attempt answered with the first one's reply: {run}"
    );
    assert_eq!(
        server.upstream.request_count(),
        1,
        "the model was called once"
    );
    let conversation: Value = server
        .http
        .get(server.url(&path))
        .send()
        .await?
        .json()
        .await?;
    let users = conversation["messages"]
        .as_array()
        .context("messages")?
        .iter()
        .filter(|message| message["role"] == "user")
        .count();
    assert_eq!(users, 1, "the turn is recorded once: {conversation}");
    let _ = stop_rescuer.send(true);
    tokio::time::timeout(Duration::from_secs(10), rescuer).await??;
    Ok(())
}

async fn get_run(server: &TestServer, run_id: &str) -> anyhow::Result<(u16, Value)> {
    let response = server
        .http
        .get(server.url(&format!("/v1/runs/{run_id}")))
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

/// Never returns: a worker that dies during every execution.
struct Hang;

#[async_trait]
impl RunExecutor for Hang {
    async fn execute(&self, _: &RunRecord, _: u32, _: &Runs) -> Result<Value, RunFailure> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_keeps_killing_its_worker_is_dead_lettered() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let mut settings = support::settings_for(&upstream);
    settings.memory.memory_provider = Some(MemoryProvider::Redis);
    settings.memory.redis_url = Some(redis.url());
    settings.runs.workers = 0;
    settings.runs.max_attempts = 2;
    settings.runs.visibility_timeout_seconds = 1.0;
    settings.runs.check_interval_seconds = 0.25;
    settings.runs.block_seconds = 0.25;
    let state = AppState::from_settings(settings).await?;
    let runs = state.runs.clone().context("runs over redis")?;
    let server = TestServer::start_state(upstream, state.clone()).await;
    let response = server
        .http
        .post(server.url("/v1/runs"))
        .json(&json!({"agent": "assistant", "input": "poison"}))
        .send()
        .await?;
    let body: Value = response.json().await?;
    let run_id = body["run_id"].as_str().context("run_id")?.to_owned();
    // Two workers die in turn while executing it; the third start finds no attempt left.
    for attempt in 1..=2 {
        let worker = Worker::new(
            Arc::clone(&runs),
            Arc::new(Hang),
            Arc::clone(&state.metrics),
            1,
        );
        let (_stop, stopped) = watch::channel(false);
        let task = tokio::spawn(worker.run(stopped, Duration::from_secs(1)));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, run) = get_run(&server, &run_id).await?;
            if run["status"] == "running" && run["attempts"] == attempt {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "attempt {attempt}: {run}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        task.abort();
        let _ = task.await;
    }
    let executor = TargetExecutor::new(Arc::clone(&state.agents), Arc::clone(&state.workflows));
    let last = Worker::new(
        Arc::clone(&runs),
        Arc::new(executor),
        Arc::clone(&state.metrics),
        1,
    );
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(last.run(stopped, Duration::from_secs(1)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let run = loop {
        let (_, run) = get_run(&server, &run_id).await?;
        if run["status"] == "failed" {
            break run;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not dead-lettered: {run}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run["error"]["type"], "attempts_exhausted", "{run}");
    assert_eq!(
        server.upstream.request_count(),
        0,
        "the poison run was not executed again"
    );
    let dead = redis
        .cli(&["XRANGE", "{arshai:runs}:dead", "-", "+"])
        .await?;
    assert!(
        dead.contains(&run_id),
        "the dead-letter stream names it: {dead}"
    );
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), task).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_resume_after_redis_restarts_from_its_append_only_file() -> anyhow::Result<()> {
    let mut redis =
        RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]).await?;
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        latency: Duration::from_millis(300),
        record: true,
        ..UpstreamOptions::default()
    })
    .await?;
    let fleet = Fleet::new(redis.url(), upstream.base_url());
    let server = fleet.serve(2).await?;
    let mut runs = Vec::new();
    for i in 0..12 {
        runs.push(server.submit(&format!("aof-{i}")).await?);
    }
    server
        .wait_run(
            &runs[0],
            None,
            Duration::from_secs(20),
            status_is("succeeded"),
        )
        .await?;
    redis.restart().await?;
    for (i, run_id) in runs.iter().enumerate() {
        let run = server
            .wait_run(run_id, None, Duration::from_secs(60), |run| {
                run["status"] == "succeeded" || run["status"] == "failed"
            })
            .await?;
        assert_eq!(run["status"], "succeeded", "{run}");
        let conversation = run["conversation_id"].as_str().context("conversation")?;
        assert_eq!(
            server.user_messages(conversation, None).await?,
            [format!("aof-{i}")],
            "one marker per conversation"
        );
    }
    Ok(())
}
