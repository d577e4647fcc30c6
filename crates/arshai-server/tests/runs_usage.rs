//! A run's real tokens against its submitter's limits, with real processes sharing a real
//! Redis: an API-only instance admits the submissions, a worker process executes them,
//! and `GET /v1/usage` shows the tokens the runs really used; a run that starts once the
//! budget is spent fails with `budget_exceeded`, and a further submission is refused 429.

#[path = "runs_support/mod.rs"]
mod runs_support;

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use arshai_testkit::{FakeUpstream, RedisServer};
use runs_support::Fleet;
use serde_json::{Value, json};

const KEY: &str = "sk-acme-runs";

/// Tenant `acme` may spend 10 tokens a day: less than one turn uses, more than the
/// estimate of a short input.
const CONFIG: &str = r#"
[auth]
enabled = true

[[auth.keys]]
tenant = "acme"
key = "sk-acme-runs"
id = "acme-runs"

[limits]
backend = "redis"
tenant_budget = { tokens_per_day = 10 }
"#;

fn finished(run: &Value) -> bool {
    run["status"] == "succeeded" || run["status"] == "failed"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_real_tokens_are_charged_to_its_tenants_budget() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let mut config = tempfile::NamedTempFile::new()?;
    config.write_all(CONFIG.as_bytes())?;
    let config = config.path().to_str().context("config path")?.to_owned();
    let fleet = Fleet::new(redis.url(), upstream.base_url());
    let api = fleet.serve_config(0, &config).await?;

    // Both are admitted: nothing is spent yet.
    let mut runs = Vec::new();
    for input in ["first run", "second run"] {
        let body = json!({"agent": "assistant", "input": input});
        let (status, queued) = api.post("/v1/runs", &body, Some(KEY)).await?;
        assert_eq!(status, 202, "{queued}");
        runs.push(queued["run_id"].as_str().context("run_id")?.to_owned());
    }
    let (_, usage) = api.get("/v1/usage", Some(KEY)).await?;
    assert_eq!(
        usage["budgets"][0]["used"], 0,
        "a submission charges no tokens: {usage}"
    );

    // One slot: the second run starts after the first settled its tokens.
    let _worker = fleet.worker_config(1, &config).await?;
    let mut done = Vec::new();
    for run_id in &runs {
        done.push(
            api.wait_run(run_id, Some(KEY), Duration::from_secs(30), finished)
                .await?,
        );
    }
    let succeeded: Vec<&Value> = done
        .iter()
        .filter(|run| run["status"] == "succeeded")
        .collect();
    let failed: Vec<&Value> = done
        .iter()
        .filter(|run| run["status"] == "failed")
        .collect();
    assert_eq!((succeeded.len(), failed.len()), (1, 1), "{done:?}");
    assert_eq!(
        failed[0]["error"]["type"], "budget_exceeded",
        "the run that started with the budget spent: {}",
        failed[0]
    );
    let spent = succeeded[0]["output"]["usage"]["total_tokens"]
        .as_u64()
        .context("the run's usage")?;
    assert!(spent > 10, "a turn uses more than the budget: {spent}");

    let (status, usage) = api.get("/v1/usage", Some(KEY)).await?;
    assert_eq!(status, 200, "{usage}");
    let budget = &usage["budgets"][0];
    assert_eq!(
        (&budget["scope"], &budget["period"]),
        (&json!("tenant"), &json!("day")),
        "{usage}"
    );
    assert_eq!(budget["used"], spent, "the run's real tokens: {usage}");
    assert_eq!(budget["reserved"], 0, "{usage}");
    assert_eq!(budget["remaining"], 0, "{usage}");

    let body = json!({"agent": "assistant", "input": "third run"});
    let (status, refused) = api.post("/v1/runs", &body, Some(KEY)).await?;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["type"], "budget_exceeded", "{refused}");
    Ok(())
}

/// Tenant `acme` may use 10 tokens a minute: a short input's estimate fits, a turn's real
/// usage does not.
const TPM_CONFIG: &str = r#"
[auth]
enabled = true

[[auth.keys]]
tenant = "acme"
key = "sk-acme-runs"
id = "acme-runs"

[limits]
backend = "redis"
tenant = { tokens_per_minute = 10 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_real_tokens_count_against_its_tenants_tokens_per_minute() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let mut config = tempfile::NamedTempFile::new()?;
    config.write_all(TPM_CONFIG.as_bytes())?;
    let config = config.path().to_str().context("config path")?.to_owned();
    let fleet = Fleet::new(redis.url(), upstream.base_url());
    let api = fleet.serve_config(1, &config).await?;

    let body = json!({"agent": "assistant", "input": "first run"});
    let (status, queued) = api.post("/v1/runs", &body, Some(KEY)).await?;
    assert_eq!(status, 202, "{queued}");
    let run_id = queued["run_id"].as_str().context("run_id")?;
    let run = api
        .wait_run(run_id, Some(KEY), Duration::from_secs(30), finished)
        .await?;
    assert_eq!(run["status"], "succeeded", "{run}");
    let spent = run["output"]["usage"]["total_tokens"]
        .as_u64()
        .context("the run's usage")?;
    assert!(spent > 10, "a turn uses more than a minute allows: {spent}");
    // The run's tokens leave the minute in debt for several minutes: the next submission,
    // whose estimate alone would fit, waits.
    let body = json!({"agent": "assistant", "input": "second run"});
    let (status, refused) = api.post("/v1/runs", &body, Some(KEY)).await?;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["type"], "rate_limited", "{refused}");
    Ok(())
}
