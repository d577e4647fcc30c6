//! What a rate-limit check and a cache hit cost, against the bare Redis round trips they
//! are built on, measured in the same run at concurrency 1.
//!
//! ```text
//! cargo run --release --no-default-features -p arshai --example limits_bench [-- ITERATIONS]
//! ```
//!
//! Starts its own `redis-server` (the test kit's), or uses `REDIS_URL` when set. Prints,
//! for each operation, mean / p50 / p99 / p99.9 latency, and the ratios of the checks to
//! the baselines: a bare `GET` and a bare `EVALSHA` of a script that returns at once, sent
//! over the same kind of multiplexed connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arshai::cache::{
    AgentCacheSettings, CacheControl, CacheSettings, CacheStats, CachingClient, InProcessCache,
    RedisCache, ResponseCache,
};
use arshai::limits::{FleetRedis, LimitStats, LimitsSettings, RateLimiter, RateLimits, Subject};
use arshai::llm::{
    ChatRequest, ChatResponse, FinishReason, LlmClient, LlmError, Message, Sampling, Usage,
};
use arshai::memory::redis::RedisStoreConfig;
use async_trait::async_trait;

/// An upstream that answers at once (only misses reach it).
struct Instant0;

#[async_trait]
impl LlmClient for Instant0 {
    fn provider(&self) -> &'static str {
        "bench"
    }
    fn default_model(&self) -> &str {
        "bench-1"
    }
    async fn chat(&self, _request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        Ok(ChatResponse {
            text: "A cached answer of a typical length, about two hundred bytes long, which is \
                   what a short support reply looks like once it is serialised with its usage."
                .to_owned(),
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage: Usage {
                input_tokens: 120,
                output_tokens: 40,
                total_tokens: 160,
                reasoning_tokens: None,
            },
            model: "bench-1".to_owned(),
            request_id: None,
            logprobs: None,
        })
    }
}

/// Latency figures of one operation.
struct Figures {
    name: &'static str,
    mean: Duration,
    p50: Duration,
    p99: Duration,
    p999: Duration,
}

impl Figures {
    fn of(name: &'static str, mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        let total: Duration = samples.iter().sum();
        Self {
            name,
            mean: total / samples.len() as u32,
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
        }
    }

