//! The `router` agent type, declared in TOML and served over HTTP: it classifies each
//! message by rules (keywords, regex) or by a model call with structured output, and the
//! chosen agent runs the turn on the same conversation. Invalid router configs are refused
//! at start-up with a message naming the problem.

mod support;

use std::io::Write;

use arshai_server::AppState;
use arshai_server::settings::Settings;
use arshai_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};
use support::TestServer;

const TARGETS: &str = r#"
[[agents]]
name = "billing"
type = "conversation"
model = "fake-model"
description = "Invoices, payments and refunds."
system_prompt = "You are billing."

[[agents]]
name = "tech"
type = "conversation"
model = "fake-model"
description = "Errors, crashes and how-to questions."
system_prompt = "You are tech."

[[agents]]
name = "general"
type = "conversation"
model = "fake-model"
system_prompt = "You are general."
"#;

fn settings(upstream: &FakeUpstream, agents: &str) -> Result<Settings, String> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "[providers.openai]\nbase_url = \"{}\"\napi_key = \"sk-test\"\n\n{agents}",
        upstream.base_url()
    )
    .unwrap();
    Settings::load(Some(file.path())).map_err(|e| e.to_string())
}

async fn serve(agents: &str) -> TestServer {
    let upstream = FakeUpstream::start().await.unwrap();
    let settings = settings(&upstream, agents).expect("settings load");
    let state = AppState::from_settings(settings)
        .await
        .expect("state builds");
    TestServer::start_state(upstream, state).await
}

/// The system prompt of the request the upstream received last.
fn last_system_prompt(server: &TestServer) -> Value {
    let requests = server.upstream.requests();
    requests.last().unwrap().body["messages"][0]["content"].clone()
}

