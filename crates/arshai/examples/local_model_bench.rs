//! Benchmark of the embedded local model: load time, prompt-processing and generation
//! tokens/s, and the process's peak RSS.
//!
//! ```sh
//! scripts/fetch-model
//! cargo run --release -p arshai --example local_model_bench -- --threads 2
//! # `--threads N`: kernel threads per forward pass (default: the available CPUs);
//! # `--q8_0` to measure with the weights re-quantized to Q8_0; `--long-prompt` for a
//! # ~250-token prompt instead of ~47 (llama-bench pp47); scripts/bench-local runs it
//! ```

use std::time::{Duration, Instant};

use arshai::llm::{ChatRequest, LlmClient, LocalClient, Message, Sampling, StreamEvent};
use arshai::settings::LocalProviderSettings;
use futures::StreamExt;

const RUNS: usize = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let q8_0 = args.iter().any(|arg| arg == "--q8_0");
    let long_prompt = args.iter().any(|arg| arg == "--long-prompt");
    let kernel_threads = match args.iter().position(|arg| arg == "--threads") {
        Some(at) => args
            .get(at + 1)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("--threads needs a number"))?,
        None => 0,
    };
    let settings = LocalProviderSettings {
        threads: 1,
        kernel_threads,
        requantize_q8_0: q8_0,
        ..LocalProviderSettings::default()
    };
    let started = Instant::now();
    let client = LocalClient::new(&settings)?;
    while !client.is_loaded() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "load timed out"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let load = started.elapsed();

    // Warm-up (first-use allocations, caches).
    run(&client, &request("Say hello.", 8)).await?;

    // About the length of llama-bench's pp47 with the chat template around it; with
    // `--long-prompt`, a 12 times longer text.
    let long_text = "The quick brown fox jumps over the lazy dog while the river keeps flowing \
                     past the old mill. "
        .repeat(if long_prompt { 12 } else { 1 });
    let mut prompt_rates = Vec::new();
    let mut prompt_tokens = 0;
    for _ in 0..RUNS {
        let timing = run(&client, &request(&format!("Summarize: {long_text}"), 1)).await?;
        prompt_tokens = timing.input_tokens;
        prompt_rates.push(timing.input_tokens as f64 / timing.first_token.as_secs_f64());
    }
    let mut generation_rates = Vec::new();
    let mut generated = 0;
    for _ in 0..RUNS {
        let mut story = request(
            "Write a long story about a dragon who learns to bake bread.",
            256,
        );
        // Never stop early: exactly 256 tokens, as llama-bench's tg256.
        story.sampling.logit_bias = [("0".to_owned(), -100.0), ("2".to_owned(), -100.0)]
            .into_iter()
            .collect();
        let timing = run(&client, &story).await?;
        generated = timing.output_tokens;
        let decoding = timing.total - timing.first_token;
        generation_rates.push((timing.output_tokens - 1) as f64 / decoding.as_secs_f64());
    }
    println!(
        "weights: {}",
        if q8_0 {
            "Q4_1 re-quantized to Q8_0"
        } else {
            "Q4_1 as shipped"
        }
    );
    println!("kernel threads: {}", settings.resolved_kernel_threads());
    println!("load (metadata + weights): {:.2} s", load.as_secs_f64());
    println!(
        "prompt processing: {:.0} tokens/s (median of {RUNS}, {prompt_tokens}-token prompt)",
        median(prompt_rates)
    );
    println!(
        "generation: {:.1} tokens/s (median of {RUNS}, {generated} tokens, greedy)",
        median(generation_rates)
    );
    println!("peak RSS: {} MB", peak_rss_kb().unwrap_or(0) / 1024);
    Ok(())
}

fn request(text: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        system: Some("You are a helpful assistant.".to_owned()),
        messages: vec![Message::user(text)],
        sampling: Sampling {
            max_tokens: Some(max_tokens),
            ..Sampling::default()
        },
        ..ChatRequest::default()
    }
}

struct Timing {
    first_token: Duration,
    total: Duration,
    input_tokens: u64,
    output_tokens: u64,
}

/// Streams one answer; the first event marks the end of prompt processing plus one token.
async fn run(client: &LocalClient, request: &ChatRequest) -> anyhow::Result<Timing> {
    let started = Instant::now();
    let mut first_token = None;
    let mut usage = None;
    let mut events = client.stream(request);
    while let Some(event) = events.next().await {
        let event = event?;
        first_token.get_or_insert_with(|| started.elapsed());
        if let StreamEvent::Usage(reported) = event {
            usage = Some(reported);
        }
    }
    let usage = usage.ok_or_else(|| anyhow::anyhow!("no usage reported"))?;
    Ok(Timing {
        first_token: first_token.unwrap_or_default(),
        total: started.elapsed(),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
