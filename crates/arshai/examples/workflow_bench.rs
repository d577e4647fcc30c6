//! The workflow engine's own overhead per node. Run with
//! `nice cargo run --release -p arshai --no-default-features --example workflow_bench`.
//!
//! A workflow of 10 function nodes in a chain (each adds 1 to the previous node's output,
//! read from the state) against the same 10 functions called directly, one after another,
//! on a current-thread runtime. Prints the time per run of each, the ratio, and the
//! engine's overhead per node: (workflow − direct) / 10.
//!
//! Environment: `BENCH_RUNS` (default 200 000) runs of each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arshai::workflow::{NodeError, RunOptions, Workflow};
use serde_json::{Value, json};

const NODES: usize = 10;

/// The work of one node: the number in, the number plus one out.
async fn step(input: Value) -> Result<Value, NodeError> {
    Ok(json!(input.as_i64().unwrap_or(0) + 1))
}

fn chain() -> Arc<Workflow> {
    let mut builder = Workflow::builder("chain");
    for at in 0..NODES {
        let input = if at == 0 {
            "/input".to_owned()
        } else {
            format!("/n{}", at - 1)
        };
        builder =
            builder.node(arshai::workflow::Node::from_fn(format!("n{at}"), step).input(input));
        if at > 0 {
            builder = builder.edge(format!("n{}", at - 1), format!("n{at}"));
        }
    }
    builder.build().expect("the chain is valid").shared()
}

fn per_run(elapsed: Duration, runs: u32) -> f64 {
    elapsed.as_secs_f64() * 1e9 / f64::from(runs)
}

fn main() -> anyhow::Result<()> {
    let runs: u32 = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let workflow = chain();
    runtime.block_on(async {
        let check = workflow.run_to_end(json!(0), RunOptions::default()).await?;
        anyhow::ensure!(check.output == json!(NODES), "the chain adds {NODES}");

        // Warm both paths, then measure each in turn, twice, keeping the faster pass.
        let mut direct_best = f64::MAX;
        let mut engine_best = f64::MAX;
        for _ in 0..2 {
            let started = Instant::now();
            let mut sum = 0i64;
            for _ in 0..runs {
                let mut value = json!(0);
                for _ in 0..NODES {
                    value = step(value).await?;
                }
                sum += value.as_i64().unwrap_or(0);
            }
            direct_best = direct_best.min(per_run(started.elapsed(), runs));
            anyhow::ensure!(sum == i64::from(runs) * NODES as i64);

            let started = Instant::now();
            let mut sum = 0i64;
            for _ in 0..runs {
                let options = RunOptions {
                    run_id: String::new(),
                    ..RunOptions::default()
                };
                let run = workflow.run_to_end(json!(0), options).await?;
                sum += run.output.as_i64().unwrap_or(0);
            }
            engine_best = engine_best.min(per_run(started.elapsed(), runs));
            anyhow::ensure!(sum == i64::from(runs) * NODES as i64);
        }
        println!("runs of each: {runs}");
        println!("direct: 10 functions called in turn: {direct_best:.0} ns per run");
        println!("engine: a workflow of 10 function nodes: {engine_best:.0} ns per run");
        println!("ratio engine/direct: {:.1}x", engine_best / direct_best);
        println!(
            "engine overhead per node: {:.0} ns",
            (engine_best - direct_best) / NODES as f64
        );
        Ok(())
    })
}
