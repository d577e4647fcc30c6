//! The completion webhook of a durable run: signed with HMAC-SHA256 over
//! `<timestamp>.<body>`, and retried after a 500, against a real HTTP receiver.

#[path = "runs_support/mod.rs"]
mod runs_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use arshai_testkit::{FakeUpstream, RedisServer};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use runs_support::{Fleet, status_is};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec-0123456789abcdef";

#[derive(Clone, Default)]
struct Receiver {
    deliveries: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let mut deliveries = receiver.deliveries.lock().unwrap();
    deliveries.push((headers, body));
    // The first delivery fails: the worker must retry.
    if deliveries.len() == 1 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_is_posted_signed_and_retried_after_a_500() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let upstream = FakeUpstream::start().await?;
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let server = Fleet::new(redis.url(), upstream.base_url())
        .with("ARSHAI_RUNS__WEBHOOK_SECRET", SECRET)
        .with("ARSHAI_RUNS__WEBHOOK_BACKOFF_SECONDS", "0.2")
        .serve(1)
        .await?;
    let (status, body) = server
        .post(
            "/v1/runs",
            &json!({"agent": "assistant", "input": "call me back", "webhook": hook}),
            None,
        )
        .await?;
    assert_eq!(status, 202, "{body}");
    let run_id = body["run_id"].as_str().context("run_id")?.to_owned();
    server
        .wait_run(
            &run_id,
            None,
            Duration::from_secs(20),
            status_is("succeeded"),
        )
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while receiver.deliveries.lock().unwrap().len() < 2 {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no retry arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No third delivery after the 204.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let deliveries = receiver.deliveries.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 2);
    for (headers, body) in &deliveries {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        assert_eq!(header("x-arshai-run-id"), run_id);
        let timestamp = header("x-arshai-timestamp");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes())?;
        mac.update(format!("{timestamp}.{body}").as_bytes());
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(header("x-arshai-signature"), format!("sha256={expected}"));
        let run: Value = serde_json::from_str(body)?;
        assert_eq!(run["run_id"], run_id.as_str());
        assert_eq!(run["status"], "succeeded");
        assert!(
            run["output"]["reply"]
                .as_str()
                .is_some_and(|r| r.contains("call me back"))
        );
    }
    // A wrong secret does not verify.
    let (headers, body) = &deliveries[1];
    let mut wrong = Hmac::<Sha256>::new_from_slice(b"not-the-secret-at-all")?;
    wrong.update(format!("{}.{body}", headers["x-arshai-timestamp"].to_str()?).as_bytes());
    let wrong: String = wrong
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_ne!(
        headers["x-arshai-signature"].to_str()?,
        format!("sha256={wrong}")
    );
    Ok(())
}
