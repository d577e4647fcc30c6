//! `/metrics` carries every documented metric, and `promtool check metrics` accepts it.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use arshai::llm::{CircuitState, LlmEvents};
use arshai_server::metrics::MetricsLlmEvents;
use arshai_testkit::Reply;
use serde_json::json;
use support::{TestServer, sample};

/// Every metric family docs/metrics.md lists (as sample-name prefixes).
const DOCUMENTED: &[&str] = &[
    "requests_total",
    "request_duration_seconds_bucket",
    "arshai_requests_total{",
    "arshai_request_duration_seconds_bucket{",
    "arshai_active_conversations",
    "arshai_tokens_used_total{",
    "arshai_turns_in_flight",
    "arshai_admission_queue_depth",
    "arshai_admission_wait_seconds_bucket",
    "arshai_admission_rejected_total",
    "arshai_draining",
    "arshai_upstream_request_duration_seconds_bucket{",
    "arshai_upstream_errors_total{",
    "arshai_upstream_retries_total{",
    "arshai_upstream_circuit_state{",
    "arshai_memory_operation_duration_seconds_bucket{",
    "arshai_connections_open",
    "arshai_connections_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_threads",
    "arshai_cache_hits_total",
    "arshai_cache_misses_total",
    "arshai_cache_bypasses_total",
    "arshai_cache_coalesced_total",
    "arshai_cache_stored_total",
    "arshai_cache_bytes_stored_total",
    "arshai_cache_bytes_served_total",
    "arshai_cache_provider_calls_saved_total",
    "arshai_cache_tokens_saved_total",
    "arshai_cache_errors_total",
    "arshai_ratelimit_allowed_total",
    "arshai_ratelimit_refused_total",
    "arshai_ratelimit_fail_open_total",
    "arshai_ratelimit_unavailable_total",
    "arshai_budget_admitted_total",
    "arshai_budget_refused_total",
    "arshai_budget_fail_open_total",
    "arshai_budget_tokens_settled_total",
    "arshai_limits_settles_dropped_total",
];

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package `prometheus`; scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

#[tokio::test]
async fn metrics_are_complete_and_promtool_accepts_them() {
    let server = TestServer::start().await;
    let (status, _) = server
        .post(
            "assistant",
            json!({"conversation_id": "m1", "message": "hi"}),
        )
        .await;
    assert_eq!(status, 200);
    server.upstream.push(Reply::status(500));
    let (status, _) = server.post("assistant", json!({"message": "fails"})).await;
    assert_eq!(status, 502);
    let (status, _) = server.post("nobody", json!({"message": "hi"})).await;
    assert_eq!(status, 404);
    // The LLM layer reports retries and breaker changes through LlmEvents (the real
    // wiring is tested below; here the series only need to exist for promtool).
    let events = MetricsLlmEvents::new(Arc::clone(&server.state.metrics));
    events.retry("openai", "upstream_status");
    events.circuit_state("openai", CircuitState::Open);

    let text = server.metrics_text().await;
    for name in DOCUMENTED {
        assert!(
            text.lines().any(|line| line.starts_with(name)),
            "{name} is missing from /metrics:\n{text}"
        );
    }
    assert_eq!(sample(&text, "requests_total"), Some(3.0));
    assert_eq!(
        sample(
            &text,
            "arshai_requests_total{agent_type=\"unknown\",status=\"404\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "arshai_admission_rejected_total{reason=\"queue_full\"}"
        ),
        Some(0.0),
        "refusal series exist before the first refusal, so alerts on rate() work"
    );
    assert_eq!(
        sample(
            &text,
            "arshai_requests_total{agent_type=\"conversation\",status=\"200\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "arshai_requests_total{agent_type=\"conversation\",status=\"502\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "arshai_upstream_errors_total{provider=\"openai\",class=\"upstream_status\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "arshai_upstream_circuit_state{provider=\"openai\"}"),
        Some(2.0)
    );
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(
        sample(
            &text,
            "arshai_tokens_used_total{model=\"fake-model\",type=\"input\"}"
        )
        .unwrap()
            > 0.0
    );
    assert!(!text.contains("m1"), "no ids in labels");
    assert!(!text.contains("sk-test-secret"));

    let (accepted, report) = promtool_check(&text);
    assert!(
        accepted,
        "promtool check metrics refused /metrics:\n{report}\n{text}"
    );
}

#[tokio::test]
async fn promtool_is_strict_enough_to_refuse_a_broken_exposition() {
    // Guards the test above against a promtool that accepts anything.
    let (accepted, _) = promtool_check("# TYPE x counter\nx_total{a=\"1\" 5\n");
    assert!(!accepted);
}

#[tokio::test]
async fn retries_and_circuit_state_of_the_llm_layer_reach_the_metrics() {
    let upstream = arshai_testkit::FakeUpstream::start().await.unwrap();
    let mut settings = support::settings_for(&upstream);
    settings.providers.retry.max_retries = 1;
    settings.providers.retry.base_delay_seconds = 0.01;
    settings.providers.circuit.failure_threshold = 2;
    settings.providers.circuit.open_seconds = 60.0;
    let server = TestServer::start_with(upstream, settings).await;
    // One failure, then a success on the retry.
    server.upstream.push(Reply::status(500));
    let (status, body) = server.post("assistant", json!({"message": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    let text = server.metrics_text().await;
    assert_eq!(
        sample(
            &text,
            "arshai_upstream_retries_total{provider=\"openai\",class=\"upstream_status\"}"
        ),
        Some(1.0)
    );
    // Two failed attempts in a row open the breaker.
    server.upstream.push(Reply::status(500));
    server.upstream.push(Reply::status(500));
    let (status, _) = server.post("assistant", json!({"message": "hi"})).await;
    assert!(status >= 500);
    let text = server.metrics_text().await;
    assert_eq!(
        sample(&text, "arshai_upstream_circuit_state{provider=\"openai\"}"),
        Some(2.0),
        "{text}"
    );
}
