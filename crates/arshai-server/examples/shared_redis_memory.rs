//! Redis memory shared by two processes: this program answers one turn, then starts a
//! second copy of itself that continues the same conversation from Redis — as two
//! instances behind a load balancer would.
//!
//! ```sh
//! redis-server --port 6379 &            # any Redis: standalone, Sentinel or Cluster
//! cargo run -p arshai-server --example shared_redis_memory
//! ```
//!
//! `REDIS_URL` (default `redis://127.0.0.1:6379`) names the server. The provider comes from
//! the environment: `OPENAI_BASE_URL` and/or `OPENAI_API_KEY` for any OpenAI-compatible
//! endpoint, otherwise the embedded local model (run `scripts/fetch-model` once).

use std::sync::Arc;

use anyhow::Context;
use arshai::agent::{Agent, AgentInput, ConversationAgent};
use arshai::llm::{ClientFactory, LlmClient, ProviderChoice};
use arshai::memory::{ConversationId, ConversationKey, MemoryStore, RedisStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let memory: Arc<dyn MemoryStore> = Arc::new(RedisStore::builder(&url).open().await?);
    let agent = Arc::new(
        ConversationAgent::builder("assistant", llm()?, Arc::clone(&memory))
            .system_prompt("You are brief.")
            .build(),
    );
    match std::env::args().nth(1) {
        // The second process: continue the conversation the first one started.
        Some(id) => {
            let id = ConversationId::parse(id)?;
            let output = Arc::clone(&agent)
                .respond(AgentInput::new(Some(id.clone()), "What is my name?"))
                .await?;
            println!("[process {}] {}", std::process::id(), output.reply);
            let key = ConversationKey::new(ConversationKey::DEFAULT_TENANT, id);
            let stored = memory
                .load(&key)
                .await?
                .context("the conversation is in Redis")?;
            println!(
                "the conversation has {} messages in Redis:",
                stored.messages.len()
            );
            for message in &stored.messages {
                println!("  {:?}: {}", message.role, message.content);
            }
        }
        // The first process: start a conversation, then hand it to a second process.
        None => {
            let output = agent
                .respond(AgentInput::new(None, "Hello! My name is Ada."))
                .await?;
            let id = output
                .conversation_id
                .context("a new conversation has an id")?;
            println!("[process {}] {}", std::process::id(), output.reply);
            let status = std::process::Command::new(std::env::current_exe()?)
                .arg(id.as_str())
                .status()?;
            anyhow::ensure!(status.success(), "the second process failed: {status}");
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
