//! The tool loop over real HTTP: the fake upstream scripts tool calls, the agent runs them in
//! parallel and sends the results back in the provider's format.

use std::sync::Arc;
use std::time::Duration;

use arshai::agent::{
    Agent, AgentEvent, AgentInput, AgentOutput, ConversationAgent, ConversationAgentConfig,
    Delivery, FnTool, ToolError, ToolSet,
};
use arshai::llm::openai::{OpenAiClient, OpenAiConfig};
use arshai::llm::{HttpPoolSettings, LlmClient, Message};
use arshai::memory::{InMemoryStore, InMemoryStoreConfig};
use arshai_testkit::{FakeUpstream, Reply};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Barrier;

#[derive(Deserialize, JsonSchema)]
struct City {
    /// The city's name.
    city: String,
}

fn client(upstream: &FakeUpstream) -> Arc<dyn LlmClient> {
    Arc::new(
        OpenAiClient::new(OpenAiConfig {
            provider: "openai",
            base_url: upstream.base_url(),
            api_key: Some("sk-test".into()),
            default_model: "gpt-test".into(),
            extra_headers: Vec::new(),
            http: HttpPoolSettings::default(),
        })
        .unwrap(),
    )
}

/// Two tools that only finish when both run at the same time.
fn rendezvous_tools() -> ToolSet {
    let barrier = Arc::new(Barrier::new(2));
    let (b1, b2) = (Arc::clone(&barrier), barrier);
    let mut tools = ToolSet::new()
        .with(FnTool::new(
            "weather",
            "Current weather in a city",
            move |args: City| {
                let barrier = Arc::clone(&b1);
                async move {
                    barrier.wait().await;
                    Ok(format!("sunny in {}", args.city))
                }
            },
        ))
        .with(FnTool::new(
            "time",
            "Local time in a city",
            move |args: City| {
                let barrier = Arc::clone(&b2);
                async move {
                    barrier.wait().await;
                    Ok(format!("noon in {}", args.city))
                }
            },
        ));
    tools.call_timeout = Duration::from_secs(5);
    tools
}

/// What one stateless turn with `tools` produced.
struct ToolTurn {
    output: AgentOutput,
    /// The tool calls the model asked for, in order.
    calls: usize,
    /// The results sent back to the model, in order.
    results: usize,
}

/// Runs one stateless turn asking `text` of an agent with `tools`, delivered as asked.
async fn turn(upstream: &FakeUpstream, tools: ToolSet, text: &str, delivery: Delivery) -> ToolTurn {
    let memory = Arc::new(InMemoryStore::new(InMemoryStoreConfig::default()));
    let agent = Arc::new(
        ConversationAgent::builder("helper", client(upstream), memory)
            .tools(tools)
            .build(),
    );
    let input = AgentInput {
        delivery,
        ..AgentInput::stateless(vec![Message::user(text)])
    };
    let mut events = agent.turn(input);
    let (mut calls, mut results) = (0, 0);
    while let Some(event) = events.next().await {
        match event.unwrap() {
            AgentEvent::ToolCall(_) => calls += 1,
            AgentEvent::ToolResult { .. } => results += 1,
            AgentEvent::TextDelta(_) => {}
            AgentEvent::Done(output) => {
                return ToolTurn {
                    output,
                    calls,
                    results,
                };
            }
        }
    }
    panic!("the turn ended without Done");
}

#[tokio::test]
async fn several_calls_run_in_parallel_and_results_go_back_in_openai_format() {
    for delivery in [Delivery::Whole, Delivery::Streamed] {
        several_calls_run_in_parallel(delivery).await;
    }
}

