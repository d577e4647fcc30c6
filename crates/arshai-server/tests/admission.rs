//! Overload is answered, not absorbed: a burst of five times the admission bound gets 503
//! with Retry-After for the excess, in-flight turns stay bounded, nothing crashes.

mod support;

use std::time::Duration;

use arshai_testkit::{FakeUpstream, Reply, UpstreamOptions};
use serde_json::{Value, json};
use support::{TestServer, sample, settings_for};
use tokio::time::Instant;

const IN_FLIGHT: usize = 4;
const QUEUED: usize = 2;

async fn slow_server(latency: Duration, queue_timeout: f64) -> TestServer {
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        latency,
        record: true,
        ..UpstreamOptions::default()
    })
    .await
    .unwrap();
    let mut settings = settings_for(&upstream);
    settings.admission.max_in_flight_turns = IN_FLIGHT;
    settings.admission.max_queued_turns = QUEUED;
    settings.admission.queue_timeout_seconds = queue_timeout;
    settings.admission.retry_after_seconds = 2;
    TestServer::start_with(upstream, settings).await
}

#[tokio::test]
async fn a_burst_of_five_times_the_bound_is_shed_quickly_and_bounded() {
    // The queue timeout outlives the upstream latency: queued turns get their slot.
    let server = slow_server(Duration::from_millis(1500), 30.0).await;
    let burst = 5 * (IN_FLIGHT + QUEUED);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..burst {
        let http = server.http.clone();
        let url = server.url("/v1/agents/assistant/messages");
        tasks.push(tokio::spawn(async move {
            let response = http
                .post(url)
                .json(&json!({"conversation_id": format!("c{index}"), "message": "hi"}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            (status, retry_after, body, start.elapsed())
        }));
    }
    // While the burst is held by the slow upstream, the bounds hold.
    while server.upstream.request_count() < IN_FLIGHT as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let metrics = server.metrics_text().await;
    assert_eq!(
        sample(&metrics, "arshai_turns_in_flight"),
        Some(IN_FLIGHT as f64)
    );
    assert!(sample(&metrics, "arshai_admission_queue_depth").unwrap() <= QUEUED as f64);

    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let ok: Vec<_> = results.iter().filter(|r| r.0 == 200).collect();
    let shed: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(
        ok.len(),
        IN_FLIGHT + QUEUED,
        "the running and the queued turns complete"
    );
    assert_eq!(
        shed.len(),
        burst - IN_FLIGHT - QUEUED,
        "the excess is refused"
    );
    let first_success = ok.iter().map(|r| r.3).min().unwrap();
    for (_, retry_after, body, elapsed) in &shed {
        assert_eq!(retry_after.as_deref(), Some("2"));
        assert_eq!(body["error"]["type"], "overloaded", "{body}");
        assert!(
            *elapsed < first_success,
            "refused before any admitted turn finished ({elapsed:?} vs {first_success:?})"
        );
    }
    assert_eq!(
        server.upstream.request_count(),
        (IN_FLIGHT + QUEUED) as u64,
        "refused turns never reached the LLM"
    );
    let metrics = server.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            "arshai_admission_rejected_total{reason=\"queue_full\"}"
        ),
        Some(shed.len() as f64)
    );
    assert_eq!(sample(&metrics, "arshai_turns_in_flight"), Some(0.0));
    assert_eq!(sample(&metrics, "arshai_admission_queue_depth"), Some(0.0));
    // The server still serves.
    let (status, _) = server.post("assistant", json!({"message": "after"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_queued_turn_that_waits_too_long_is_503() {
    let server = slow_server(Duration::from_millis(1500), 0.2).await;
    let mut tasks = Vec::new();
    for index in 0..IN_FLIGHT + 1 {
        let http = server.http.clone();
        let url = server.url("/v1/agents/assistant/messages");
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .json(&json!({"conversation_id": format!("q{index}"), "message": "hi"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 200, 503]);
    let metrics = server.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            "arshai_admission_rejected_total{reason=\"queue_timeout\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_request_deadline_answers_504() {
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = settings_for(&upstream);
    settings.server.request_timeout_seconds = 0.3;
    let server = TestServer::start_with(upstream, settings).await;
    server
        .upstream
        .push(Reply::text("late").delayed(Duration::from_secs(5)));
    let (status, body) = server.post("assistant", json!({"message": "hi"})).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["type"], "request_timeout");
    // The slot was given back.
    let metrics = server.metrics_text().await;
    assert_eq!(sample(&metrics, "arshai_turns_in_flight"), Some(0.0));
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = settings_for(&upstream);
    settings.admission.header_read_timeout_seconds = 0.3;
    let server = TestServer::start_with(upstream, settings).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    // Our own bound only keeps a broken server from hanging the test.
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buffer))
        .await
        .expect("the server closes the connection");
    assert!(read.is_ok() || buffer.is_empty());
    assert!(
        buffer.is_empty() || String::from_utf8_lossy(&buffer).contains("408"),
        "{}",
        String::from_utf8_lossy(&buffer)
    );
}
