//! The bare baseline of `scripts/bench-server`: what a hand-written service does for one
//! turn, on the same crates as arshai (axum, redis-rs, reqwest) and nothing else — GET the
//! conversation as one JSON blob, call the upstream, SETEX the blob back. No lease (racing
//! turns on one conversation lose updates), no admission, no metrics beyond the process's
//! CPU and RSS. The server benchmark reports every arshai figure as a ratio to this one,
//! measured by the same load generator in the same run.
//!
//! `cargo run --release -p arshai-server --example bare_baseline -- PORT REDIS_URL UPSTREAM_URL`

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use redis::AsyncCommands;
use serde_json::{Value, json};

/// Messages kept per conversation, as `ARSHAI_MEMORY__MAX_MESSAGES` in the benchmark.
const MAX_MESSAGES: usize = 20;

struct Baseline {
    redis: redis::aio::ConnectionManager,
    http: reqwest::Client,
    upstream: String,
}

async fn turn(
    State(state): State<Arc<Baseline>>,
    Path(agent): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let fail = |error: &dyn std::fmt::Display| (StatusCode::SERVICE_UNAVAILABLE, error.to_string());
    let id = body["conversation_id"]
        .as_str()
        .unwrap_or("anonymous")
        .to_owned();
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    let key = format!("bare:{agent}:{id}");
    let mut redis = state.redis.clone();
    let stored: Option<String> = redis.get(&key).await.map_err(|e| fail(&e))?;
    let mut history: Vec<Value> = stored
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    history.push(json!({"role": "user", "content": message}));
    let mut messages = vec![json!({"role": "system", "content": "You are terse."})];
    messages.extend(history.iter().cloned());
    let answer: Value = state
        .http
        .post(&state.upstream)
        .json(&json!({"model": "fake-model", "messages": messages}))
        .send()
        .await
        .map_err(|e| fail(&e))?
        .json()
        .await
        .map_err(|e| fail(&e))?;
    let reply = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    history.push(json!({"role": "assistant", "content": reply}));
    let excess = history.len().saturating_sub(MAX_MESSAGES);
    history.drain(..excess);
    let blob = serde_json::to_string(&history).map_err(|e| fail(&e))?;
    let () = redis.set_ex(&key, blob, 3600).await.map_err(|e| fail(&e))?;
    Ok(Json(json!({
        "conversation_id": id,
        "reply": reply,
        "usage": answer["usage"],
    })))
}

/// `process_cpu_seconds_total` and `process_resident_memory_bytes`, as arshai exports them,
/// so the load generator reads CPU per turn the same way from both.
async fn metrics() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat (11 and 12 after the name), in 1/100 s.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    format!(
        "process_cpu_seconds_total {cpu}\nprocess_resident_memory_bytes {}\n",
        pages * 4096.0
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().unwrap_or_else(|| "18190".to_owned()).parse()?;
    let redis_url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let upstream = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:18181/v1".to_owned());
    let redis = redis::Client::open(redis_url)?
        .get_connection_manager()
        .await?;
    let state = Arc::new(Baseline {
        redis,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(20_000)
            .tcp_nodelay(true)
            .build()?,
        upstream: format!("{}/chat/completions", upstream.trim_end_matches('/')),
    });
    let app = Router::new()
        .route("/v1/agents/{agent}/messages", post(turn))
        .route("/health/ready", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await?;
    Ok(())
}