#[tokio::test]
async fn a_rules_router_hands_each_turn_to_its_agent_on_the_same_conversation() {
    let server = serve(&format!(
        r#"
[[agents]]
name = "desk"
type = "router"
routes = [
  {{ agent = "billing", keywords = ["invoice", "refund"] }},
  {{ agent = "tech", regex = '(?i)\b(error|crash)' }},
]
default_route = "general"
{TARGETS}"#
    ))
    .await;

    let (status, body) = server
        .post(
            "desk",
            json!({"conversation_id": "r1", "message": "Where is my INVOICE?"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], "echo: Where is my INVOICE?");
    assert_eq!(last_system_prompt(&server), "You are billing.");

    let (status, _) = server
        .post(
            "desk",
            json!({"conversation_id": "r1", "message": "the app shows an Error"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(last_system_prompt(&server), "You are tech.");
    // The tech agent ran on the same conversation: it saw the billing exchange.
    let requests = server.upstream.requests();
    let sent: Vec<&str> = requests.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        sent,
        [
            "You are tech.",
            "Where is my INVOICE?",
            "echo: Where is my INVOICE?",
            "the app shows an Error"
        ]
    );

    // No rule matches: the default route, streamed through the router.
    let response = server
        .post_raw(
            "desk",
            json!({"conversation_id": "r1", "message": "hello there", "stream": true}).to_string(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let parsed = support::sse::parse_strict(&response.bytes().await.unwrap());
    assert_eq!(parsed.frames.last().unwrap().event.as_deref(), Some("done"));
    assert_eq!(last_system_prompt(&server), "You are general.");

    // Rules cost no model call: three turns, three upstream requests.
    assert_eq!(server.upstream.request_count(), 3);
    let stored: Value = server
        .http
        .get(server.url("/v1/agents/desk/conversations/r1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["messages"].as_array().unwrap().len(), 6, "{stored}");
}

#[tokio::test]
async fn a_model_router_classifies_with_structured_output_and_falls_back_to_its_default() {
    let server = serve(&format!(
        r#"
[[agents]]
name = "desk"
type = "router"
model = "router-model"
classifier = "model"
system_prompt = "Pick the team for the customer's message."
routes = [{{ agent = "billing" }}, {{ agent = "tech", description = "Anything technical." }}]
default_route = "general"
{TARGETS}"#
    ))
    .await;

    server.upstream.push(Reply::text(r#"{"route": "tech"}"#));
    let (status, body) = server
        .post("desk", json!({"message": "my screen stays black"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], "echo: my screen stays black");
    let requests = server.upstream.requests();
    assert_eq!(requests.len(), 2);
    let classify = &requests[0].body;
    assert_eq!(classify["model"], "router-model");
    let format = &classify["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(
        format["json_schema"]["schema"]["properties"]["route"]["enum"],
        json!(["billing", "tech"])
    );
    let instructions = classify["messages"][0]["content"].as_str().unwrap();
    assert!(instructions.starts_with("Pick the team"), "{instructions}");
    // Each route is described: its own description, or its agent's.
    assert!(
        instructions.contains("- tech: Anything technical."),
        "{instructions}"
    );
    assert!(
        instructions.contains("- billing: Invoices, payments and refunds."),
        "{instructions}"
    );
    assert_eq!(classify["messages"][1]["content"], "my screen stays black");
    assert_eq!(requests[1].body["messages"][0]["content"], "You are tech.");
    assert_eq!(requests[1].body["model"], "fake-model");
    // The classification's tokens are part of the turn's usage.
    let one_call = requests.len() as u64;
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0 && one_call == 2);

    // An answer that names no route: the default route takes the turn.
    server.upstream.push(Reply::text("probably tech?"));
    let (status, _) = server.post("desk", json!({"message": "hm"})).await;
    assert_eq!(status, 200);
    assert_eq!(last_system_prompt(&server), "You are general.");
}

#[tokio::test]
async fn invalid_router_configs_are_refused_naming_the_problem() {
    let upstream = FakeUpstream::start().await.unwrap();
    let router =
        |body: &str| format!("[[agents]]\nname = \"desk\"\ntype = \"router\"\n{body}\n{TARGETS}");
    let cases = [
        (
            router("routes = [{ agent = \"billing\", keywords = [\"x\"] }, { agent = \"nobody\", keywords = [\"y\"] }]\ndefault_route = \"general\""),
            vec!["agents[0].routes[1].agent", "no agent named \"nobody\""],
        ),
        (
            router("routes = [{ agent = \"billing\", keywords = [\"x\"] }]\ndefault_route = \"ghost\""),
            vec!["agents[0].default_route", "\"ghost\""],
        ),
        (
            router("routes = [{ agent = \"billing\", keywords = [\"x\"] }]"),
            vec!["agents[0].default_route", "needs a default_route"],
        ),
        (
            router("routes = [{ agent = \"billing\", regex = \"(unclosed\" }]\ndefault_route = \"general\""),
            vec!["agents[0].routes[0].regex", "(unclosed"],
        ),
        (
            router("routes = [{ agent = \"billing\" }]\ndefault_route = \"general\""),
            vec!["agents[0].routes[0]", "keywords or regex"],
        ),
        (
            router("routes = []\ndefault_route = \"general\""),
            vec!["agents[0].routes", "at least one route"],
        ),
        (
            router("routes = [{ agent = \"billing\", keywords = [\"x\"] }]\ndefault_route = \"general\"\ntools = [\"clock\"]"),
            vec!["agents[0].tools", "router"],
        ),
        (
            // A route back to the router through an agent tool.
            "[[agents]]\nname = \"desk\"\ntype = \"router\"\nroutes = [{ agent = \"helper\", keywords = [\"x\"] }]\ndefault_route = \"helper\"\n\
             [[agents]]\nname = \"helper\"\ntype = \"conversation\"\ntools = [{ agent = \"desk\" }]".to_owned(),
            vec!["cycle", "desk -> helper -> desk"],
        ),
        (
            format!("[[agents]]\nname = \"plain\"\ntype = \"conversation\"\ndefault_route = \"general\"\n{TARGETS}"),
            vec!["agents[0].type", "need type = \"router\""],
        ),
    ];
    for (toml, expected) in cases {
        let message = settings(&upstream, &toml).expect_err(&toml);
        for part in &expected {
            assert!(message.contains(part), "{message:?} should name {part:?}");
        }
    }
}
