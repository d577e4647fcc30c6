//! A conversation agent embedded in a program.
//!
//! `cargo run -p arshai --example conversation` talks to `OPENAI_BASE_URL` (with
//! `OPENAI_API_KEY` if set) or, with neither set, to the testkit's fake echo upstream.

use std::sync::Arc;

use arshai::agent::{Agent, AgentInput, ConversationAgent, ConversationAgentConfig};
use arshai::llm::openai::{DEFAULT_BASE_URL, OpenAiClient};
use arshai::memory::InMemoryStore;
use arshai_testkit::FakeUpstream;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let api_key = std::env::var("OPENAI_API_KEY").ok();
    let (base_url, _upstream) = match std::env::var("OPENAI_BASE_URL") {
        Ok(url) => (url, None),
        Err(_) if api_key.is_some() => (DEFAULT_BASE_URL.to_owned(), None),
        Err(_) => {
            let upstream = FakeUpstream::start().await?;
            println!("(no OPENAI_BASE_URL: using the fake echo upstream)");
            (upstream.base_url(), Some(upstream))
        }
    };
    let mut llm = OpenAiClient::builder().base_url(base_url);
    if let Some(key) = api_key {
        llm = llm.api_key(key);
    }
    let llm = Arc::new(llm.build()?);
    let memory = Arc::new(InMemoryStore::default());
    let agent = ConversationAgent::new(
        ConversationAgentConfig {
            name: "assistant".to_owned(),
            system_prompt: "You are a helpful assistant. Answer briefly.".to_owned(),
            ..Default::default()
        },
        llm,
        memory,
    );

    let first = agent
        .process(AgentInput::new(None, "Hello! My name is Ada."))
        .await?;
    println!("assistant: {}", first.reply);
    let second = agent
        .process(AgentInput::new(
            Some(first.conversation_id.clone()),
            "What is my name?",
        ))
        .await?;
    println!("assistant: {}", second.reply);
    println!(
        "conversation {} used {} tokens",
        second.conversation_id,
        first.usage.total_tokens + second.usage.total_tokens
    );
    Ok(())
}
