//! An agent with tools, streamed: tool events on the wire, the same turn as non-streamed.

mod support;

use std::sync::Arc;

use arshai::agent::{ConversationAgent, ConversationAgentConfig, Tool, ToolError, ToolSet};
use arshai::llm::{ClientFactory, ToolDefinition};
use arshai_server::AppState;
use arshai_testkit::{FakeUpstream, Reply};
use async_trait::async_trait;
use serde_json::{Value, json};
use support::sse::parse_strict;
use support::{TestServer, settings_for};

struct Lookup;

#[async_trait]
impl Tool for Lookup {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::new(
            "lookup",
            "Looks a word up",
            json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}),
        )
    }

    async fn call(&self, arguments: Value) -> Result<String, ToolError> {
        Ok(format!("found {}", arguments["q"].as_str().unwrap_or("?")))
    }
}

async fn server_with_tools() -> TestServer {
    let upstream = FakeUpstream::start().await.unwrap();
    let settings = settings_for(&upstream);
    let mut state = AppState::from_settings(settings.clone()).await.unwrap();
    let llm = ClientFactory::new(settings.providers.clone())
        .client(Default::default())
        .unwrap();
    let agent = ConversationAgent::new(
        ConversationAgentConfig {
            name: "assistant".to_owned(),
            model: Some("fake-model".to_owned()),
            system_prompt: "You are terse.".to_owned(),
            lease: settings.memory.lease_settings(),
            ..ConversationAgentConfig::default()
        },
        llm,
        Arc::clone(&state.memory),
    )
    .with_tools(ToolSet::new().with(Lookup));
    let mut agents = (*state.agents).clone();
    agents.insert(Arc::new(agent));
    state.agents = Arc::new(agents);
    TestServer::start_state(upstream, state).await
}

#[tokio::test]
async fn a_streamed_turn_with_tools_sends_tool_events_and_equals_the_plain_turn() {
    let server = server_with_tools().await;
    let message = "find the sea";

    server
        .upstream
        .push(Reply::tool_call("lookup", r#"{"q":"sea"}"#));
    let (status, plain) = server
        .post(
            "assistant",
            json!({"conversation_id": "t1", "message": message}),
        )
        .await;
    assert_eq!(status, 200, "{plain}");

    server
        .upstream
        .push(Reply::tool_call("lookup", r#"{"q":"sea"}"#));
    let response = server
        .post_raw(
            "assistant",
            json!({"conversation_id": "t2", "message": message, "stream": true}).to_string(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let parsed = parse_strict(&response.bytes().await.unwrap());
    let kinds: Vec<&str> = parsed
        .frames
        .iter()
        .map(|f| f.event.as_deref().unwrap())
        .collect();
    assert_eq!(kinds[..2], ["tool_call", "tool_result"], "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"done"));
    assert!(
        kinds[2..kinds.len() - 1].iter().all(|k| *k == "delta"),
        "{kinds:?}"
    );
    let data = |i: usize| -> Value { serde_json::from_str(&parsed.frames[i].data).unwrap() };
    let call = data(0);
    assert_eq!(call["name"], "lookup");
    assert_eq!(call["arguments"], r#"{"q":"sea"}"#);
    let result = data(1);
    assert_eq!(result["id"], call["id"]);
    assert_eq!(result["content"], "found sea");
    let done = data(kinds.len() - 1);
    assert_eq!(done["reply"], plain["reply"]);
    assert_eq!(done["reply"], "echo: find the sea");
    assert_eq!(done["usage"], plain["usage"]);

    // The tool's result went back to the model, with the agent's tools offered.
    let requests = server.upstream.requests();
    let second = &requests[3].body;
    assert_eq!(second["stream"], true);
    assert_eq!(requests[2].body["tools"][0]["function"]["name"], "lookup");
    let last = second["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "tool");
    assert_eq!(last["content"], "found sea");

    // Both turns are recorded alike: the question and the answer.
    let get = |id: &'static str| {
        let url = server.url(&format!("/v1/agents/assistant/conversations/{id}"));
        let http = server.http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(get("t1").await["messages"], get("t2").await["messages"]);
}

#[tokio::test]
async fn tool_events_are_not_forwarded_to_openai_clients() {
    let server = server_with_tools().await;
    server
        .upstream
        .push(Reply::tool_call("lookup", r#"{"q":"sea"}"#));
    let response = server
        .http
        .post(server.url("/v1/chat/completions"))
        .json(&json!({"model": "assistant", "stream": true,
            "messages": [{"role": "user", "content": "find the sea"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let parsed = parse_strict(&response.bytes().await.unwrap());
    let text: String = parsed
        .frames
        .iter()
        .filter(|f| f.data != "[DONE]")
        .map(|f| serde_json::from_str::<Value>(&f.data).unwrap())
        .inspect(|chunk| assert!(chunk["choices"][0]["delta"].get("tool_calls").is_none()))
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "echo: find the sea");
    assert_eq!(
        server.upstream.request_count(),
        2,
        "the agent ran its tool itself"
    );
}
