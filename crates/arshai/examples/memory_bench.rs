//! Memory-store benchmark. Run with `cargo run --release -p arshai --example memory_bench`.
//!
//! Prints:
//! - in-memory appends/s and loads/s, on one thread and on all threads;
//! - bytes per stored conversation of 20 short messages at 100k conversations (RSS delta);
//! - Redis turns/s (load + append) at 64 concurrent tasks against a real `redis-server`,
//!   p50/p99 of load and append, and `redis-benchmark` on the same server for comparison.
//!
//! Environment: `BENCH_SECONDS` (default 5) per Redis phase; `BENCH_TOPOLOGY=cluster` runs the
//! Redis phase on a 3-master cluster (and `redis-benchmark --cluster`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arshai::llm::Message;
use arshai::memory::{
    ConversationId, ConversationKey, InMemoryStore, InMemoryStoreConfig, LeaseSettings,
    MemoryStore, RedisStore, RedisStoreConfig, RedisTopology, Turn, TurnStart,
};
use arshai_testkit::{RedisCluster, RedisServer, redis_cli};

/// Scripts clients sent the servers on `ports`, from `INFO commandstats` (which also counts
/// the commands run inside scripts, so only `EVALSHA`/`EVAL` are counted: every command a
/// turn sends is a script).
async fn command_calls(ports: &[u16]) -> anyhow::Result<u64> {
    let mut total = 0;
    for port in ports {
        let stats = redis_cli(*port, &["INFO", "commandstats"]).await?;
        for line in stats.lines() {
            let Some((name, rest)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            if !matches!(name, "evalsha" | "eval") {
                continue;
            }
            if let Some(calls) = rest
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))
                .and_then(|n| n.parse::<u64>().ok())
            {
                total += calls;
            }
        }
    }
    Ok(total)
}

fn key(i: usize) -> ConversationKey {
    ConversationKey::new(
        "bench",
        ConversationId::parse(format!("conversation-{i}")).expect("valid id"),
    )
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Runs `per_task` operations on each of `tasks` tasks; returns operations per second.
async fn in_memory_rate(
    store: Arc<InMemoryStore>,
    tasks: usize,
    per_task: usize,
    load: bool,
) -> f64 {
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let message = [Message::user("a short message of about forty bytes....")];
            for i in 0..per_task {
                let k = key((task * 7919 + i) % 10_000);
                if load {
                    std::hint::black_box(store.load(&k).await.expect("load"));
                } else {
                    store.append(&k, &message, None).await.expect("append");
                }
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    (tasks * per_task) as f64 / started.elapsed().as_secs_f64()
}

fn in_memory_store() -> Arc<InMemoryStore> {
    Arc::new(InMemoryStore::new(InMemoryStoreConfig {
        ttl: Duration::from_secs(3600),
        max_conversations: 200_000,
        max_conversations_total: None,
        max_messages: 20,
    }))
}

fn bench_in_memory() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (label, workers) in [("1 thread", 1), ("all threads", threads)] {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let store = in_memory_store();
            let appends = in_memory_rate(store.clone(), workers, 400_000 / workers, false).await;
            let loads = in_memory_rate(store, workers, 400_000 / workers, true).await;
            println!(
                "in-memory {label} ({workers} worker(s)): {appends:.0} appends/s, {loads:.0} loads/s \
                 (1-message appends, loads of 20-message conversations, 10k conversations)"
            );
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = in_memory_store();
        let messages: Vec<Message> = (0..20)
            .map(|i| {
                if i % 2 == 0 {
                    Message::user(format!("short user message {i}"))
                } else {
                    Message::assistant(format!("short answer number {i}"))
                }
            })
            .collect();
        let before = rss_bytes();
        for i in 0..100_000 {
            store.append(&key(i), &messages, None).await.expect("append");
        }
        store.run_pending_tasks();
        let after = rss_bytes();
        let count = store.conversation_count().await.expect("count");
        println!(
            "in-memory footprint: {count} conversations x 20 short messages: RSS +{:.1} MiB = {} bytes per conversation",
            (after - before) as f64 / (1024.0 * 1024.0),
            (after.saturating_sub(before)) / count.max(1)
        );
    });
}

