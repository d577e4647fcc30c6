//! `arshai bench`: drives a running server with N concurrent conversations for a duration
//! and reports throughput, latency percentiles, errors by status, and the server's RSS and
//! CPU per turn (read from its `/metrics`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

/// Flags of `arshai bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// The agent to talk to.
    #[arg(long, default_value = "assistant")]
    pub agent: String,
    /// Concurrent conversations (one request in flight each).
    #[arg(long, short = 'c', default_value_t = 64)]
    pub concurrency: usize,
    /// How long to run, in seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Turns per conversation before a worker starts a new one (keeps histories short).
    #[arg(long, default_value_t = 10)]
    pub turns_per_conversation: u32,
    /// Draw every turn's conversation at random from this many shared ids instead (`0`: each
    /// worker has its own). Random ids collide: a turn may find its conversation busy.
    #[arg(long, default_value_t = 0)]
    pub conversations: u64,
    /// Run this long first, in seconds, without measuring (connections, caches, Redis).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// The message sent on every turn.
    #[arg(long, default_value = "Hello, how are you?")]
    pub message: String,
    /// API key (sent as `Authorization: Bearer`).
    #[arg(long, env = "ARSHAI_BENCH_API_KEY")]
    pub api_key: Option<String>,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
}

/// What one worker saw.
#[derive(Debug, Default)]
struct WorkerResult {
    latencies_us: Vec<u64>,
    errors: BTreeMap<String, u64>,
}

/// Process figures read from the server's `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct ServerSample {
    rss_bytes: Option<f64>,
    cpu_seconds: Option<f64>,
}

async fn sample_server(http: &reqwest::Client, url: &str) -> ServerSample {
    let Ok(response) = http.get(format!("{url}/metrics")).send().await else {
        return ServerSample::default();
    };
    let Ok(text) = response.text().await else {
        return ServerSample::default();
    };
    let value = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse::<f64>().ok())
    };
    ServerSample {
        rss_bytes: value("process_resident_memory_bytes"),
        cpu_seconds: value("process_cpu_seconds_total"),
    }
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn worker(
    http: reqwest::Client,
    args: Arc<BenchArgs>,
    index: usize,
    until: Instant,
    done: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> WorkerResult {
    let url = format!("{}/v1/agents/{}/messages", args.url, args.agent);
    let mut result = WorkerResult::default();
    let mut conversation = 0u64;
    let mut turn = 0u32;
    let run = uuid::Uuid::new_v4().simple().to_string();
    // xorshift64*, seeded per worker: enough to spread turns over the shared ids.
    let mut seed = (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    while Instant::now() < until {
        let id = if args.conversations > 0 {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            let pick = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) % args.conversations;
            format!("bench-shared-{pick}")
        } else {
            if turn == args.turns_per_conversation.max(1) {
                conversation += 1;
                turn = 0;
            }
            turn += 1;
            format!("bench-{run}-{index}-{conversation}")
        };
        let mut request = http
            .post(&url)
            .json(&json!({"conversation_id": id, "message": args.message}));
        if let Some(key) = &args.api_key {
            request = request.bearer_auth(key);
        }
        let start = Instant::now();
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                // Read the whole body: the turn is over when its last byte arrives.
                let body = response.bytes().await;
                match body {
                    Ok(_) if status.is_success() => None,
                    Ok(_) => Some(status.as_u16().to_string()),
                    Err(_) => Some("body error".to_owned()),
                }
            }
            Err(error) if error.is_timeout() => Some("timeout".to_owned()),
            Err(error) if error.is_connect() => Some("connect error".to_owned()),
            // The server closed the connection mid-request; the client pool reconnects.
            Err(_) => Some("connection closed by the server".to_owned()),
        };
        match outcome {
            None => {
                result.latencies_us.push(start.elapsed().as_micros() as u64);
                done.fetch_add(1, Ordering::Relaxed);
            }
            Some(kind) => {
                *result.errors.entry(kind).or_default() += 1;
                failed.fetch_add(1, Ordering::Relaxed);
                // Do not spin on a server that refuses instantly.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    result
}

/// Starts one worker per conversation slot, each running until `until`.
fn spawn_workers(
    http: &reqwest::Client,
    args: &Arc<BenchArgs>,
    until: Instant,
    done: &Arc<AtomicU64>,
    failed: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<WorkerResult>> {
    (0..args.concurrency)
        .map(|index| {
            tokio::spawn(worker(
                http.clone(),
                Arc::clone(args),
                index,
                until,
                Arc::clone(done),
                Arc::clone(failed),
            ))
        })
        .collect()
}

/// Runs the load test and prints the report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(
        args.duration.is_finite() && args.duration > 0.0,
        "--duration must be positive"
    );
    let args = Arc::new(BenchArgs {
        url: args.url.trim_end_matches('/').to_owned(),
        ..args
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs_f64(args.timeout))
        .tcp_nodelay(true)
        .build()
        .context("cannot build the HTTP client")?;
    if args.warmup > 0.0 {
        let until = Instant::now() + Duration::from_secs_f64(args.warmup);
        let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        for warmer in spawn_workers(&http, &args, until, &done, &failed) {
            warmer.await.context("a warm-up worker panicked")?;
        }
    }
    let before = sample_server(&http, &args.url).await;
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let until = start + duration;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let workers = spawn_workers(&http, &args, until, &done, &failed);

    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {elapsed}/{duration} {msg}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let elapsed = start.elapsed();
        bar.set_position(elapsed.as_millis().min(duration.as_millis()) as u64);
        let turns = done.load(Ordering::Relaxed);
        bar.set_message(format!(
            "{:.0} turns/s, {} errors",
            turns as f64 / elapsed.as_secs_f64().max(1e-3),
            failed.load(Ordering::Relaxed)
        ));
    }
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for handle in workers {
        let result = handle.await.context("a bench worker panicked")?;
        latencies.extend(result.latencies_us);
        for (kind, count) in result.errors {
            *errors.entry(kind).or_default() += count;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let after = sample_server(&http, &args.url).await;
    latencies.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let turns = latencies.len() as u64;
    println!(
        "arshai bench: {} conversations, {:.1} s, agent {:?} at {}",
        args.concurrency, elapsed, args.agent, args.url
    );
    println!(
        "turns:      {turns} ok ({:.0} turns/s), {} errors",
        turns as f64 / elapsed,
        errors.values().sum::<u64>()
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        ms(quantile(&latencies, 0.50)),
        ms(quantile(&latencies, 0.90)),
        ms(quantile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or(0)),
    );
    for (kind, count) in &errors {
        println!("errors:     {kind}: {count}");
    }
    let mib = |bytes: Option<f64>| {
        bytes.map_or("n/a".to_owned(), |b| format!("{:.1} MiB", b / 1048576.0))
    };
    println!(
        "server RSS: {} before, {} after",
        mib(before.rss_bytes),
        mib(after.rss_bytes)
    );
    if let (Some(cpu_before), Some(cpu_after)) = (before.cpu_seconds, after.cpu_seconds)
        && turns > 0
    {
        println!(
            "server CPU: {:.3} ms per turn ({:.1} CPU s in total)",
            (cpu_after - cpu_before) * 1000.0 / turns as f64,
            cpu_after - cpu_before
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), 50);
        assert_eq!(quantile(&values, 0.99), 99);
        assert_eq!(quantile(&values, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[7], 0.99), 7);
    }
}
