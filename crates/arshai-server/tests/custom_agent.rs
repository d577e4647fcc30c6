//! An agent type written by the program (only `Agent::turn`, through `answer_once`), served
//! with `Server::builder` on both turn routes: the native one and a plain, stateless OpenAI
//! SDK-style call. Its turns are labelled with its own type in the metrics.

mod support;

use std::sync::Arc;

use arshai::agent::{Agent, AgentEventStream, AgentInput, AgentOutput, answer_once};
use arshai::llm::Usage;
use arshai_server::Server;
use serde_json::{Value, json};
use support::sample;
use tokio::net::TcpListener;

/// Answers with the last message, upper-cased.
struct Shout;

impl Agent for Shout {
    fn name(&self) -> &str {
        "shout"
    }

    fn agent_type(&self) -> &'static str {
        "shout"
    }

    fn turn(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
        answer_once(async move {
            let said = input
                .messages
                .last()
                .map(|message| message.content.to_uppercase())
                .unwrap_or_default();
            Ok(AgentOutput {
                usage: Usage {
                    input_tokens: 1,
                    output_tokens: 1,
                    total_tokens: 2,
                    reasoning_tokens: None,
                },
                ..AgentOutput::text(said, "shout-1")
            })
        })
    }
}

#[tokio::test]
async fn a_custom_agent_is_served_on_both_turn_routes() {
    let server = Server::builder().agent(Shout).build().await.unwrap();
    let state = server.state().clone();
    assert_eq!(
        state
            .agents
            .iter()
            .map(|agent| agent.name())
            .collect::<Vec<_>>(),
        ["shout"],
        "with an agent given in code, no default agent is added"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();

    // A plain OpenAI call: stateless, several messages, no conversation header.
    let response = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "shout", "messages": [
            {"role": "system", "content": "be loud"},
            {"role": "user", "content": "hello"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "HELLO", "{body}");
    assert_eq!(body["usage"]["total_tokens"], 2);

    // The native route, streamed.
    let response = http
        .post(format!("{base}/v1/agents/shout/messages"))
        .json(&json!({"message": "hi there", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("event: delta\ndata: {\"text\":\"HI THERE\"}"),
        "{text}"
    );
    assert!(text.contains("event: done"), "{text}");

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(
            &metrics,
            "arshai_requests_total{agent_type=\"shout\",status=\"200\"}"
        ),
        Some(2.0),
        "both routes label the turn with the agent's type:\n{metrics}"
    );
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
