//! Traces, end to end: the real `arshai` binary, configured only by standard `OTEL_*`
//! variables, exports OTLP/HTTP to a local collector stand-in (a real HTTP server decoding
//! the OTLP JSON encoding). A turn that arrives with a W3C `traceparent` yields a request
//! span that is its child, a turn span, memory spans and a provider span with the GenAI
//! semantic-convention attributes; the provider call carries `traceparent` upstream; and the
//! request's JSON log line names the trace id.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use arshai_testkit::FakeUpstream;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// What the collector stand-in received: one OTLP `ExportTraceServiceRequest` per POST.
type Received = Arc<Mutex<Vec<Value>>>;

async fn collect(State(received): State<Received>, body: axum::body::Bytes) -> &'static str {
    if let Ok(request) = serde_json::from_slice::<Value>(&body) {
        received
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(request);
    }
    "{}"
}

/// A span flattened: name, trace and parent ids, attributes as JSON values, resource.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: BTreeMap<String, Value>,
    service: String,
}

fn any_value(value: &Value) -> Value {
    for key in ["stringValue", "boolValue", "doubleValue"] {
        if let Some(v) = value.get(key) {
            return v.clone();
        }
    }
    // OTLP JSON encodes 64-bit integers as strings (some encoders as numbers).
    match value.get("intValue") {
        Some(Value::String(text)) => text.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

fn attributes(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv["key"].as_str()?.to_owned(), any_value(&kv["value"]))))
        .collect()
}

