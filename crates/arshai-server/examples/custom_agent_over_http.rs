//! A custom agent type served over HTTP: an agent that routes each message to one of two
//! conversation agents by a rule, served with `Server::builder` on the native API and the
//! OpenAI-compatible API.
//!
//! ```sh
//! cargo run -p arshai-server --example custom_agent_over_http
//! curl -s localhost:8000/v1/agents/desk/messages -H 'content-type: application/json' \
//!   -d '{"message": "My invoice is wrong"}'
//! curl -s localhost:8000/v1/chat/completions -H 'content-type: application/json' \
//!   -d '{"model": "desk", "messages": [{"role": "user", "content": "Hello"}]}'
//! ```
//!
//! An agent implements one method, `turn`: an input in, a stream of events out. This one
//! delegates the whole turn (streaming, tools, memory) to the agent it picks. The provider
//! comes from the environment: `OPENAI_BASE_URL` and/or `OPENAI_API_KEY` for any
//! OpenAI-compatible endpoint, otherwise the embedded local model (run
//! `scripts/fetch-model` once).

use std::sync::Arc;

use arshai::agent::{Agent, AgentEventStream, AgentInput, ConversationAgent};
use arshai::llm::{ClientFactory, LlmClient, ProviderChoice};
use arshai::memory::{InMemoryStore, MemoryStore};
use arshai_server::Server;
use arshai_server::settings::Settings;

/// Sends billing questions to one agent and everything else to another.
struct Desk {
    billing: Arc<dyn Agent>,
    general: Arc<dyn Agent>,
}

impl Agent for Desk {
    fn name(&self) -> &str {
        "desk"
    }

    fn agent_type(&self) -> &'static str {
        "desk"
    }

    fn turn(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
        let text = input
            .messages
            .last()
            .map(|message| message.content.to_lowercase())
            .unwrap_or_default();
        let billing = ["invoice", "bill", "refund", "payment"]
            .iter()
            .any(|word| text.contains(word));
        let chosen = if billing {
            &self.billing
        } else {
            &self.general
        };
        Arc::clone(chosen).turn(input)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let memory: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::default());
    let llm = llm()?;
    let specialist = |name: &str, prompt: &str| -> Arc<dyn Agent> {
        Arc::new(
            ConversationAgent::builder(name, Arc::clone(&llm), Arc::clone(&memory))
                .system_prompt(prompt)
                .build(),
        )
    };
    let desk = Desk {
        billing: specialist("billing", "You handle billing questions. Be precise."),
        general: specialist("general", "You are a friendly general assistant."),
    };
    // Defaults < environment (`ARSHAI_SERVER__PORT=9000`, …; docs/settings.md).
    let settings = Settings::load(None)?;
    println!(
        "serving the `desk` agent on http://{}:{} (Ctrl-C stops)",
        settings.server.host, settings.server.port
    );
    Server::builder()
        .settings(settings)
        .agent(desk)
        .memory(memory)
        .serve_until_signal()
        .await?;
    Ok(())
}

/// The provider the settings choose, as the server does: defaults < environment
/// (`OPENAI_BASE_URL` / `OPENAI_API_KEY`, …; docs/settings.md), else the embedded model.
fn llm() -> anyhow::Result<Arc<dyn LlmClient>> {
    let settings = arshai::Settings::load(None)?;
    Ok(ClientFactory::new(settings.providers).client(ProviderChoice::Auto)?)
}
