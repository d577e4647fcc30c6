//! Backpressure and refusals of durable runs, over real `arshai` processes and a real
//! Redis: a flooding tenant does not starve another, a tenant's queue is bounded (429), and
//! bad submissions get a specific status naming the parameter.

#[path = "runs_support/mod.rs"]
mod runs_support;

use std::time::Duration;

use anyhow::Context;
use arshai_testkit::{FakeUpstream, RedisServer, UpstreamOptions};
use runs_support::{Fleet, status_is};
use serde_json::{Value, json};

const FLOOD_KEY: &str = "key-flood-0123456789";
const CALM_KEY: &str = "key-calm-0123456789";

fn auth_config(dir: &tempfile::TempDir) -> anyhow::Result<String> {
    let path = dir.path().join("arshai.toml");
    std::fs::write(
        &path,
        format!(
            "[auth]\nenabled = true\n\
             [[auth.keys]]\ntenant = \"flood\"\nkey = \"{FLOOD_KEY}\"\n\
             [[auth.keys]]\ntenant = \"calm\"\nkey = \"{CALM_KEY}\"\n"
        ),
    )?;
    Ok(path.display().to_string())
}

fn started(run: &Value) -> u64 {
    run["timings"]["started_at_ms"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_does_not_starve_another() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        latency: Duration::from_millis(100),
        record: true,
        ..UpstreamOptions::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let fleet =
        Fleet::new(redis.url(), upstream.base_url()).with("ARSHAI_CONFIG", &auth_config(&dir)?);
    let server = fleet.serve(1).await?;
    let mut flood = Vec::new();
    for i in 0..30 {
        let (status, body) = server
            .post(
                "/v1/runs",
                &json!({"agent": "assistant", "input": format!("flood-{i}")}),
                Some(FLOOD_KEY),
            )
            .await?;
        assert_eq!(status, 202, "{body}");
        flood.push(body["run_id"].as_str().context("run_id")?.to_owned());
    }
    let (status, body) = server
        .post(
            "/v1/runs",
            &json!({"agent": "assistant", "input": "calm"}),
            Some(CALM_KEY),
        )
        .await?;
    assert_eq!(status, 202, "{body}");
    let calm_id = body["run_id"].as_str().context("run_id")?;
    let calm = server
        .wait_run(
            calm_id,
            Some(CALM_KEY),
            Duration::from_secs(30),
            status_is("succeeded"),
        )
        .await?;
    let submitted = calm["timings"]["created_at_ms"]
        .as_u64()
        .context("created")?;
    let mut flood_runs = Vec::new();
    for id in &flood {
        flood_runs.push(
            server
                .wait_run(
                    id,
                    Some(FLOOD_KEY),
                    Duration::from_secs(60),
                    status_is("succeeded"),
                )
                .await?,
        );
    }
    let ahead = flood_runs
        .iter()
        .filter(|run| started(run) > submitted && started(run) < started(&calm))
        .count();
    let behind = flood_runs
        .iter()
        .filter(|run| started(run) > started(&calm))
        .count();
    assert!(
        ahead <= 2,
        "at most the flood runs already read with it went first, not the backlog: {ahead}"
    );
    assert!(
        behind >= 20,
        "the calm run jumped the flood's backlog: {behind} behind it"
    );

    // Tenants see only their own runs.
    let (status, body) = server
        .get(&format!("/v1/runs/{calm_id}"), Some(FLOOD_KEY))
        .await?;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (404, Some("run_not_found"))
    );
    let (status, page) = server.get("/v1/runs?limit=100", Some(CALM_KEY)).await?;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1), "{page}");
    // Pages of the flood's runs: 30 in pages of 12, newest first, none twice.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/v1/runs?status=succeeded&limit=12&after={after}"),
            None => "/v1/runs?status=succeeded&limit=12".to_owned(),
        };
        let (status, page) = server.get(&path, Some(FLOOD_KEY)).await?;
        assert_eq!(status, 200, "{page}");
        for run in page["data"].as_array().context("data")? {
            seen.push(run["run_id"].as_str().context("id")?.to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected = flood.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tenant_queue_answers_429_until_a_run_leaves_it() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let fleet = Fleet::new(redis.url(), upstream.base_url())
        .with("ARSHAI_RUNS__MAX_QUEUED_PER_TENANT", "3");
    let api = fleet.serve(0).await?;
    let mut runs = Vec::new();
    for i in 0..3 {
        runs.push(api.submit(&format!("q-{i}")).await?);
    }
    let response = api
        .http
        .post(api.url("/v1/runs"))
        .json(&json!({"agent": "assistant", "input": "one too many"}))
        .send()
        .await?;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["type"], "run_queue_full");
    let (status, _) = api
        .post(&format!("/v1/runs/{}/cancel", runs[0]), &json!({}), None)
        .await?;
    assert_eq!(status, 200);
    api.submit("room again").await?;

    // A worker drains the queue; the backlog gauge follows.
    let metrics = api
        .http
        .get(api.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("arshai_runs_queued{queue=\"default\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("arshai_runs_oldest_queued_age_seconds{queue=\"default\"}"),
        "{metrics}"
    );
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("promtool (scripts/test installs it)")?;
    std::io::Write::write_all(
        &mut promtool.stdin.take().context("stdin")?,
        metrics.as_bytes(),
    )?;
    let checked = promtool.wait_with_output()?;
    assert!(
        checked.status.success(),
        "promtool accepts the run metrics: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let _worker = fleet.worker(2).await?;
    for run in &runs[1..] {
        api.wait_run(run, None, Duration::from_secs(20), status_is("succeeded"))
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_submissions_name_the_parameter() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let api = Fleet::new(redis.url(), upstream.base_url())
        .serve(0)
        .await?;
    let cases = [
        (
            json!({"agent": "assistant", "workflow": "triage", "input": "x"}),
            400,
            "workflow",
        ),
        (json!({"input": "x"}), 400, "agent"),
        (json!({"agent": "assistant"}), 400, "input"),
        (json!({"agent": "assistant", "input": "  "}), 400, "input"),
        (json!({"agent": "assistant", "input": 3}), 400, "input"),
        (
            json!({"agent": "assistant", "input": "x", "webhook": "https://example.test/hook"}),
            400,
            "webhook",
        ),
        (
            json!({"agent": "assistant", "input": "x", "colour": 1}),
            400,
            "body",
        ),
        (json!(["not", "an", "object"]), 400, "body"),
    ];
    for (body, status, param) in cases {
        let (got, answer) = api.post("/v1/runs", &body, None).await?;
        assert_eq!(got, status, "{body} -> {answer}");
        assert_eq!(answer["error"]["param"], param, "{body} -> {answer}");
    }
    let (status, answer) = api
        .post("/v1/runs", &json!({"agent": "nobody", "input": "x"}), None)
        .await?;
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (404, Some("unknown_agent"))
    );
    let (status, answer) = api
        .post(
            "/v1/runs",
            &json!({"workflow": "nothing", "input": "x"}),
            None,
        )
        .await?;
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (404, Some("unknown_workflow"))
    );
    let (status, answer) = api.get("/v1/runs/run_missing", None).await?;
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (404, Some("run_not_found"))
    );
    let (status, answer) = api.get("/v1/runs?status=done", None).await?;
    assert_eq!(
        (status, answer["error"]["param"].as_str()),
        (400, Some("status"))
    );
    let (status, answer) = api.get("/v1/runs?limit=0", None).await?;
    assert_eq!(
        (status, answer["error"]["param"].as_str()),
        (400, Some("limit"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_refused_with_503_without_redis() -> anyhow::Result<()> {
    let upstream = FakeUpstream::start().await?;
    let port = runs_support::free_port()?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_arshai"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("OPENAI_BASE_URL", upstream.base_url())
        .env("OPENAI_API_KEY", "sk-runs")
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..300 {
        if http.get(format!("{url}/health/live")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(up, "the server came up");
    let response = http
        .post(format!("{url}/v1/runs"))
        .json(&json!({"agent": "assistant", "input": "x"}))
        .send()
        .await?;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["type"], "runs_unavailable");
    child.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_count_against_the_keys_rate_limit() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("arshai.toml");
    std::fs::write(
        &path,
        format!(
            "[auth]\nenabled = true\n\
             [[auth.keys]]\ntenant = \"slow\"\nkey = \"{CALM_KEY}\"\nrequests_per_minute = 2\n"
        ),
    )?;
    let api = Fleet::new(redis.url(), upstream.base_url())
        .with("ARSHAI_CONFIG", &path.display().to_string())
        .serve(0)
        .await?;
    let body = json!({"agent": "assistant", "input": "x"});
    for _ in 0..2 {
        let (status, answer) = api.post("/v1/runs", &body, Some(CALM_KEY)).await?;
        assert_eq!(status, 202, "{answer}");
    }
    let (status, answer) = api.post("/v1/runs", &body, Some(CALM_KEY)).await?;
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (429, Some("rate_limited")),
        "{answer}"
    );
    let (status, _) = api.post("/v1/runs", &body, None).await?;
    assert_eq!(status, 401, "runs need a key when auth is on");
    Ok(())
}
