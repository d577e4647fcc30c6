//! A custom workflow node, and a workflow declared in TOML that names it. Run with
//! `cargo run -p arshai --no-default-features --example custom_node`.
//!
//! `Priority` is a [`NodeFunction`]: it reads the ticket the run was given and the state,
//! and returns a JSON value the engine merges into the state under the node's output key.
//! The workflow routes on that value with a conditional edge, and runs a batch of tickets
//! three at a time.

use async_trait::async_trait;
use serde_json::{Value, json};

use arshai::workflow::{
    FnNode, NodeCatalog, NodeError, NodeFunction, RunOptions, WorkflowRegistry, WorkflowSettings,
    WorkflowState, run_batch,
};

/// Scores a ticket: urgent words raise it, a VIP customer doubles it.
struct Priority {
    urgent_words: Vec<&'static str>,
}

#[async_trait]
impl NodeFunction for Priority {
    async fn call(&self, input: Value, state: &WorkflowState) -> Result<Value, NodeError> {
        let text = input["text"]
            .as_str()
            .ok_or_else(|| NodeError::function("a ticket needs a `text`"))?
            .to_lowercase();
        let hits = self
            .urgent_words
            .iter()
            .filter(|word| text.contains(*word))
            .count() as u64;
        let vip = state.pointer("/input/vip").and_then(Value::as_bool) == Some(true);
        let score = hits * if vip { 2 } else { 1 };
        Ok(json!({"score": score, "level": if score >= 2 { "urgent" } else { "normal" }}))
    }
}

const SETTINGS: &str = r#"
[[workflows]]
name = "tickets"
output = "/queue"

[[workflows.nodes]]
name = "priority"
function = "priority"

[[workflows.nodes]]
name = "page-on-call"
function = "queue"
input = "/priority"
output = "queue"

[[workflows.nodes]]
name = "backlog"
function = "queue"
input = "/priority"
output = "queue"

[[workflows.edges]]
from = "priority"
to = "page-on-call"
when = { pointer = "/priority/level", equals = "urgent" }

[[workflows.edges]]
from = "priority"
to = "backlog"
"#;

#[derive(serde::Deserialize)]
struct Declared {
    workflows: Vec<WorkflowSettings>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let declared: Declared = toml_from(SETTINGS)?;
    let catalog = NodeCatalog::default()
        .function(
            "priority",
            Priority {
                urgent_words: vec!["down", "outage", "urgent"],
            },
        )
        .function(
            "queue",
            FnNode(|priority: Value| async move {
                Ok(json!(format!("queued at score {}", priority["score"])))
            }),
        );
    let registry = WorkflowRegistry::from_settings(&declared.workflows, &catalog)?;
    let tickets = registry
        .get("tickets")
        .ok_or_else(|| anyhow::anyhow!("declared above"))?;

    let inputs = [
        json!({"text": "The site is down, outage everywhere", "vip": false}),
        json!({"text": "Urgent: invoice question", "vip": true}),
        json!({"text": "How do I change my avatar?"}),
    ];
    for (input, result) in inputs
        .iter()
        .zip(run_batch(tickets, inputs.clone(), 3, |_| RunOptions::default()).await)
    {
        let run = result?;
        let path: Vec<&str> = run.steps.iter().map(|step| step.node.as_str()).collect();
        println!(
            "{} -> {} via {}",
            input["text"],
            run.output,
            path.join(" -> ")
        );
    }
    Ok(())
}

/// Reads TOML the way the settings loader does.
fn toml_from<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    use figment::providers::{Format, Toml};
    Ok(figment::Figment::from(Toml::string(text)).extract()?)
}
