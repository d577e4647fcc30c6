//! A 3-node agent workflow against the same three agent turns made one after another by
//! hand. Run with
//! `nice cargo run --release -p arshai --example workflow_agents_bench`.
//!
//! One stateless agent on the testkit's fake upstream (OpenAI wire format over real
//! loopback HTTP, 0 ms, its own threads). The workflow chains three agent nodes (each
//! node's input is the previous node's reply); the direct path calls `respond` three times,
//! passing the reply along, the code a user would write without the engine. Both run at
//! `BENCH_CONCURRENCY` (default 16) for `BENCH_SECONDS` (default 3) per round, alternating,
//! `BENCH_ROUNDS` (default 3) rounds; prints the median runs/s of each and their ratio.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arshai::agent::{Agent, AgentInput, ConversationAgent};
use arshai::llm::openai::{OpenAiClient, OpenAiConfig};
use arshai::llm::{HttpPoolSettings, LlmClient, Message};
use arshai::memory::{InMemoryStore, InMemoryStoreConfig, MemoryStore};
use arshai::workflow::{Node, NodeMemory, RunOptions, Workflow};
use arshai_testkit::FakeUpstream;
use serde_json::{Value, json};

const NODES: usize = 3;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn chain(agent: &Arc<ConversationAgent>) -> Arc<Workflow> {
    let mut builder = Workflow::builder("three");
    for at in 0..NODES {
        let input = if at == 0 {
            "/input".to_owned()
        } else {
            format!("/n{}", at - 1)
        };
        let agent: Arc<dyn Agent> = agent.clone();
        builder = builder.node(
            Node::agent(format!("n{at}"), agent)
                .input(input)
                .memory(NodeMemory::None),
        );
        if at > 0 {
            builder = builder.edge(format!("n{}", at - 1), format!("n{at}"));
        }
    }
    builder.build().expect("the chain is valid").shared()
}

/// Three turns by hand, each on the previous reply.
async fn direct(agent: &Arc<ConversationAgent>, input: &str) -> anyhow::Result<String> {
    let mut text = input.to_owned();
    for _ in 0..NODES {
        let output = Arc::clone(agent)
            .respond(AgentInput::stateless(vec![Message::user(text)]))
            .await?;
        text = output.reply;
    }
    Ok(text)
}

async fn through_engine(workflow: &Arc<Workflow>, input: &str) -> anyhow::Result<String> {
    let output = workflow
        .run_to_end(json!(input), RunOptions::default())
        .await?;
    match output.output {
        Value::String(text) => Ok(text),
        other => anyhow::bail!("a string output, not {other}"),
    }
}

/// Runs/s of `run` at `concurrency` for `seconds`.
async fn measure<F, Fut>(concurrency: u64, seconds: u64, run: F) -> anyhow::Result<f64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<String>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (run, stop, done) = (run.clone(), Arc::clone(&stop), Arc::clone(&done));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    run().await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let concurrency = setting("BENCH_CONCURRENCY", 16);
    let seconds = setting("BENCH_SECONDS", 3);
    let rounds = setting("BENCH_ROUNDS", 3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let upstream = FakeUpstream::start().await?;
        let llm: Arc<dyn LlmClient> = Arc::new(OpenAiClient::new(OpenAiConfig {
            provider: "openai",
            base_url: upstream.base_url(),
            api_key: Some("sk-bench".into()),
            default_model: "fake-model".into(),
            extra_headers: Vec::new(),
            http: HttpPoolSettings::default(),
        })?);
        let memory: Arc<dyn MemoryStore> =
            Arc::new(InMemoryStore::new(InMemoryStoreConfig::default()));
        let agent = Arc::new(ConversationAgent::builder("echo", llm, memory).build());
        let workflow = chain(&agent);
        let expected = "echo: echo: echo: hello";
        anyhow::ensure!(direct(&agent, "hello").await? == expected);
        anyhow::ensure!(through_engine(&workflow, "hello").await? == expected);

        let (mut by_hand, mut engine) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let a = Arc::clone(&agent);
            let rate = measure(concurrency, seconds, move || {
                let a = Arc::clone(&a);
                async move { direct(&a, "hello").await }
            })
            .await?;
            by_hand.push(rate);
            let w = Arc::clone(&workflow);
            let rate_engine = measure(concurrency, seconds, move || {
                let w = Arc::clone(&w);
                async move { through_engine(&w, "hello").await }
            })
            .await?;
            engine.push(rate_engine);
            println!(
                "round {round}: three turns by hand {rate:.0} runs/s, 3-node workflow {rate_engine:.0} runs/s"
            );
        }
        let (by_hand, engine) = (median(by_hand), median(engine));
        println!(
            "median: by hand {by_hand:.0} runs/s ({:.0} turns/s), workflow {engine:.0} runs/s: {:.3}x",
            by_hand * NODES as f64,
            engine / by_hand
        );
        anyhow::Ok(())
    })
}
