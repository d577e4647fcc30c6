//! Durable runs over real `arshai` processes sharing one real Redis: every run completes
//! exactly once over three instances, a `kill -9`ed worker's runs are taken over and
//! completed once, cancellation, idempotent resubmission, and events followed from an
//! instance that does not execute the run.

#[path = "runs_support/mod.rs"]
mod runs_support;

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use arshai_testkit::{FakeUpstream, RedisServer, UpstreamOptions};
use futures::StreamExt;
use runs_support::{Fleet, status_is};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_runs_over_three_instances_each_complete_exactly_once() -> anyhow::Result<()>
{
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let fleet = Fleet::new(redis.url(), upstream.base_url());
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(fleet.serve(2).await?);
    }
    let submissions = futures::stream::iter(0..300)
        .map(|i| {
            let instance = &instances[i % 3];
            async move {
                instance
                    .submit(&format!("marker-{i}"))
                    .await
                    .map(|id| (i, id))
            }
        })
        .buffer_unordered(24)
        .collect::<Vec<_>>()
        .await;
    let runs: Vec<(usize, String)> = submissions.into_iter().collect::<anyhow::Result<_>>()?;
    assert_eq!(runs.len(), 300);

    let mut markers = HashSet::new();
    for (i, run_id) in &runs {
        let reader = &instances[(i + 1) % 3];
        let run = reader
            .wait_run(run_id, None, Duration::from_secs(120), |run| {
                run["status"] != "queued" && run["status"] != "running"
            })
            .await?;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["attempts"], 1, "no run was executed twice: {run}");
        let conversation = run["conversation_id"].as_str().context("conversation")?;
        let users = reader.user_messages(conversation, None).await?;
        assert_eq!(
            users,
            [format!("marker-{i}")],
            "one marker per run's conversation"
        );
        assert!(markers.insert(users[0].clone()), "marker {i} seen twice");
    }
    assert_eq!(markers.len(), 300);
    assert_eq!(
        upstream.request_count(),
        300,
        "each run called the model once"
    );
    // The runs spread over the fleet: every instance executed some.
    let text = futures::future::join_all(instances.iter().map(|instance| async move {
        instance
            .http
            .get(instance.url("/metrics"))
            .send()
            .await?
            .text()
            .await
    }))
    .await;
    let mut total = 0.0;
    for metrics in text {
        let metrics = metrics?;
        let succeeded = metrics
            .lines()
            .find(|line| line.starts_with("arshai_runs_finished_total{outcome=\"succeeded\"}"))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(succeeded > 0.0, "every instance executed runs");
        total += succeeded;
        assert!(
            metrics.contains("arshai_runs_queued{queue=\"default\"} 0"),
            "the backlog gauge is empty at the end: {metrics}"
        );
    }
    assert_eq!(total, 300.0, "the instances finished 300 runs together");
    // Redis stays bounded: finished entries leave the queue stream, and finished records
    // expire after the retention period.
    assert_eq!(
        redis
            .cli(&["XLEN", "{arshai:runs}:queue:default"])
            .await?
            .trim(),
        "0"
    );
    let ttl: i64 = redis
        .cli(&["TTL", &format!("{{arshai:runs}}:run:{}", runs[0].1)])
        .await?
        .trim()
        .parse()?;
    assert!(
        ttl > 0 && ttl <= 7 * 24 * 3600,
        "a finished record expires: TTL {ttl}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_runs_are_taken_over_and_completed_once() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        latency: Duration::from_secs(3),
        record: true,
        ..UpstreamOptions::default()
    })
    .await?;
    let fleet = Fleet::new(redis.url(), upstream.base_url());
    // An API-only instance takes the submissions; one worker process executes them.
    let api = fleet.serve(0).await?;
    let mut doomed = fleet.worker(4).await?;
    let mut runs = Vec::new();
    for i in 0..4 {
        runs.push(api.submit(&format!("crash-{i}")).await?);
    }
    for run_id in &runs {
        api.wait_run(run_id, None, Duration::from_secs(20), status_is("running"))
            .await?;
    }
    doomed.kill_9().await?;
    let _rescuer = fleet.worker(4).await?;
    for (i, run_id) in runs.iter().enumerate() {
        let run = api
            .wait_run(run_id, None, Duration::from_secs(60), |run| {
                run["status"] == "succeeded" || run["status"] == "failed"
            })
            .await?;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["attempts"], 2, "taken over once: {run}");
        let conversation = run["conversation_id"].as_str().context("conversation")?;
        assert_eq!(
            api.user_messages(conversation, None).await?,
            [format!("crash-{i}")],
            "the turn was recorded once"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_and_running_runs_are_cancelled() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        latency: Duration::from_secs(5),
        record: true,
        ..UpstreamOptions::default()
    })
    .await?;
    let fleet = Fleet::new(redis.url(), upstream.base_url());
    let server = fleet.serve(1).await?;
    let running = server.submit("long").await?;
    server
        .wait_run(
            &running,
            None,
            Duration::from_secs(20),
            status_is("running"),
        )
        .await?;
    let queued = server.submit("never").await?;

    let (status, body) = server
        .post(&format!("/v1/runs/{queued}/cancel"), &json!({}), None)
        .await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    let (status, body) = server
        .post(&format!("/v1/runs/{running}/cancel"), &json!({}), None)
        .await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["cancel_requested"], true);
    let run = server
        .wait_run(
            &running,
            None,
            Duration::from_secs(4),
            status_is("cancelled"),
        )
        .await?;
    assert_eq!(run["error"]["type"], "cancelled");

    // The cancelled queued run never starts, and a finished run cannot be cancelled again.
    let after = server.submit("after").await?;
    server
        .wait_run(
            &after,
            None,
            Duration::from_secs(20),
            status_is("succeeded"),
        )
        .await?;
    let run = server
        .wait_run(&queued, None, Duration::from_secs(1), |_| true)
        .await?;
    assert_eq!(run["status"], "cancelled");
    assert_eq!(run["attempts"], 0, "{run}");
    let inputs: Vec<String> = upstream
        .requests()
        .iter()
        .filter_map(|request| request.body["messages"].as_array()?.last().cloned())
        .filter_map(|message| message["content"].as_str().map(str::to_owned))
        .collect();
    assert!(!inputs.contains(&"never".to_owned()), "{inputs:?}");
    let (status, body) = server
        .post(&format!("/v1/runs/{queued}/cancel"), &json!({}), None)
        .await?;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (409, Some("run_finished"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resubmission_with_the_same_idempotency_key_returns_the_same_run() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let fleet = Fleet::new(redis.url(), upstream.base_url());
    let one = fleet.serve(1).await?;
    let two = fleet.serve(0).await?;
    let body = json!({"agent": "assistant", "input": "once", "idempotency_key": "job-7"});
    let (status, first) = one.post("/v1/runs", &body, None).await?;
    assert_eq!(status, 202, "{first}");
    let (status, again) = two.post("/v1/runs", &body, None).await?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["run_id"], first["run_id"]);
    // The header form names the same key.
    let response = two
        .http
        .post(two.url("/v1/runs"))
        .header("idempotency-key", "job-7")
        .json(&json!({"agent": "assistant", "input": "once"}))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let header: serde_json::Value = response.json().await?;
    assert_eq!(header["run_id"], first["run_id"]);
    // The same key for another request is refused.
    let (status, refused) = two
        .post(
            "/v1/runs",
            &json!({"agent": "assistant", "input": "other", "idempotency_key": "job-7"}),
            None,
        )
        .await?;
    assert_eq!(
        (status, refused["error"]["type"].as_str()),
        (422, Some("idempotency_key_reused"))
    );

    let run_id = first["run_id"].as_str().context("run_id")?;
    let run = one
        .wait_run(
            run_id,
            None,
            Duration::from_secs(20),
            status_is("succeeded"),
        )
        .await?;
    let conversation = run["conversation_id"].as_str().context("conversation")?;
    assert_eq!(one.user_messages(conversation, None).await?, ["once"]);
    assert_eq!(upstream.request_count(), 1);
    let (status, page) = two.get("/v1/runs?status=succeeded", None).await?;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1), "{page}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_from_an_instance_that_does_not_execute_the_run() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        latency: Duration::from_millis(800),
        record: true,
        ..UpstreamOptions::default()
    })
    .await?;
    let fleet = Fleet::new(redis.url(), upstream.base_url());
    let _executor = fleet.serve(1).await?;
    let api = fleet.serve(0).await?;
    let run_id = api.submit("stream me").await?;
    let response = api
        .http
        .get(api.url(&format!("/v1/runs/{run_id}/events")))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str()?,
        "text/event-stream"
    );
    let text = tokio::time::timeout(Duration::from_secs(30), response.text()).await??;
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert_eq!(kinds.first(), Some(&"queued"), "{text}");
    assert!(kinds.contains(&"running"), "{text}");
    assert!(kinds.contains(&"delta"), "{text}");
    assert_eq!(kinds.last(), Some(&"succeeded"), "{text}");
    let reply: String = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
        .filter_map(|data| data["text"].as_str().map(str::to_owned))
        .collect();
    assert!(reply.contains("stream me"), "the echo's deltas: {reply:?}");

    // Replay after the end: the same events, and resuming after the first skips it.
    let first_id = text
        .lines()
        .find_map(|line| line.strip_prefix("id: "))
        .context("an id")?
        .to_owned();
    let resumed = api
        .http
        .get(api.url(&format!("/v1/runs/{run_id}/events")))
        .header("last-event-id", &first_id)
        .send()
        .await?
        .text()
        .await?;
    let resumed_kinds: Vec<&str> = resumed
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert_eq!(resumed_kinds, kinds[1..].to_vec());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_run_is_queued_and_executed_by_a_worker() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/examples/support-desk.toml"
    );
    let fleet = Fleet::new(redis.url(), upstream.base_url());
    let api = fleet.serve_config(0, config).await?;
    let _worker = fleet.serve_config(1, config).await?;
    let body = json!({"workflow": "support-desk", "input": "I was charged twice", "conversation_id": "desk-1"});
    let (status, queued) = api.post("/v1/runs", &body, None).await?;
    assert_eq!(status, 202, "{queued}");
    let run_id = queued["run_id"].as_str().context("run_id")?.to_owned();
    let run = api
        .wait_run(
            &run_id,
            None,
            Duration::from_secs(30),
            status_is("succeeded"),
        )
        .await?;
    assert_eq!(run["workflow"], "support-desk", "{run}");
    let steps = run["output"]["steps"].as_array().context("steps")?;
    assert!(steps.len() >= 2, "triage then a desk: {run}");
    assert_eq!(steps[0]["node"], "triage");
    assert!(steps.iter().all(|step| step["status"] == "ok"), "{run}");
    // The fake upstream echoes: the desk's answer carries the customer's words.
    assert!(
        run["output"]["output"]
            .to_string()
            .contains("charged twice"),
        "{run}"
    );
    Ok(())
}
