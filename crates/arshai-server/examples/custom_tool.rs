//! A custom tool: the agent's model may call `word_count` during a turn.
//!
//! ```sh
//! cargo run -p arshai-server --example custom_tool
//! ```
//!
//! The provider comes from the environment: `OPENAI_BASE_URL` and/or `OPENAI_API_KEY` for
//! any OpenAI-compatible endpoint, otherwise the embedded local model (run
//! `scripts/fetch-model` once). A tool is an async function of typed arguments; their JSON
//! Schema is derived from the type and offered to the model.

use std::sync::Arc;

use arshai::agent::{Agent, AgentEvent, AgentInput, ConversationAgent, FnTool, ToolError, ToolSet};
use arshai::llm::{ClientFactory, LlmClient, ProviderChoice};
use arshai::memory::InMemoryStore;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;

/// The tool's arguments; the doc comments become the schema's descriptions.
#[derive(Deserialize, JsonSchema)]
struct WordCount {
    /// The text whose words to count.
    text: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tools = ToolSet::new().with(FnTool::new(
        "word_count",
        "Counts the words of a text",
        |args: WordCount| async move {
            Ok::<_, ToolError>(args.text.split_whitespace().count().to_string())
        },
    ));
    let agent = Arc::new(
        ConversationAgent::builder("counter", llm()?, Arc::new(InMemoryStore::default()))
            .system_prompt("Use the word_count tool to count words. Answer with the number.")
            .tools(tools)
            .build(),
    );
    let question = "How many words are in: 'the quick brown fox jumps'?";
    println!("> {question}");
    // The turn's events show the tool call and its result before the answer.
    let mut events = agent.turn(AgentInput::new(None, question));
    while let Some(event) = events.next().await {
        match event? {
            AgentEvent::ToolCall(call) => println!("[calls {}({})]", call.name, call.arguments),
            AgentEvent::ToolResult { name, content, .. } => println!("[{name} → {content}]"),
            AgentEvent::TextDelta(_) => {}
            AgentEvent::Done(output) => println!("{}", output.reply),
        }
    }
    Ok(())
}

/// The provider the settings choose, as the server does: defaults < environment
/// (`OPENAI_BASE_URL` / `OPENAI_API_KEY`, …; docs/settings.md), else the embedded model.
fn llm() -> anyhow::Result<Arc<dyn LlmClient>> {
    let settings = arshai::Settings::load(None)?;
    Ok(ClientFactory::new(settings.providers).client(ProviderChoice::Auto)?)
}
