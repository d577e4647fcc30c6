//! Workflows over real HTTP, declared in TOML, with agents on the scripted fake upstream: a
//! conditional edge and an entry router, a parallel fan-out with its join, a failing node
//! that takes its fallback edge, a step-bound overrun, a node timeout, invalid configs,
//! streaming, metrics, and two instances sharing Redis over one conversation.

mod support;

use std::time::Duration;

use arshai_server::AppState;
use arshai_server::settings::Settings;
use arshai_testkit::{FakeUpstream, RedisServer, Reply};
use serde_json::{Value, json};
use support::TestServer;
use support::sse::parse_strict;

/// Agents and workflows on the fake upstream at `UPSTREAM`.
const CONFIG: &str = r#"
[providers.openai]
base_url = "UPSTREAM"
api_key = "sk-test-secret"

[providers.retry]
max_retries = 0

[[agents]]
name = "triage"
type = "conversation"
model = "fake-model"
system_prompt = "Answer billing or general."

[[agents]]
name = "billing"
type = "conversation"
model = "fake-model"
system_prompt = "You are the billing desk."

[[agents]]
name = "general"
type = "conversation"
model = "fake-model"
system_prompt = "You are the front desk."

[[workflows]]
name = "desk"
description = "Triage, then the right desk."
entry = "triage"
output = "/reply"

[[workflows.nodes]]
name = "triage"
agent = "triage"
output = "category"
memory = "none"

[[workflows.nodes]]
name = "billing"
agent = "billing"
output = "reply"

[[workflows.nodes]]
name = "general"
agent = "general"
output = "reply"

[[workflows.edges]]
from = "triage"
to = "billing"
when = { pointer = "/category", equals = "billing" }

[[workflows.edges]]
from = "triage"
to = "general"

[[workflows]]
name = "routed"
entry = { router = "triage", routes = ["billing", "general"] }

[[workflows.nodes]]
name = "billing"
agent = "billing"

[[workflows.nodes]]
name = "general"
agent = "general"

[[workflows]]
name = "fanout"

[[workflows.nodes]]
name = "start"
agent = "triage"

[[workflows.nodes]]
name = "left"
agent = "billing"
input = "/start"

[[workflows.nodes]]
name = "right"
agent = "general"
input = "/start"

[[workflows.nodes]]
name = "merge"
agent = "general"
input = ""

[[workflows.edges]]
from = "start"
parallel = ["left", "right"]
join = "merge"

[[workflows]]
name = "resilient"

[[workflows.nodes]]
name = "primary"
agent = "billing"
fallback = "backup"

[[workflows.nodes]]
name = "backup"
agent = "general"

[[workflows]]
name = "loop"
bounds = { max_steps = 3 }

[[workflows.nodes]]
name = "ping"
agent = "billing"

[[workflows.nodes]]
name = "pong"
agent = "general"
input = "/ping"

[[workflows.edges]]
from = "ping"
to = "pong"

[[workflows.edges]]
from = "pong"
to = "ping"

[[workflows]]
name = "slow"

[[workflows.nodes]]
name = "wait"
agent = "billing"
timeout_seconds = 0.5
"#;

fn load(text: &str, upstream: &FakeUpstream) -> Result<Settings, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("arshai.toml");
    std::fs::write(&path, text.replace("UPSTREAM", &upstream.base_url())).expect("write config");
    Settings::load(Some(&path)).map_err(|error| error.to_string())
}

async fn server() -> TestServer {
    let upstream = FakeUpstream::start().await.expect("upstream");
    let settings = load(CONFIG, &upstream).expect("the config loads");
    TestServer::start_with(upstream, settings).await
}

