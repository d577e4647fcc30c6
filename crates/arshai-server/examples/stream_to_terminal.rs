//! Streaming to the terminal: print the answer as the model writes it, then the usage.
//!
//! ```sh
//! cargo run -p arshai-server --example stream_to_terminal -- "Tell me a short story."
//! ```
//!
//! The provider comes from the environment: `OPENAI_BASE_URL` and/or `OPENAI_API_KEY` for
//! any OpenAI-compatible endpoint, otherwise the embedded local model (run
//! `scripts/fetch-model` once). Dropping the event stream (Ctrl-C) cancels the model call.

use std::io::Write;
use std::sync::Arc;

use arshai::agent::{Agent, AgentEvent, AgentInput, ConversationAgent};
use arshai::llm::{ClientFactory, LlmClient, ProviderChoice};
use arshai::memory::InMemoryStore;
use futures::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Tell me a short story.".to_owned());
    let agent = Arc::new(
        ConversationAgent::builder("storyteller", llm()?, Arc::new(InMemoryStore::default()))
            .system_prompt("You tell short stories.")
            .build(),
    );
    let mut events = agent.turn(AgentInput::new(None, question));
    let mut out = std::io::stdout();
    while let Some(event) = events.next().await {
        match event? {
            AgentEvent::TextDelta(text) => {
                write!(out, "{text}")?;
                out.flush()?;
            }
            AgentEvent::Done(output) => {
                writeln!(out)?;
                eprintln!(
                    "[{} tokens in, {} out, model {}]",
                    output.usage.input_tokens, output.usage.output_tokens, output.model
                );
            }
            AgentEvent::ToolCall(_) | AgentEvent::ToolResult { .. } => {}
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
