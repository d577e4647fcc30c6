//! LLM-layer benchmarks.
//!
//! - `llm_overhead/*`: CPU time of the calling thread per non-streaming call against the
//!   local fake upstream (which runs on other threads, so its work is not counted), for the
//!   full arshai client (factory composition: limiter, circuit breaker, retries, JSON
//!   encode/decode) and for a bare `reqwest` POST of the same bytes. CPU time is read from
//!   `/proc/thread-self/schedstat` (nanoseconds on CPU), so other processes on the machine
//!   do not inflate it the way they inflate wall time.
//! - `sse_decode/*`: throughput of SSE framing + OpenAI chunk decoding on one core.
//!
//! Run: `cargo bench -p arshai --bench llm`.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use arshai::llm::openai_stream::OpenAiStreamDecoder;
use arshai::llm::sse;
use arshai::llm::{ChatRequest, ClientFactory, LlmClient, LlmError, Message, StreamEvent};
use arshai::settings::{ProviderChoice, ProvidersSettings};
use arshai_testkit::{FakeUpstream, UpstreamOptions};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;

/// Nanoseconds the calling thread has spent on a CPU.
fn thread_cpu_nanos() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Starts the fake upstream on its own runtime and threads; returns its base URL.
fn upstream_on_other_threads() -> String {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let upstream = FakeUpstream::start_with(UpstreamOptions::default())
                .await
                .expect("upstream");
            sender.send(upstream.base_url()).expect("send");
            upstream.wait_forever().await;
        });
    });
    receiver.recv().expect("upstream URL")
}

fn request() -> ChatRequest {
    ChatRequest {
        system: Some("You are terse.".into()),
        messages: vec![Message::user(
            "What is the capital of Norway? Answer in one word.",
        )],
        ..ChatRequest::default()
    }
}

fn overhead(c: &mut Criterion) {
    let base_url = upstream_on_other_threads();
    // One thread does all the client work: hyper's connection tasks run on it too.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut settings = ProvidersSettings::default();
    settings.openai.base_url = Some(base_url.clone());
    settings.openai.api_key = Some("sk-bench".into());
    settings.openai.model = "gpt-bench".into();
    let client: Arc<dyn LlmClient> = runtime.block_on(async {
        ClientFactory::new(settings)
            .client(ProviderChoice::Openai)
            .expect("client")
    });
    let request = request();
    // The exact bytes the arshai client sends for this request.
    let body = Bytes::from(
        serde_json::json!({
            "model": "gpt-bench",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What is the capital of Norway? Answer in one word."}
            ]
        })
        .to_string(),
    );
    let bare = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .expect("reqwest");
    let endpoint = format!("{base_url}/chat/completions");

    let mut group = c.benchmark_group("llm_overhead");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("arshai_chat_cpu", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = thread_cpu_nanos();
                for _ in 0..iters {
                    let response = client.chat(&request).await.expect("chat");
                    std::hint::black_box(response);
                }
                Duration::from_nanos(thread_cpu_nanos() - start)
            })
        })
    });
    group.bench_function("bare_reqwest_cpu", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = thread_cpu_nanos();
                for _ in 0..iters {
                    let response = bare
                        .post(&endpoint)
                        .header("authorization", "Bearer sk-bench")
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("post");
                    let bytes = response.bytes().await.expect("body");
                    std::hint::black_box(bytes);
                }
                Duration::from_nanos(thread_cpu_nanos() - start)
            })
        })
    });
    group.bench_function("arshai_chat_wall", |b| {
        b.iter(|| {
            runtime.block_on(async {
                std::hint::black_box(client.chat(&request).await.expect("chat"));
            })
        })
    });
    group.bench_function("bare_reqwest_wall", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = bare
                    .post(&endpoint)
                    .header("authorization", "Bearer sk-bench")
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("post");
                std::hint::black_box(response.bytes().await.expect("body"));
            })
        })
    });
    group.finish();
}

/// A realistic OpenAI stream: a first role chunk, word-sized content deltas, a finish chunk,
/// a usage chunk and `[DONE]`, repeated to `target` bytes, cut into 16 KiB reads.
fn openai_stream_bytes(target: usize) -> (Vec<Bytes>, usize) {
    let mut text = String::new();
    let chunk = |delta: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\
             \"created\":1741569952,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\
             \"system_fingerprint\":\"fp_eb9dce56a8\",\"choices\":[{{\"index\":0,\"delta\":{delta},\
             \"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
        )
    };
    text.push_str(&chunk(
        r#"{"role":"assistant","content":"","refusal":null}"#,
    ));
    let words = [
        "The", " capital", " of", " Norway", " is", " Oslo", ",", " a", " city", " on",
    ];
    let mut i = 0;
    while text.len() < target {
        text.push_str(&chunk(&format!(
            r#"{{"content":"{}"}}"#,
            words[i % words.len()]
        )));
        i += 1;
    }
    text.push_str("data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n");
    text.push_str("data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":9000,\"total_tokens\":9020}}\n\n");
    text.push_str("data: [DONE]\n\n");
    let bytes = text.into_bytes();
    let total = bytes.len();
    let reads = bytes
        .chunks(16 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    (reads, total)
}

async fn decode_all(reads: Vec<Bytes>) -> usize {
    let body = futures::stream::iter(reads.into_iter().map(Ok::<_, LlmError>));
    let data = sse::event_data("openai", body);
    let mut events = Box::pin(sse::decode(data, OpenAiStreamDecoder::new("openai")));
    let mut count = 0;
    while let Some(event) = events.next().await {
        if let Ok(StreamEvent::TextDelta(text)) = event {
            count += text.len();
        }
    }
    count
}

fn sse_decoding(c: &mut Criterion) {
    let (reads, total) = openai_stream_bytes(4 * 1024 * 1024);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("sse_decode");
    group.throughput(Throughput::Bytes(total as u64));
    group.sample_size(20);
    group.bench_function("openai_4MiB", |b| {
        b.iter(|| runtime.block_on(decode_all(reads.clone())))
    });
    group.finish();
}

criterion_group!(benches, overhead, sse_decoding);
criterion_main!(benches);
