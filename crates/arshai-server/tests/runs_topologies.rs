//! Durable runs on a real Redis Cluster and a real Sentinel group: every run key shares one
//! hash tag, so the queue's multi-key scripts and multi-stream reads work on Cluster, and
//! the Sentinel link follows the master.

mod support;

use std::time::Duration;

use anyhow::Context;
use arshai::memory::MemoryProvider;
use arshai_server::settings::Settings;
use arshai_testkit::{FakeUpstream, RedisCluster, RedisSentinelGroup};
use serde_json::{Value, json};
use support::{TestServer, settings_for};

fn runs_settings(upstream: &FakeUpstream) -> Settings {
    let mut settings = settings_for(upstream);
    settings.memory.memory_provider = Some(MemoryProvider::Redis);
    settings.runs.workers = 2;
    settings.runs.block_seconds = 0.5;
    settings.runs.check_interval_seconds = 0.5;
    settings
}

/// Submits ten runs and checks each succeeds once, and that a run's events replay.
async fn ten_runs_complete(server: &TestServer) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for i in 0..10 {
        let response = server
            .http
            .post(server.url("/v1/runs"))
            .json(&json!({"agent": "assistant", "input": format!("topo-{i}")}))
            .send()
            .await?;
        anyhow::ensure!(response.status() == 202, "submit: {}", response.status());
        let body: Value = response.json().await?;
        runs.push(body["run_id"].as_str().context("run_id")?.to_owned());
    }
    for (i, run_id) in runs.iter().enumerate() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let run = loop {
            let run: Value = server
                .http
                .get(server.url(&format!("/v1/runs/{run_id}")))
                .send()
                .await?
                .json()
                .await?;
            if run["status"] == "succeeded" {
                break run;
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "run stuck: {run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(run["attempts"], 1);
        assert!(
            run["output"]["reply"]
                .as_str()
                .is_some_and(|reply| reply.contains(&format!("topo-{i}"))),
            "{run}"
        );
    }
    let events = server
        .http
        .get(server.url(&format!("/v1/runs/{}/events", runs[0])))
        .send()
        .await?
        .text()
        .await?;
    assert!(events.contains("event: succeeded"), "{events}");
    let (status, page): (u16, Value) = {
        let response = server
            .http
            .get(server.url("/v1/runs?limit=100"))
            .send()
            .await?;
        (response.status().as_u16(), response.json().await?)
    };
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(10));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_work_on_a_redis_cluster() -> anyhow::Result<()> {
    let cluster = RedisCluster::start().await?;
    let upstream = FakeUpstream::start().await?;
    let mut settings = runs_settings(&upstream);
    settings.memory.redis_cluster_nodes = cluster.seeds();
    let server = TestServer::start_with(upstream, settings).await;
    ten_runs_complete(&server).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_work_through_sentinel() -> anyhow::Result<()> {
    let group = RedisSentinelGroup::start().await?;
    let upstream = FakeUpstream::start().await?;
    let mut settings = runs_settings(&upstream);
    settings.memory.redis_sentinel_master = Some(RedisSentinelGroup::MASTER_NAME.to_owned());
    settings.memory.redis_sentinels = vec![group.sentinel_address()];
    let server = TestServer::start_with(upstream, settings).await;
    ten_runs_complete(&server).await
}