async fn run(server: &TestServer, workflow: &str, body: Value) -> (u16, Value) {
    let response = server
        .http
        .post(server.url(&format!("/v1/workflows/{workflow}/runs")))
        .json(&body)
        .send()
        .await
        .expect("request completes");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn steps(body: &Value) -> Vec<(String, String)> {
    body["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| {
            (
                step["node"].as_str().unwrap_or_default().to_owned(),
                step["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

fn system_prompt(request: &arshai_testkit::Recorded) -> String {
    request.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_conditional_edge_sends_the_run_to_the_desk_the_triage_agent_named() {
    let server = server().await;
    server.upstream.push(Reply::text("Billing"));
    let (status, body) = run(&server, "desk", json!({"input": "I was charged twice"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(steps(&body), pairs(&[("triage", "ok"), ("billing", "ok")]));
    assert_eq!(body["output"], "echo: I was charged twice");
    assert_eq!(body["state"]["category"], "Billing");
    assert!(body["run_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(body["steps"][0]["duration_ms"].is_u64());
    let requests = server.upstream.requests();
    assert_eq!(system_prompt(&requests[1]), "You are the billing desk.");

    server.upstream.push(Reply::text("no idea"));
    let (status, body) = run(&server, "desk", json!({"input": "hello"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(steps(&body), pairs(&[("triage", "ok"), ("general", "ok")]));
}

#[tokio::test]
async fn an_entry_router_agent_picks_the_first_node() {
    let server = server().await;
    server.upstream.push(Reply::text("general."));
    let (status, body) = run(&server, "routed", json!({"input": "where is the lift?"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(steps(&body), pairs(&[("general", "ok")]));
    let requests = server.upstream.requests();
    let asked = requests[0].body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(
        asked.contains("billing, general") && asked.contains("where is the lift?"),
        "{asked}"
    );
    assert_eq!(system_prompt(&requests[1]), "You are the front desk.");
}

#[tokio::test]
async fn a_parallel_fan_out_runs_both_branches_and_the_join_sees_both() {
    let server = server().await;
    let (status, body) = run(&server, "fanout", json!({"input": "go"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        steps(&body),
        pairs(&[
            ("start", "ok"),
            ("left", "ok"),
            ("right", "ok"),
            ("merge", "ok")
        ])
    );
    assert_eq!(body["state"]["left"], "echo: echo: go");
    assert_eq!(body["state"]["right"], "echo: echo: go");
    // The join's input is the whole state, written as JSON.
    let joined: Value = serde_json::from_str(
        body["output"]
            .as_str()
            .and_then(|text| text.strip_prefix("echo: "))
            .expect("the join echoes its input"),
    )
    .expect("the join's input is the state as JSON");
    assert_eq!(joined["left"], "echo: echo: go");
    assert_eq!(joined["right"], "echo: echo: go");
    assert_eq!(server.upstream.request_count(), 4);
}

#[tokio::test]
async fn a_failing_node_takes_its_fallback_edge() {
    let server = server().await;
    server.upstream.push(Reply::status(500));
    let (status, body) = run(&server, "resilient", json!({"input": "help"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        steps(&body),
        pairs(&[("primary", "failed"), ("backup", "ok")])
    );
    assert!(body["steps"][0]["error"].is_string(), "{body}");
    assert!(body["state"]["errors"]["primary"].is_string(), "{body}");
    assert_eq!(body["output"], "echo: help");
}

#[tokio::test]
async fn a_step_bound_overrun_is_508_naming_the_bound_and_the_node() {
    let server = server().await;
    let (status, body) = run(&server, "loop", json!({"input": "x"})).await;
    assert_eq!(status, 508, "{body}");
    assert_eq!(body["error"]["type"], "workflow_step_limit");
    assert_eq!(
        body["error"]["message"],
        "workflow \"loop\" reached its bound of 3 steps before node \"pong\""
    );
    assert_eq!(server.upstream.request_count(), 3);
}

#[tokio::test]
async fn a_node_past_its_timeout_is_504_naming_the_node() {
    let server = server().await;
    server
        .upstream
        .push(Reply::text("too late").delayed(Duration::from_secs(30)));
    let (status, body) = run(&server, "slow", json!({"input": "x"})).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["type"], "workflow_node_timeout");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("node \"wait\""), "{message}");
    let metrics = server.metrics_text().await;
    assert_eq!(
        support::sample(
            &metrics,
            "arshai_workflow_runs_total{workflow=\"slow\",status=\"node_timeout\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_streamed_run_sends_node_events_deltas_and_done() {
    let server = server().await;
    server.upstream.push(Reply::text("billing"));
    let response = server
        .http
        .post(server.url("/v1/workflows/desk/runs"))
        .json(&json!({"input": "refund", "stream": true}))
        .send()
        .await
        .expect("request completes");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let parsed = parse_strict(&response.bytes().await.expect("body"));
    let names: Vec<&str> = parsed
        .frames
        .iter()
        .map(|frame| frame.event.as_deref().unwrap_or("message"))
        .collect();
    let data: Vec<Value> = parsed
        .frames
        .iter()
        .map(|frame| serde_json::from_str(&frame.data).expect("JSON data"))
        .collect();
    assert_eq!(names.first(), Some(&"node_started"));
    assert_eq!(names.last(), Some(&"done"));
    let started: Vec<&str> = names
        .iter()
        .zip(&data)
        .filter(|(name, _)| **name == "node_started")
        .map(|(_, data)| data["node"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(started, ["triage", "billing"]);
    let billing_text: String = names
        .iter()
        .zip(&data)
        .filter(|(name, data)| **name == "delta" && data["node"] == "billing")
        .map(|(_, data)| data["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(billing_text, "echo: refund");
    let finished = names
        .iter()
        .filter(|name| **name == "node_finished")
        .count();
    assert_eq!(finished, 2);
    let done = data.last().expect("done");
    assert_eq!(done["output"], "echo: refund");
    assert_eq!(done["steps"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn listings_unknown_workflows_bad_bodies_and_metrics() {
    let server = server().await;
    let listed: Value = server
        .http
        .get(server.url("/v1/workflows"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["desk", "fanout", "loop", "resilient", "routed", "slow"]
    );
    assert_eq!(
        listed["workflows"][0]["description"],
        "Triage, then the right desk."
    );
    assert_eq!(
        listed["workflows"][0]["nodes"][0],
        json!({"name": "triage", "kind": "agent"})
    );

    let models: Value = server
        .http
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let desk = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|model| model["id"] == "desk")
        .expect("workflows are listed as models");
    assert_eq!(desk["owned_by"], "arshai-workflow");

    let (status, body) = run(&server, "nope", json!({"input": "x"})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["type"], "unknown_workflow");
    for (bad, named) in [
        (json!({"message": "x"}), "unknown field `message`"),
        (json!({"stream": true}), "missing field `input`"),
    ] {
        let (status, body) = run(&server, "desk", bad).await;
        assert_eq!(status, 422, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{message}");
    }

    server.upstream.push(Reply::text("billing"));
    let (status, _) = run(&server, "desk", json!({"input": "refund"})).await;
    assert_eq!(status, 200);
    let metrics = server.metrics_text().await;
    assert_eq!(
        support::sample(
            &metrics,
            "arshai_workflow_runs_total{workflow=\"desk\",status=\"ok\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        support::sample(
            &metrics,
            "arshai_workflow_node_duration_seconds_count{workflow=\"desk\",node=\"billing\",status=\"ok\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        support::sample(
            &metrics,
            "arshai_requests_total{agent_type=\"workflow\",status=\"200\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

/// The agents of [`CONFIG`] with `workflow` instead of its workflows.
fn with_workflow(workflow: &str) -> String {
    let agents = CONFIG.split("[[workflows]]").next().unwrap_or_default();
    format!("{agents}{workflow}")
}

#[tokio::test]
async fn invalid_workflow_configs_are_refused_at_start_up_naming_the_problem() {
    let upstream = FakeUpstream::start().await.expect("upstream");
    let cases = [
        (
            "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nagent = \"billing\"\n\
             [[workflows.edges]]\nfrom = \"a\"\nto = \"ghost\"\n",
            "workflow \"w\": the edge from \"a\" names the unknown node \"ghost\"",
        ),
        (
            "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nagent = \"billing\"\n\
             [[workflows.nodes]]\nname = \"island\"\nagent = \"general\"\n",
            "workflow \"w\": the node \"island\" is unreachable from the entry",
        ),
        (
            "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nagent = \"billing\"\n\
             [[workflows.nodes]]\nname = \"b\"\nagent = \"general\"\n\
             [[workflows.edges]]\nfrom = \"a\"\nto = \"b\"\n[[workflows.edges]]\nfrom = \"b\"\nto = \"a\"\n",
            "workflow \"w\" has the cycle a -> b -> a but no step bound: set max_steps",
        ),
        (
            "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nagent = \"nobody\"\n",
            "workflow \"w\": node \"a\" names the unknown agent \"nobody\"",
        ),
        (
            "[[workflows]]\nname = \"w\"\nentry = \"b\"\n[[workflows.nodes]]\nname = \"a\"\nagent = \"billing\"\n",
            "workflow \"w\": the entry names the unknown node \"b\"",
        ),
    ];
    for (workflow, expected) in cases {
        let settings = load(&with_workflow(workflow), &upstream).expect("the shape is valid");
        let error = match AppState::from_settings(settings).await {
            Ok(_) => panic!("{workflow} was accepted"),
            Err(error) => error.to_string(),
        };
        assert_eq!(error, format!("cannot build the workflows: {expected}"));
    }
    let shape_errors = [
        (
            "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nagent = \"billing\"\nfunction = \"f\"\n",
            "workflows[0].nodes[0]",
        ),
        (
            "[[workflows]]\nname = \"w\"\nbounds = { max_steps = 0 }\n[[workflows.nodes]]\nname = \"a\"\nagent = \"billing\"\n",
            "workflows[0].bounds.max_steps",
        ),
        (
            "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nagent = \"billing\"\nretries = 3\n",
            "retries",
        ),
        (
            "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nagent = \"billing\"\n\
             [[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nagent = \"billing\"\n",
            "workflows[1].name = w: is declared twice",
        ),
    ];
    for (workflow, expected) in shape_errors {
        let error = load(&with_workflow(workflow), &upstream).expect_err(workflow);
        assert!(error.contains(expected), "{error} should name {expected}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_run_workflows_over_one_conversation() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let start = |url: String| async move {
        let upstream = FakeUpstream::start().await.expect("upstream");
        let mut settings = load(CONFIG, &upstream).expect("the config loads");
        settings.memory.memory_provider = Some(arshai::memory::MemoryProvider::Redis);
        settings.memory.redis_url = Some(url);
        TestServer::start_with(upstream, settings).await
    };
    let a = start(redis.url()).await;
    let b = start(redis.url()).await;
    assert_eq!(a.state.memory.backend(), "redis");

    a.upstream.push(Reply::text("billing"));
    let (status, first) = run(
        &a,
        "desk",
        json!({"input": "I am Ada, refund me", "conversation_id": "shared-run"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["conversation_id"], "shared-run");
    b.upstream.push(Reply::text("billing"));
    let (status, second) = run(
        &b,
        "desk",
        json!({"input": "Who am I?", "conversation_id": "shared-run"}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    // The triage node is stateless (`memory = "none"`); the billing node on instance B
    // continues the conversation instance A's billing node recorded.
    let requests = b.upstream.requests();
    let sent = &requests[1].body["messages"];
    assert_eq!(sent[1]["content"], "I am Ada, refund me", "{sent}");
    assert_eq!(sent[2]["content"], "echo: I am Ada, refund me", "{sent}");
    assert_eq!(sent[3]["content"], "Who am I?", "{sent}");
    let triage_sent = &requests[0].body["messages"];
    assert_eq!(
        triage_sent.as_array().map(Vec::len),
        Some(2),
        "{triage_sent}"
    );

    let stored: Value = b
        .http
        .get(b.url("/v1/agents/billing/conversations/shared-run"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        stored["messages"].as_array().map(Vec::len),
        Some(4),
        "{stored}"
    );
    Ok(())
}

#[tokio::test]
async fn the_support_desk_example_routes_a_message_to_its_desk() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/examples/support-desk.toml");
    let mut settings = Settings::load(Some(&path)).expect("the example loads");
    let upstream = FakeUpstream::start().await.expect("upstream");
    settings.providers.openai.base_url = Some(upstream.base_url());
    settings.providers.openai.api_key = Some("sk-test-secret".to_owned());
    let server = TestServer::start_with(upstream, settings).await;

    server.upstream.push(Reply::text("Technical"));
    let (status, body) = run(
        &server,
        "support-desk",
        json!({"input": "the app crashes at login", "conversation_id": "ada"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        steps(&body),
        pairs(&[("triage", "ok"), ("technical", "ok")])
    );
    assert_eq!(body["output"], "echo: the app crashes at login");

    server.upstream.push(Reply::text("billing"));
    let (status, body) = run(
        &server,
        "support-desk-routed",
        json!({"input": "refund please"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(steps(&body), pairs(&[("billing", "ok")]));
}

#[tokio::test]
async fn functions_tools_and_workflows_from_code_join_those_the_settings_declare() {
    use arshai::agent::FnTool;
    use arshai::workflow::{FnNode, Node, NodeError, Workflow};

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Lookup {
        order: String,
    }

    let upstream = FakeUpstream::start().await.expect("upstream");
    let settings = load(
        &with_workflow(
            "[[workflows]]\nname = \"orders\"\n\
             [[workflows.nodes]]\nname = \"parse\"\nfunction = \"parse\"\n\
             [[workflows.nodes]]\nname = \"lookup\"\ntool = \"lookup\"\ninput = \"/parse\"\n\
             [[workflows.edges]]\nfrom = \"parse\"\nto = \"lookup\"\n",
        ),
        &upstream,
    )
    .expect("the config loads");
    let server = arshai_server::Server::builder()
        .settings(settings)
        .workflow_function(
            "parse",
            FnNode(|input: Value| async move {
                let text = input
                    .as_str()
                    .ok_or_else(|| NodeError::function("text expected"))?;
                Ok(json!({"order": text.trim_start_matches("order ")}))
            }),
        )
        .workflow_tool(std::sync::Arc::new(FnTool::new(
            "lookup",
            "Finds an order",
            |args: Lookup| async move { Ok(format!("order {} ships tomorrow", args.order)) },
        )))
        .workflow(
            Workflow::builder("shout")
                .node(Node::from_fn("shout", |input: Value| async move {
                    Ok(json!(input.as_str().unwrap_or_default().to_uppercase()))
                }))
                .build()
                .expect("valid"),
        )
        .build()
        .await
        .expect("the server builds");
    let server = TestServer::start_state(upstream, server.state().clone()).await;

    let (status, body) = run(&server, "orders", json!({"input": "order 42"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"], "order 42 ships tomorrow");
    assert_eq!(body["state"]["parse"], json!({"order": "42"}));
    let (status, body) = run(&server, "shout", json!({"input": "hey"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"], "HEY");
    let (status, body) = run(&server, "orders", json!({"input": 7})).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["type"], "workflow_node_failed");
    assert_eq!(
        body["error"]["message"],
        "node \"parse\" of workflow \"orders\" failed: text expected"
    );
}

#[tokio::test]
async fn runs_need_a_key_that_may_use_the_workflow_and_keep_to_its_tenant() {
    use arshai_server::settings::{ApiKeySettings, AuthSettings};

    let upstream = FakeUpstream::start().await.expect("upstream");
    let mut settings = load(CONFIG, &upstream).expect("the config loads");
    let key = |tenant: &str, secret: &str, agents: &[&str]| ApiKeySettings {
        tenant: tenant.to_owned(),
        key: Some(secret.to_owned()),
        agents: agents.iter().map(|a| (*a).to_owned()).collect(),
        ..Default::default()
    };
    settings.auth = AuthSettings {
        enabled: true,
        keys: vec![
            key("acme", "acme-key-1", &[]),
            key("globex", "globex-key-2", &[]),
            key("limited", "limited-key-3", &["billing"]),
        ],
        keys_file: None,
    };
    let server = TestServer::start_with(upstream, settings).await;
    let run_with = |key: Option<&'static str>| {
        let mut request = server
            .http
            .post(server.url("/v1/workflows/resilient/runs"))
            .json(&json!({"input": "hi", "conversation_id": "private"}));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move {
            let response = request.send().await.expect("answers");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let (status, _) = run_with(None).await;
    assert_eq!(status, 401);
    let (status, body) = run_with(Some("limited-key-3")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["message"],
        "this API key may not use the workflow \"resilient\""
    );
    let (status, body) = run_with(Some("acme-key-1")).await;
    assert_eq!(status, 200, "{body}");

    let stored = |key: &'static str| {
        let request = server
            .http
            .get(server.url("/v1/agents/billing/conversations/private"))
            .bearer_auth(key);
        async move { request.send().await.expect("answers").status().as_u16() }
    };
    assert_eq!(stored("acme-key-1").await, 200, "the run's tenant holds it");
    assert_eq!(
        stored("globex-key-2").await,
        404,
        "another tenant does not see it"
    );
}

#[tokio::test]
async fn a_streamed_run_forwards_an_agent_nodes_tool_calls_and_results() {
    use std::sync::Arc;

    use arshai::agent::{ConversationAgent, ConversationAgentConfig, FnTool, ToolSet};
    use arshai::llm::ClientFactory;
    use arshai::memory::{InMemoryStore, MemoryStore};
    use arshai::workflow::{Node, Workflow};

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Query {
        q: String,
    }

    let upstream = FakeUpstream::start().await.expect("upstream");
    let settings = load(CONFIG, &upstream).expect("the config loads");
    let memory: Arc<dyn MemoryStore> = Arc::new(InMemoryStore::default());
    let llm = ClientFactory::new(settings.providers.clone())
        .client(Default::default())
        .expect("client");
    let agent = ConversationAgent::new(
        ConversationAgentConfig {
            name: "researcher".to_owned(),
            model: Some("fake-model".to_owned()),
            lease: settings.memory.lease_settings(),
            ..ConversationAgentConfig::default()
        },
        llm,
        Arc::clone(&memory),
    )
    .with_tools(ToolSet::new().with(FnTool::new(
        "lookup",
        "Looks a word up",
        |query: Query| async move { Ok(format!("found {}", query.q)) },
    )));
    let workflow = Workflow::builder("research")
        .node(Node::agent("ask", Arc::new(agent)))
        .build()
        .expect("valid");
    let built = arshai_server::Server::builder()
        .settings(settings)
        .memory(memory)
        .workflow(workflow)
        .build()
        .await
        .expect("builds");
    let server = TestServer::start_state(upstream, built.state().clone()).await;

    server
        .upstream
        .push(Reply::tool_call("lookup", r#"{"q":"sea"}"#));
    let response = server
        .http
        .post(server.url("/v1/workflows/research/runs"))
        .json(&json!({"input": "find the sea", "stream": true}))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let parsed = parse_strict(&response.bytes().await.expect("body"));
    let event = |name: &str| {
        parsed
            .frames
            .iter()
            .find(|frame| frame.event.as_deref() == Some(name))
            .map(|frame| serde_json::from_str::<Value>(&frame.data).expect("JSON"))
            .unwrap_or_else(|| panic!("no {name} event in {:?}", parsed.frames))
    };
    let call = event("tool_call");
    assert_eq!(call["node"], "ask");
    assert_eq!(call["name"], "lookup");
    assert_eq!(call["arguments"], r#"{"q":"sea"}"#);
    let result = event("tool_result");
    assert_eq!(result["node"], "ask");
    assert_eq!(result["content"], "found sea");
    assert_eq!(event("done")["output"], "echo: find the sea");
}

#[tokio::test]
async fn a_run_past_the_request_deadline_is_504_and_counted() {
    let upstream = FakeUpstream::start().await.expect("upstream");
    let mut settings = load(CONFIG, &upstream).expect("the config loads");
    settings.server.request_timeout_seconds = 0.5;
    let server = TestServer::start_with(upstream, settings).await;
    server
        .upstream
        .push(Reply::text("too late").delayed(Duration::from_secs(30)));
    let (status, body) = run(&server, "resilient", json!({"input": "x"})).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["type"], "request_timeout");
    let metrics = server.metrics_text().await;
    assert_eq!(
        support::sample(
            &metrics,
            "arshai_workflow_runs_total{workflow=\"resilient\",status=\"request_timeout\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}
