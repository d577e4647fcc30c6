//! Added time to first token of a streamed turn: the server's TTFT minus the upstream's.
//!
//! ```text
//! stream_ttft --server http://127.0.0.1:8000 --upstream http://127.0.0.1:8001/v1 \
//!             [--agent assistant] [--requests 2000] [--concurrency 1] [--endpoint chat|messages]
//! ```
//!
//! Each worker alternates one streamed request straight to the upstream and one streamed
//! request through the server (stateless `/v1/chat/completions`, or with `--endpoint
//! messages` a new conversation on `/v1/agents/{agent}/messages`, which adds the turn lease
//! and the memory load), and times each from sending to the first frame that carries answer
//! text. It reports p50/p99 of both and of the paired
//! differences. `scripts/bench-stream` starts the processes and runs this at 1 and 64.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};

struct Args {
    server: String,
    upstream: String,
    agent: String,
    requests: usize,
    concurrency: usize,
    messages_endpoint: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        server: "http://127.0.0.1:8000".to_owned(),
        upstream: "http://127.0.0.1:8001/v1".to_owned(),
        agent: "assistant".to_owned(),
        requests: 2000,
        concurrency: 1,
        messages_endpoint: false,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let value = raw
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--server" => args.server = value,
            "--upstream" => args.upstream = value,
            "--agent" => args.agent = value,
            "--requests" => args.requests = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            "--endpoint" => {
                args.messages_endpoint = match value.as_str() {
                    "chat" => false,
                    "messages" => true,
                    other => bail!("--endpoint is chat or messages, not {other}"),
                }
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// Sends one streamed request and returns the time until the first text-bearing frame.
async fn ttft(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = http.post(url).json(body).send().await?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut first = None;
    while let Some(chunk) = body.next().await {
        buffer.extend_from_slice(&chunk?);
        if first.is_none() {
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = buffer.drain(..end + 2).collect();
                if has_text(&frame) {
                    first = Some(started.elapsed());
                    break;
                }
            }
        }
        // Read to the end so the connection goes back to the pool.
    }
    first.context("the stream carried no text")
}

fn has_text(frame: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(frame) else {
        return false;
    };
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .any(|data| {
            // An OpenAI chunk, or the native `delta` event.
            let text = data["choices"][0]["delta"]["content"]
                .as_str()
                .or(data["text"].as_str());
            text.is_some_and(|t| !t.is_empty())
        })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let messages = json!([{"role": "user", "content": "Tell me a short story about the sea"}]);
    let direct = json!({"model": "fake-model", "messages": messages, "stream": true});
    let direct_url = format!("{}/chat/completions", args.upstream.trim_end_matches('/'));
    let server = args.server.trim_end_matches('/');
    let (through, server_url) = if args.messages_endpoint {
        (
            json!({"message": messages[0]["content"], "stream": true}),
            format!("{server}/v1/agents/{}/messages", args.agent),
        )
    } else {
        (
            json!({"model": args.agent, "messages": messages, "stream": true}),
            format!("{server}/v1/chat/completions"),
        )
    };

    // Warm-up: connections, allocators, caches.
    for _ in 0..50.min(args.requests) {
        ttft(&http, &direct_url, &direct).await?;
        ttft(&http, &server_url, &through).await?;
    }

    let per_worker = args.requests.div_ceil(args.concurrency);
    let started = Instant::now();
    let mut workers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let (http, direct_url, server_url) = (http.clone(), direct_url.clone(), server_url.clone());
        let (direct, through) = (direct.clone(), through.clone());
        workers.push(tokio::spawn(async move {
            let mut pairs = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let upstream = ttft(&http, &direct_url, &direct).await?;
                let server = ttft(&http, &server_url, &through).await?;
                pairs.push((upstream, server));
            }
            anyhow::Ok(pairs)
        }));
    }
    let mut pairs = Vec::with_capacity(per_worker * args.concurrency);
    for worker in workers {
        pairs.extend(worker.await??);
    }
    let elapsed = started.elapsed();

    let mut upstream: Vec<Duration> = pairs.iter().map(|p| p.0).collect();
    let mut server: Vec<Duration> = pairs.iter().map(|p| p.1).collect();
    let mut added: Vec<Duration> = pairs.iter().map(|p| p.1.saturating_sub(p.0)).collect();
    upstream.sort();
    server.sort();
    added.sort();
    println!(
        "{} | concurrency {} | {} pairs in {:.1} s",
        if args.messages_endpoint {
            "messages (new conversation)"
        } else {
            "chat/completions (stateless)"
        },
        args.concurrency,
        pairs.len(),
        elapsed.as_secs_f64()
    );
    println!("                     p50 (µs)   p99 (µs)");
    for (name, values) in [("upstream TTFT", &upstream), ("server TTFT", &server)] {
        println!(
            "{name:<20} {:>9.0}  {:>9.0}",
            micros(percentile(values, 50.0)),
            micros(percentile(values, 99.0))
        );
    }
    println!(
        "{:<20} {:>9.0}  {:>9.0}",
        "added (pct diff)",
        micros(percentile(&server, 50.0)) - micros(percentile(&upstream, 50.0)),
        micros(percentile(&server, 99.0)) - micros(percentile(&upstream, 99.0)),
    );
    println!(
        "{:<20} {:>9.0}  {:>9.0}",
        "added (paired)",
        micros(percentile(&added, 50.0)),
        micros(percentile(&added, 99.0))
    );
    Ok(())
}
