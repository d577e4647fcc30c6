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
use arshai::llm::LlmClient;
use arshai::llm::openai::OpenAiClient;
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

/// The provider the environment names, else the embedded model.
fn llm() -> anyhow::Result<Arc<dyn LlmClient>> {
    let base_url = std::env::var("OPENAI_BASE_URL").ok();
    let api_key = std::env::var("OPENAI_API_KEY").ok();
    if base_url.is_none() && api_key.is_none() {
        let settings = arshai::llm::LocalProviderSettings::default();
        return Ok(Arc::new(arshai::llm::LocalClient::new(&settings)?));
    }
    let mut client = OpenAiClient::builder();
    if let Some(url) = base_url {
        client = client.base_url(url);
    }
    if let Some(key) = api_key {
        client = client.api_key(key);
    }
    Ok(Arc::new(client.build()?))
}