async fn bench_redis(seconds: u64, cluster: bool) -> anyhow::Result<()> {
    // The servers stay up (and are killed on drop) until the benchmark ends.
    let (_standalone, _cluster, topology, port, name) = if cluster {
        let cluster = RedisCluster::start().await?;
        let seeds = cluster.seeds();
        let port = seeds[0].rsplit(':').next().unwrap_or_default().to_owned();
        (
            None,
            Some(cluster),
            RedisTopology::Cluster { nodes: seeds },
            port,
            "cluster (3 masters)",
        )
    } else {
        let server = RedisServer::start().await?;
        let url = server.url();
        let port = server.port().to_string();
        (
            Some(server),
            None,
            RedisTopology::Standalone { url },
            port,
            "standalone",
        )
    };
    let ports: Vec<u16> = match &_cluster {
        Some(cluster) => cluster
            .seeds()
            .iter()
            .filter_map(|seed| seed.rsplit(':').next()?.parse().ok())
            .collect(),
        None => vec![port.parse()?],
    };
    let store = Arc::new(
        RedisStore::open(RedisStoreConfig {
            topology,
            db: 0,
            key_prefix: "bench".to_owned(),
            ttl: Duration::from_secs(3600),
            max_conversations: 100_000,
            max_conversations_total: None,
            index_buckets: 0,
            max_messages: 50,
            max_in_flight: 64,
            pool_wait: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            retry_on_timeout: true,
        })
        .await?,
    );
    store.health_check().await?;
    let before = command_calls(&ports).await?;
    let tasks = 64;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut loads = Vec::new();
            let mut appends = Vec::new();
            let mut turn = 0usize;
            while Instant::now() < deadline {
                let k = key(task * 1000 + turn % 1000);
                let t0 = Instant::now();
                let TurnStart::Open(open) = Turn::begin(
                    store.clone() as Arc<dyn MemoryStore>,
                    k,
                    LeaseSettings::default(),
                    None,
                )
                .await?
                else {
                    anyhow::bail!("no idempotency key was sent");
                };
                let t1 = Instant::now();
                open.commit(
                    &[
                        Message::user("what is the weather like?"),
                        Message::assistant("sunny, 21 degrees, light wind"),
                    ],
                    None,
                )
                .await?;
                let t2 = Instant::now();
                loads.push(t1 - t0);
                appends.push(t2 - t1);
                turn += 1;
            }
            anyhow::Ok((loads, appends))
        }));
    }
    let mut loads = Vec::new();
    let mut appends = Vec::new();
    for handle in handles {
        let (l, a) = handle.await??;
        loads.extend(l);
        appends.extend(a);
    }
    let elapsed = started.elapsed().as_secs_f64();
    loads.sort();
    appends.sort();
    let count = loads.len();
    let turns = count as f64 / elapsed;
    let after = command_calls(&ports).await?;
    let per_turn = (after - before) as f64 / count as f64;
    println!(
        "redis {name}, {tasks} tasks, {seconds} s: {turns:.0} turns/s (begin + commit of 2 \
         messages; {per_turn:.2} commands per turn from INFO commandstats, 2 sequential round \
         trips)"
    );
    println!(
        "  begin  p50 {:?} p99 {:?}\n  commit p50 {:?} p99 {:?}",
        percentile(&loads, 0.5),
        percentile(&loads, 0.99),
        percentile(&appends, 0.5),
        percentile(&appends, 0.99)
    );
    let n = "200000".to_owned();
    for args in [
        vec!["-t", "set,get,lpush,lrange_100"],
        vec![
            "EVAL",
            "redis.call('RPUSH', KEYS[1], ARGV[1]); redis.call('HINCRBY', KEYS[1] .. 'h', 'v', 1); return 1",
            "1",
            "rb:{__rand_int__}",
            "x",
        ],
    ] {
        let output = tokio::process::Command::new("redis-benchmark")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-c",
                "64",
                "-n",
                &n,
                "-r",
                "64000",
                "-q",
            ])
            .args(&args)
            .output()
            .await?;
        for line in String::from_utf8_lossy(&output.stdout).split(['\r', '\n']) {
            if line.contains("requests per second") {
                println!(
                    "  redis-benchmark -c 64 -n {n} {}: {}",
                    args[0],
                    line.trim()
                );
            }
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // BENCH_TOPOLOGY=cluster runs only the Redis phase, on a 3-master cluster.
    let cluster = std::env::var("BENCH_TOPOLOGY").is_ok_and(|t| t == "cluster");
    if !cluster {
        bench_in_memory();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench_redis(seconds, cluster))
}