    fn print(&self) {
        println!(
            "{:<34} mean {:>8.1} µs   p50 {:>8.1} µs   p99 {:>8.1} µs   p99.9 {:>8.1} µs",
            self.name,
            micros(self.mean),
            micros(self.p50),
            micros(self.p99),
            micros(self.p999)
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn measure<F, Fut>(
    name: &'static str,
    iterations: usize,
    mut op: F,
) -> anyhow::Result<Figures>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for _ in 0..iterations / 10 {
        op().await?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        op().await?;
        samples.push(started.elapsed());
    }
    Ok(Figures::of(name, samples))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let (_server, url) = match std::env::var("REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = arshai_testkit::RedisServer::start().await?;
            let url = server.url();
            (Some(server), url)
        }
    };
    println!("limits_bench: {iterations} iterations per operation, concurrency 1, {url}");

    // Baselines: bare round trips on a multiplexed connection.
    let client = redis::Client::open(url.as_str())?;
    let connection = client.get_multiplexed_async_connection().await?;
    redis::cmd("SET")
        .arg("bench:plain")
        .arg("x".repeat(200))
        .query_async::<()>(&mut connection.clone())
        .await?;
    let script = redis::Script::new("return 1");
    script
        .prepare_invoke()
        .load_async(&mut connection.clone())
        .await?;
    let sha = script.get_hash().to_owned();
    let get = measure("baseline: GET (200 B)", iterations, || {
        let mut c = connection.clone();
        async move {
            let _: Vec<u8> = redis::cmd("GET")
                .arg("bench:plain")
                .query_async(&mut c)
                .await?;
            Ok(())
        }
    })
    .await?;
    let evalsha = measure("baseline: EVALSHA (return 1)", iterations, || {
        let mut c = connection.clone();
        let sha = sha.clone();
        async move {
            let _: i64 = redis::cmd("EVALSHA")
                .arg(sha)
                .arg(0)
                .query_async(&mut c)
                .await?;
            Ok(())
        }
    })
    .await?;

    // A rate-limit check on Redis: key rpm + tpm and tenant rpm + tpm (4 cells, 1 script),
    // limits high enough that every check is admitted.
    let config = RedisStoreConfig::standalone(url.clone());
    let fleet = FleetRedis::open(&config, 64).await?;
    let mut settings = LimitsSettings::default();
    let huge = RateLimits {
        requests_per_minute: Some(1_000_000_000),
        tokens_per_minute: Some(1_000_000_000_000),
    };
    settings.key = huge;
    settings.tenant = huge;
    let limiter = RateLimiter::redis(&fleet, &settings, Arc::new(LimitStats::default()));
    let subject = Subject::new("bench-tenant", Some("bench-key".to_owned()), &settings);
    let check = measure("rate-limit check (Redis, 4 cells)", iterations, || {
        let limiter = &limiter;
        let subject = &subject;
        async move {
            let decision = limiter.check(subject, 500).await?;
            anyhow::ensure!(decision.allowed);
            Ok(())
        }
    })
    .await?;

    // Cache hits, on Redis and in process.
    let request = ChatRequest {
        system: Some("You are a support agent.".to_owned()),
        messages: vec![Message::user("How do I reset my password?")],
        sampling: Sampling {
            temperature: Some(0.0),
            ..Sampling::default()
        },
        ..ChatRequest::default()
    };
    let cache_settings = CacheSettings::default();
    let policy = AgentCacheSettings::default();
    let control = CacheControl::new(Some("bench-tenant"), false);
    let mut hits = Vec::new();
    for (name, cache) in [
        (
            "cache hit (Redis)",
            Arc::new(RedisCache::new(&fleet, &cache_settings)) as Arc<dyn ResponseCache>,
        ),
        (
            "cache hit (in-process)",
            Arc::new(InProcessCache::new(&cache_settings)) as Arc<dyn ResponseCache>,
        ),
    ] {
        let stats = Arc::new(CacheStats::default());
        let client = CachingClient::new(
            Arc::new(Instant0),
            cache,
            stats.clone(),
            // A fresh agent name per run, so a reused REDIS_URL starts with a miss.
            format!("bench-agent-{}", uuid::Uuid::new_v4()),
            &policy,
            &cache_settings,
        );
        control.scope(client.chat(&request)).await?;
        let figures = measure(name, iterations, || {
            let client = &client;
            let request = &request;
            let control = &control;
            async move {
                control.scope(client.chat(request)).await?;
                Ok(())
            }
        })
        .await?;
        anyhow::ensure!(
            stats.snapshot().misses == 1,
            "every measured call was a hit"
        );
        hits.push(figures);
    }

    // Throughput at 64 concurrent tasks on one link: checks against bare EVALSHAs.
    let concurrent = |label: &'static str,
                      run: Arc<
        dyn Fn() -> futures::future::BoxFuture<'static, anyhow::Result<()>> + Send + Sync,
    >| async move {
        let per_task = (iterations / 64).max(1);
        let started = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let run = run.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        run().await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        let rate = (per_task * 64) as f64 / started.elapsed().as_secs_f64();
        println!("{label:<34} {rate:>10.0} ops/s at 64 concurrent tasks");
        anyhow::Ok(rate)
    };
    println!();
    let limiter = Arc::new(limiter);
    let bare_rate = {
        let connection = connection.clone();
        let sha = sha.clone();
        concurrent(
            "baseline: EVALSHA",
            Arc::new(move || {
                let mut c = connection.clone();
                let sha = sha.clone();
                Box::pin(async move {
                    let _: i64 = redis::cmd("EVALSHA")
                        .arg(sha)
                        .arg(0)
                        .query_async(&mut c)
                        .await?;
                    Ok(())
                })
            }),
        )
        .await?
    };
    let check_rate = {
        let limiter = limiter.clone();
        let subject = subject.clone();
        concurrent(
            "rate-limit check (Redis, 4 cells)",
            Arc::new(move || {
                let limiter = limiter.clone();
                let subject = subject.clone();
                Box::pin(async move {
                    anyhow::ensure!(limiter.check(&subject, 500).await?.allowed);
                    Ok(())
                })
            }),
        )
        .await?
    };
    println!(
        "check throughput / EVALSHA throughput: ×{:.2}",
        check_rate / bare_rate
    );

    println!();
    for figures in [&get, &evalsha, &check, &hits[0], &hits[1]] {
        figures.print();
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!();
    println!(
        "check / EVALSHA: mean ×{:.2}, p50 ×{:.2}",
        ratio(check.mean, evalsha.mean),
        ratio(check.p50, evalsha.p50)
    );
    println!(
        "Redis hit / GET: mean ×{:.2}, p50 ×{:.2}",
        ratio(hits[0].mean, get.mean),
        ratio(hits[0].p50, get.p50)
    );
    println!(
        "check + Redis hit / (EVALSHA + GET): mean ×{:.2}",
        ratio(check.mean + hits[0].mean, evalsha.mean + get.mean)
    );
    Ok(())
}
