//! Graceful drain of a run worker: on SIGTERM it stops taking runs and hands back the ones
//! still running at the grace deadline, which another worker takes over at once (well
//! before the visibility timeout) and completes once.

#[path = "runs_support/mod.rs"]
mod runs_support;

use std::time::Duration;

use anyhow::Context;
use arshai_testkit::{FakeUpstream, RedisServer, UpstreamOptions};
use runs_support::{Fleet, status_is};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_worker_hands_back_its_runs() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        latency: Duration::from_secs(3),
        record: true,
        ..UpstreamOptions::default()
    })
    .await?;
    // A visibility timeout far longer than the test's wait: only a hand-back explains a
    // prompt take-over.
    let fleet = Fleet::new(redis.url(), upstream.base_url())
        .with("ARSHAI_RUNS__VISIBILITY_TIMEOUT_SECONDS", "600")
        .with("ARSHAI_SHUTDOWN__GRACE_SECONDS", "0.5");
    let api = fleet.serve(0).await?;
    let mut draining = fleet.worker(2).await?;
    let first = api.submit("drain-0").await?;
    let second = api.submit("drain-1").await?;
    for run in [&first, &second] {
        api.wait_run(run, None, Duration::from_secs(20), status_is("running"))
            .await?;
    }
    let pid = draining.child.id().context("pid")?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    let exited = tokio::time::timeout(Duration::from_secs(20), draining.child.wait()).await??;
    assert!(
        exited.success(),
        "the worker drained and exited cleanly: {exited}"
    );
    // Submitted while nothing runs: stays queued until the next worker.
    let later = api.submit("drain-2").await?;
    let _next = fleet.worker(2).await?;
    for (i, run) in [&first, &second, &later].into_iter().enumerate() {
        let done = api
            .wait_run(run, None, Duration::from_secs(30), status_is("succeeded"))
            .await?;
        let conversation = done["conversation_id"].as_str().context("conversation")?;
        assert_eq!(
            api.user_messages(conversation, None).await?,
            [format!("drain-{i}")]
        );
        let expected_attempts = if i < 2 { 2 } else { 1 };
        assert_eq!(done["attempts"], expected_attempts, "{done}");
    }
    Ok(())
}