fn spans(received: &Received) -> Vec<Span> {
    let requests = received
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let mut out = Vec::new();
    for request in &requests {
        for resource in request["resourceSpans"].as_array().into_iter().flatten() {
            let service = attributes(&resource["resource"]["attributes"])
                .get("service.name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    out.push(Span {
                        name: span["name"].as_str().unwrap_or_default().to_owned(),
                        trace_id: span["traceId"].as_str().unwrap_or_default().to_lowercase(),
                        span_id: span["spanId"].as_str().unwrap_or_default().to_lowercase(),
                        parent: span["parentSpanId"]
                            .as_str()
                            .unwrap_or_default()
                            .to_lowercase(),
                        attributes: attributes(&span["attributes"]),
                        service: service.clone(),
                    });
                }
            }
        }
    }
    out
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_are_traced_over_otlp_http_with_genai_attributes() -> anyhow::Result<()> {
    let received: Received = Arc::default();
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let collector_url = format!("http://{}", collector.local_addr()?);
    let app = Router::new()
        .route("/v1/traces", post(collect))
        .with_state(Arc::clone(&received));
    tokio::spawn(async move { axum::serve(collector, app).await });

    let upstream = FakeUpstream::start().await?;
    let port = free_port()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_arshai"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("OPENAI_BASE_URL", upstream.base_url())
        .env("OPENAI_API_KEY", "sk-traces")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector_url)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_SERVICE_NAME", "arshai-under-test")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("ARSHAI_LOG_FORMAT", "json")
        // Log lines only at warn: spans are exported whatever RUST_LOG says.
        .env("RUST_LOG", "warn,arshai::request=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("spawn arshai")?;
    let stdout = child.stdout.take().context("stdout")?;
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let lines = Arc::clone(&log);
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..300 {
        if let Some(status) = child.try_wait()? {
            bail!("arshai exited early with {status}");
        }
        if let Ok(response) = http.get(format!("{base}/health/ready")).send().await
            && response.status() == 200
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(up, "arshai did not become ready within 30 s");

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let response = http
        .post(format!("{base}/v1/agents/assistant/messages"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({"conversation_id": "traced", "message": "hello"}))
        .send()
        .await?;
    ensure!(response.status() == 200, "turn: {}", response.status());
    let stream_trace = "0af7651916cd43dd8448eb211c80319c";
    let streamed = http
        .post(format!("{base}/v1/agents/assistant/messages"))
        .header(
            "traceparent",
            format!("00-{stream_trace}-b7ad6b7169203331-01"),
        )
        .json(&json!({"conversation_id": "traced-stream", "message": "hello", "stream": true}))
        .send()
        .await?;
    ensure!(streamed.status() == 200);
    streamed.text().await?;

    // Upstream saw the trace: same trace id, a new parent (the provider call's span).
    let calls = upstream.requests();
    let sent = calls
        .iter()
        .filter_map(|call| call.header("traceparent"))
        .collect::<Vec<_>>();
    ensure!(
        sent.len() == 2,
        "traceparent sent upstream on both calls: {sent:?}"
    );
    let parts: Vec<&str> = sent[0].split('-').collect();
    ensure!(parts.len() == 4 && parts[1] == trace_id, "{}", sent[0]);
    ensure!(
        parts[2] != caller_span,
        "the upstream's parent is arshai's span"
    );
    ensure!(sent[1].contains(stream_trace), "{}", sent[1]);

    // The spans arrive (batched every 100 ms).
    let mut found = Vec::new();
    for _ in 0..100 {
        found = spans(&received);
        let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
        if names.iter().filter(|n| n.starts_with("chat ")).count() >= 2
            && names.iter().filter(|n| **n == "invoke_agent").count() >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let of_trace: Vec<&Span> = found.iter().filter(|s| s.trace_id == trace_id).collect();
    let names: Vec<&str> = of_trace.iter().map(|s| s.name.as_str()).collect();
    let by_name = |name: &str| {
        of_trace
            .iter()
            .find(|s| s.name == name)
            .copied()
            .with_context(|| format!("no span {name} in trace {trace_id}: {names:?}"))
    };
    let request = by_name("POST")?;
    ensure!(
        request.parent == caller_span,
        "the request span is the caller's child"
    );
    ensure!(
        request.service == "arshai-under-test",
        "OTEL_SERVICE_NAME: {}",
        request.service
    );
    let turn = by_name("invoke_agent")?;
    ensure!(
        turn.parent == request.span_id,
        "the turn is inside the request"
    );
    ensure!(
        turn.attributes["gen_ai.agent.name"] == "assistant",
        "{:?}",
        turn.attributes
    );
    let chat = by_name("chat gpt-4o-mini")?;
    ensure!(
        parts[2] == chat.span_id,
        "upstream's parent is the chat span"
    );
    let attrs = &chat.attributes;
    ensure!(attrs["gen_ai.operation.name"] == "chat", "{attrs:?}");
    ensure!(attrs["gen_ai.provider.name"] == "openai", "{attrs:?}");
    ensure!(attrs["gen_ai.request.model"] == "gpt-4o-mini", "{attrs:?}");
    ensure!(
        attrs
            .get("gen_ai.usage.input_tokens")
            .and_then(Value::as_i64)
            .is_some_and(|n| n > 0),
        "{attrs:?}"
    );
    ensure!(
        attrs
            .get("gen_ai.usage.output_tokens")
            .and_then(Value::as_i64)
            .is_some_and(|n| n > 0),
        "{attrs:?}"
    );
    let memory: Vec<&&Span> = of_trace
        .iter()
        .filter(|s| s.name.starts_with("memory "))
        .collect();
    ensure!(
        memory.iter().any(|s| s.name == "memory commit_turn")
            && memory
                .iter()
                .all(|s| s.attributes["db.system.name"] == "memory"),
        "memory spans: {memory:?}"
    );

    // The streamed turn's provider span has its usage (recorded at the stream's end).
    let stream_chat = found
        .iter()
        .find(|s| s.trace_id == stream_trace && s.name.starts_with("chat "))
        .context("the streamed call's span")?;
    ensure!(
        stream_chat
            .attributes
            .get("gen_ai.usage.output_tokens")
            .and_then(Value::as_i64)
            .is_some(),
        "{:?}",
        stream_chat.attributes
    );

    // The request's log line names the trace.
    let lines = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let logged = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .any(|line| line["message"] == "request" && line["trace_id"] == trace_id);
    ensure!(logged, "a request log line with trace_id: {lines:?}");
    // A stream's line is written at its end, with the stream's tokens.
    let stream_line = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "request" && line["trace_id"] == stream_trace)
        .context("the streamed request's log line")?;
    ensure!(
        stream_line["output_tokens"].as_u64().is_some_and(|n| n > 0),
        "{stream_line}"
    );
    Ok(())
}