async fn several_calls_run_in_parallel(delivery: Delivery) {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::tool_calls([
        ("weather", r#"{"city":"Oslo"}"#),
        ("time", r#"{"city":"Oslo"}"#),
    ]));
    upstream.push(Reply::text("Sunny, and it is noon."));
    let turn = turn(
        &upstream,
        rendezvous_tools(),
        "weather and time in Oslo?",
        delivery,
    )
    .await;
    assert_eq!(turn.output.reply, "Sunny, and it is noon.");
    assert_eq!((turn.calls, turn.results), (2, 2), "two calls, two results");

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    let tools = requests[0].body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[1]["type"], "function");
    assert_eq!(tools[1]["function"]["name"], "weather");
    assert_eq!(
        tools[1]["function"]["parameters"]["properties"]["city"]["type"],
        "string"
    );
    let sent = requests[1].body["messages"].as_array().unwrap();
    let assistant = &sent[1];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["content"], Value::Null);
    let calls = assistant["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["type"], "function");
    for (index, expected) in ["sunny in Oslo", "noon in Oslo"].iter().enumerate() {
        let result = &sent[2 + index];
        assert_eq!(result["role"], "tool");
        assert_eq!(result["tool_call_id"], calls[index]["id"]);
        assert_eq!(result["content"], *expected, "both tools ran at once");
    }
    assert_eq!(
        requests[0].body["stream"].as_bool().unwrap_or(false),
        delivery == Delivery::Streamed,
        "the provider's streaming API only for a streamed turn"
    );
    assert!(turn.output.usage.total_tokens > requests.len() as u64);
}

#[tokio::test]
async fn invalid_json_arguments_are_reported_to_the_model_not_a_crash() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::tool_call("weather", r#"{"city": "Os"#));
    upstream.push(Reply::text("Sorry, let me retry."));
    let tools = ToolSet::new().with(FnTool::new("weather", "Current weather", |_: City| async {
        Ok::<_, ToolError>("sunny".to_owned())
    }));
    let turn = turn(&upstream, tools, "weather?", Delivery::Whole).await;
    assert_eq!(turn.output.reply, "Sorry, let me retry.");
    let sent = &upstream.requests()[1].body["messages"];
    let result = sent.as_array().unwrap().last().unwrap();
    assert_eq!(result["role"], "tool");
    let content: Value = serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
    assert!(
        content["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{content}"
    );
}

#[tokio::test]
async fn unknown_tools_and_schema_mismatches_are_tool_errors() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::tool_calls([
        ("nope", "{}"),
        ("weather", r#"{"town":"Oslo"}"#),
    ]));
    upstream.push(Reply::text("ok"));
    let tools = ToolSet::new().with(FnTool::new("weather", "Current weather", |_: City| async {
        Ok::<_, ToolError>("sunny".to_owned())
    }));
    turn(&upstream, tools, "?", Delivery::Whole).await;
    let sent = upstream.requests()[1].body["messages"].clone();
    let sent = sent.as_array().unwrap();
    assert!(
        sent[2]["content"]
            .as_str()
            .unwrap()
            .contains("no tool named")
    );
    assert!(
        sent[3]["content"]
            .as_str()
            .unwrap()
            .contains("do not match")
    );
}

#[tokio::test]
async fn the_loop_is_bounded_and_ends_with_an_answer_without_tools() {
    let upstream = FakeUpstream::start().await.unwrap();
    for _ in 0..3 {
        upstream.push(Reply::tool_call("weather", r#"{"city":"Oslo"}"#));
    }
    upstream.push(Reply::text("final"));
    let mut tools =
        ToolSet::new().with(FnTool::new("weather", "Current weather", |_: City| async {
            Ok::<_, ToolError>("sunny".to_owned())
        }));
    tools.max_rounds = 2;
    let turn = turn(&upstream, tools, "?", Delivery::Whole).await;
    let requests = upstream.requests();
    assert_eq!(requests.len(), 3, "two rounds with tools, then one without");
    assert!(requests[2].body.get("tools").is_none());
    // The third scripted reply asked for a tool again, but without tools offered the loop
    // takes the answer as final.
    assert_eq!(turn.results, 2, "two rounds of results");
}

#[tokio::test]
async fn a_conversation_agent_uses_its_tools_within_a_turn() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.push(Reply::tool_calls([
        ("weather", r#"{"city":"Oslo"}"#),
        ("time", r#"{"city":"Oslo"}"#),
    ]));
    upstream.push(Reply::text("Sunny at noon."));
    let memory = Arc::new(InMemoryStore::new(InMemoryStoreConfig::default()));
    let agent = Arc::new(
        ConversationAgent::new(
            ConversationAgentConfig {
                name: "helper".into(),
                ..ConversationAgentConfig::default()
            },
            client(&upstream),
            memory,
        )
        .with_tools(rendezvous_tools()),
    );
    let output = agent
        .respond(AgentInput::new(None, "weather and time?"))
        .await
        .unwrap();
    assert_eq!(output.reply, "Sunny at noon.");
    assert_eq!(upstream.request_count(), 2);
}
