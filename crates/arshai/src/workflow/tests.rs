//! The engine's behaviour: routes, fan-out, fallbacks, bounds, validation, settings,
//! streaming and batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use super::*;
use crate::agent::{Agent, AgentEvent, AgentEventStream, AgentInput, AgentOutput, answer_once};
use crate::llm::Usage;

/// A function node answering `value`.
fn constant(name: &str, value: Value) -> Node {
    Node::from_fn(name, move |_| {
        let value = value.clone();
        async move { Ok(value) }
    })
}

/// A function node that fails.
fn failing(name: &str) -> Node {
    Node::from_fn(name, |_| async { Err(NodeError::function("it broke")) })
}

/// A function node that never answers.
fn stuck(name: &str) -> Node {
    Node::from_fn(name, |_| async {
        std::future::pending::<()>().await;
        Ok(Value::Null)
    })
}

/// An agent answering `"<name>: <message>"` in one delta.
struct Echo(&'static str);

impl Agent for Echo {
    fn name(&self) -> &str {
        self.0
    }
    fn agent_type(&self) -> &'static str {
        "echo"
    }
    fn turn(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
        answer_once(async move {
            let said = input.messages.last().map(|m| m.content.clone());
            Ok(AgentOutput {
                usage: Usage {
                    input_tokens: 1,
                    output_tokens: 2,
                    total_tokens: 3,
                    reasoning_tokens: None,
                },
                ..AgentOutput::text(format!("{}: {}", self.0, said.unwrap_or_default()), "echo")
            })
        })
    }
}

async fn run(workflow: &Arc<Workflow>, input: Value) -> Result<RunOutput, RunError> {
    workflow.run_to_end(input, RunOptions::default()).await
}

fn nodes_of(output: &RunOutput) -> Vec<(&str, StepStatus)> {
    output
        .steps
        .iter()
        .map(|step| (step.node.as_str(), step.status))
        .collect()
}

fn triage() -> Arc<Workflow> {
    Workflow::builder("triage")
        .node(Node::from_fn("classify", |input: Value| async move {
            let text = input.as_str().unwrap_or_default().to_owned();
            Ok(json!({"category": if text.contains("refund") { "Billing" } else { "other" }}))
        }))
        .node(constant("billing", json!("billing desk")))
        .node(constant("general", json!("front desk")))
        .route(
            "classify",
            Route::when(
                Condition::equals("/classify/category", json!("billing")),
                "billing",
            )
            .otherwise("general"),
        )
        .build()
        .unwrap()
        .shared()
}

#[tokio::test]
async fn a_conditional_edge_follows_the_state() {
    let workflow = triage();
    let billing = run(&workflow, json!("a refund please")).await.unwrap();
    assert_eq!(billing.output, json!("billing desk"));
    assert_eq!(
        nodes_of(&billing),
        [("classify", StepStatus::Ok), ("billing", StepStatus::Ok)]
    );
    assert_eq!(
        billing.state,
        json!({"input": "a refund please", "classify": {"category": "Billing"}, "billing": "billing desk"})
    );
    let other = run(&workflow, json!("hello")).await.unwrap();
    assert_eq!(other.output, json!("front desk"));
}

#[tokio::test]
async fn a_conditional_edge_without_a_default_fails_when_nothing_matches() {
    let workflow = Workflow::builder("strict")
        .node(constant("a", json!("x")))
        .node(constant("b", json!("y")))
        .route("a", Route::when(Condition::equals("/a", json!("z")), "b"))
        .build()
        .unwrap()
        .shared();
    let error = run(&workflow, json!(null)).await.unwrap_err();
    assert!(matches!(error, RunError::NoRoute { .. }), "{error}");
    assert!(error.to_string().contains("node \"a\""), "{error}");
}

#[tokio::test]
async fn an_entry_router_and_a_chosen_edge_pick_among_their_targets() {
    let by_input = FnChooser(|state: &WorkflowState, targets: &[String]| {
        let wanted = state
            .pointer("/input/desk")
            .and_then(Value::as_str)
            .unwrap_or("");
        Ok(targets
            .iter()
            .find(|t| t.as_str() == wanted)
            .cloned()
            .unwrap_or_else(|| "nowhere".to_owned()))
    });
    let workflow = Workflow::builder("desks")
        .node(constant("sales", json!("sold")))
        .node(constant("support", json!("fixed")))
        .entry_route(Route::chosen(by_input, ["sales", "support"]))
        .build()
        .unwrap()
        .shared();
    let sales = run(&workflow, json!({"desk": "sales"})).await.unwrap();
    assert_eq!(sales.output, json!("sold"));
    let support = run(&workflow, json!({"desk": "support"})).await.unwrap();
    assert_eq!(support.output, json!("fixed"));
    let error = run(&workflow, json!({"desk": "billing"}))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("the entry") && error.to_string().contains("nowhere"),
        "{error}"
    );
}

#[tokio::test]
async fn an_agent_chooser_routes_by_the_agents_reply() {
    struct Says(&'static str);
    impl Agent for Says {
        fn name(&self) -> &str {
            "router"
        }
        fn agent_type(&self) -> &'static str {
            "fixed"
        }
        fn turn(self: Arc<Self>, _input: AgentInput) -> AgentEventStream {
            answer_once(async move { Ok(AgentOutput::text(self.0, "m")) })
        }
    }
    let workflow = Workflow::builder("routed")
        .node(constant("billing", json!("b")))
        .node(constant("technical", json!("t")))
        .entry_route(Route::chosen(
            AgentChooser::new(Arc::new(Says("Technical."))),
            ["billing", "technical"],
        ))
        .build()
        .unwrap()
        .shared();
    assert_eq!(
        run(&workflow, json!("my app crashes"))
            .await
            .unwrap()
            .output,
        json!("t")
    );
}

#[tokio::test]
async fn parallel_branches_run_at_once_and_join_with_both_outputs() {
    // Each branch waits for the other at a barrier: they finish only if they run at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let branch = |name: &str, value: Value| {
        let barrier = Arc::clone(&barrier);
        Node::from_fn(name, move |_| {
            let (barrier, value) = (Arc::clone(&barrier), value.clone());
            async move {
                barrier.wait().await;
                Ok(value)
            }
        })
    };
    let workflow = Workflow::builder("fan")
        .node(constant("start", json!("go")))
        .node(branch("left", json!({"l": 1})))
        .node(branch("right", json!({"r": 2})).output("left"))
        .node(Node::from_fn("join", |both: Value| async move { Ok(both) }).input("/left"))
        .route("start", Route::parallel(["left", "right"], Some("join")))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .shared();
    let output = run(&workflow, json!(null)).await.unwrap();
    // `right` writes under `left` too: both objects merge shallowly, in declared order.
    assert_eq!(output.output, json!({"l": 1, "r": 2}));
    assert_eq!(
        nodes_of(&output),
        [
            ("start", StepStatus::Ok),
            ("left", StepStatus::Ok),
            ("right", StepStatus::Ok),
            ("join", StepStatus::Ok)
        ]
    );
}

#[tokio::test]
async fn a_failing_node_takes_its_fallback_edge_and_the_failure_is_in_the_state() {
    let workflow = Workflow::builder("fallback")
        .node(constant("start", json!("s")))
        .node(failing("primary").fallback("backup"))
        .node(
            Node::from_fn("backup", |errors: Value| async move {
                Ok(json!({"saw": errors}))
            })
            .input("/errors"),
        )
        .node(constant("after", json!("done")))
        .edge("start", "primary")
        .edge("backup", "after")
        .build()
        .unwrap()
        .shared();
    let output = run(&workflow, json!(null)).await.unwrap();
    assert_eq!(
        nodes_of(&output),
        [
            ("start", StepStatus::Ok),
            ("primary", StepStatus::Failed),
            ("backup", StepStatus::Ok),
            ("after", StepStatus::Ok)
        ]
    );
    assert_eq!(output.steps[1].error.as_deref(), Some("it broke"));
    assert_eq!(output.state["errors"], json!({"primary": "it broke"}));
    assert_eq!(
        output.state["backup"],
        json!({"saw": {"primary": "it broke"}})
    );
    assert_eq!(output.output, json!("done"));
}

#[tokio::test]
async fn a_failing_node_without_fallback_fails_the_run_naming_it() {
    let workflow = Workflow::builder("fragile")
        .node(constant("start", json!("s")))
        .node(failing("breaks"))
        .edge("start", "breaks")
        .build()
        .unwrap()
        .shared();
    let error = run(&workflow, json!(null)).await.unwrap_err();
    assert_eq!(error.class(), "node_failed");
    assert_eq!(
        error.to_string(),
        "node \"breaks\" of workflow \"fragile\" failed: it broke"
    );
}

#[tokio::test]
async fn a_cycle_stops_at_the_step_bound() {
    let counter = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&counter);
    let workflow = Workflow::builder("loop")
        .node(Node::from_fn("ping", move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Ok(json!("ping")) }
        }))
        .node(constant("pong", json!("pong")))
        .edge("ping", "pong")
        .edge("pong", "ping")
        .max_steps(5)
        .build()
        .unwrap()
        .shared();
    let error = run(&workflow, json!(null)).await.unwrap_err();
    assert_eq!(error.class(), "step_limit");
    assert_eq!(
        error.to_string(),
        "workflow \"loop\" reached its bound of 5 steps before node \"pong\""
    );
    assert_eq!(
        counter.load(Ordering::SeqCst),
        3,
        "ping, pong, ping, pong, ping"
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_past_its_timeout_fails_or_takes_its_fallback() {
    let strict = Workflow::builder("slow")
        .node(stuck("wait").timeout(Duration::from_secs(2)))
        .build()
        .unwrap()
        .shared();
    let error = run(&strict, json!(null)).await.unwrap_err();
    assert_eq!(error.class(), "node_timeout");
    assert!(error.to_string().contains("\"wait\""), "{error}");

    let forgiving = Workflow::builder("slow-with-fallback")
        .node(stuck("wait").fallback("quick"))
        .node(constant("quick", json!("fast answer")))
        .node_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .shared();
    let output = run(&forgiving, json!(null)).await.unwrap();
    assert_eq!(
        nodes_of(&output),
        [("wait", StepStatus::TimedOut), ("quick", StepStatus::Ok)]
    );
    assert_eq!(output.output, json!("fast answer"));
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_total_timeout_fails() {
    let workflow = Workflow::builder("total")
        .node(stuck("wait"))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .shared();
    let error = run(&workflow, json!(null)).await.unwrap_err();
    assert_eq!(error.class(), "timeout");
}

#[tokio::test]
async fn a_nested_workflow_runs_as_one_node_and_its_steps_are_prefixed() {
    let inner = triage();
    let outer = Workflow::builder("outer")
        .node(Node::workflow("desk", inner))
        .node(
            Node::from_fn(
                "wrap",
                |desk: Value| async move { Ok(json!({"desk": desk})) },
            )
            .input("/desk"),
        )
        .edge("desk", "wrap")
        .build()
        .unwrap()
        .shared();
    let output = run(&outer, json!("refund")).await.unwrap();
    assert_eq!(output.output, json!({"desk": "billing desk"}));
    assert_eq!(
        nodes_of(&output),
        [
            ("desk/classify", StepStatus::Ok),
            ("desk/billing", StepStatus::Ok),
            ("desk", StepStatus::Ok),
            ("wrap", StepStatus::Ok)
        ]
    );
}

#[tokio::test]
async fn a_streamed_run_forwards_agent_deltas_between_node_events() {
    let workflow = Workflow::builder("agents")
        .node(Node::agent("first", Arc::new(Echo("one"))))
        .node(Node::agent("second", Arc::new(Echo("two"))).input("/first"))
        .edge("first", "second")
        .build()
        .unwrap()
        .shared();
    let options = RunOptions {
        delivery: crate::agent::Delivery::Streamed,
        ..RunOptions::default()
    };
    let events: Vec<WorkflowEvent> = Arc::clone(&workflow)
        .run(json!("hi"), options)
        .map(|event| event.unwrap())
        .collect()
        .await;
    let kinds: Vec<String> = events
        .iter()
        .map(|event| match event {
            WorkflowEvent::NodeStarted { node } => format!("start {node}"),
            WorkflowEvent::Agent {
                node,
                event: AgentEvent::TextDelta(text),
            } => format!("delta {node} {text}"),
            WorkflowEvent::Agent { node, .. } => format!("other {node}"),
            WorkflowEvent::NodeFinished(step) => {
                format!("end {} {}", step.node, step.status.as_str())
            }
            WorkflowEvent::Done(output) => format!("done {}", output.output),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "start first",
            "delta first one: hi",
            "end first ok",
            "start second",
            "delta second two: one: hi",
            "end second ok",
            "done \"two: one: hi\""
        ]
    );
    let WorkflowEvent::Done(output) = events.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(output.usage.total_tokens, 6, "both agent turns' tokens");
}

#[tokio::test]
async fn a_batch_keeps_its_parallelism_bound_and_the_order_of_its_inputs() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (now, most) = (Arc::clone(&running), Arc::clone(&peak));
    let workflow = Workflow::builder("square")
        .node(Node::from_fn("square", move |input: Value| {
            let (now, most) = (Arc::clone(&now), Arc::clone(&most));
            async move {
                let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(inside, Ordering::SeqCst);
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
                now.fetch_sub(1, Ordering::SeqCst);
                let n = input.as_i64().unwrap_or(0);
                Ok(json!(n * n))
            }
        }))
        .build()
        .unwrap()
        .shared();
    let results = run_batch(&workflow, (0..20).map(|n| json!(n)), 3, |_| {
        RunOptions::default()
    })
    .await;
    let outputs: Vec<Value> = results.into_iter().map(|r| r.unwrap().output).collect();
    assert_eq!(outputs, (0..20).map(|n| json!(n * n)).collect::<Vec<_>>());
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&peak),
        "at most 3 at once, and more than one: {peak}"
    );
}

fn definition_error(builder: WorkflowBuilder) -> String {
    builder.build().unwrap_err().to_string()
}

#[test]
fn invalid_definitions_are_refused_naming_the_problem() {
    assert_eq!(
        definition_error(
            Workflow::builder("w")
                .node(constant("a", json!(1)))
                .edge("a", "ghost")
        ),
        "workflow \"w\": the edge from \"a\" names the unknown node \"ghost\""
    );
    assert_eq!(
        definition_error(
            Workflow::builder("w")
                .node(constant("a", json!(1)))
                .node(constant("island", json!(2)))
        ),
        "workflow \"w\": the node \"island\" is unreachable from the entry"
    );
    assert_eq!(
        definition_error(
            Workflow::builder("w")
                .node(constant("a", json!(1)))
                .node(constant("b", json!(2)))
                .edge("a", "b")
                .edge("b", "a")
        ),
        "workflow \"w\" has the cycle a -> b -> a but no step bound: set max_steps"
    );
    assert_eq!(
        definition_error(
            Workflow::builder("w")
                .node(constant("a", json!(1)))
                .node(constant("a", json!(2)))
        ),
        "workflow \"w\" declares the node \"a\" twice"
    );
    assert_eq!(
        definition_error(Workflow::builder("w").node(constant("a", json!(1)).fallback("nobody"))),
        "workflow \"w\": the fallback of \"a\" names the unknown node \"nobody\""
    );
    assert!(definition_error(Workflow::builder("w").entry("a")).contains("has no nodes"));
    assert!(
        definition_error(
            Workflow::builder("w")
                .node(constant("a", json!(1)))
                .node(constant("b", json!(1)))
                .node(constant("c", json!(1)))
                .route("a", Route::parallel(["b"], Some("c")))
                .edge("b", "c")
        )
        .contains(
            "node \"b\" is a parallel branch of the edge from \"a\" and has edges of its own"
        )
    );
    assert!(
        definition_error(Workflow::builder("w").node(constant("a", json!(1)).input("triage")))
            .contains("not a JSON pointer")
    );
    assert!(
        definition_error(
            Workflow::builder("w")
                .node(constant("a", json!(1)))
                .node(constant("b", json!(1)))
                .route(
                    "a",
                    Route::when(
                        Condition {
                            pointer: "/a".into(),
                            equals: None,
                            exists: None
                        },
                        "b"
                    )
                )
        )
        .contains("with neither `equals` nor `exists`")
    );
    assert!(
        definition_error(Workflow::builder("bad name").node(constant("a", json!(1))))
            .contains("must be non-empty ASCII")
    );
}

const SETTINGS: &str = r#"
[[workflows]]
name = "desk"
entry = "classify"
output = "/reply"
bounds = { max_steps = 10, timeout_seconds = 30, node_timeout_seconds = 5 }

[[workflows.nodes]]
name = "classify"
function = "classify"
output = "category"

[[workflows.nodes]]
name = "billing"
agent = "billing-agent"
output = "reply"

[[workflows.nodes]]
name = "general"
workflow = "polite"
output = "reply"

[[workflows.edges]]
from = "classify"
to = "billing"
when = { pointer = "/category", equals = "billing" }

[[workflows.edges]]
from = "classify"
to = "general"

[[workflows]]
name = "polite"

[[workflows.nodes]]
name = "answer"
agent = "general-agent"
memory = "none"
"#;

#[derive(serde::Deserialize)]
struct Declared {
    workflows: Vec<WorkflowSettings>,
}

fn declared(text: &str) -> Vec<WorkflowSettings> {
    let declared: Declared = figment::Figment::from(
        <figment::providers::Toml as figment::providers::Format>::string(text),
    )
    .extract()
    .unwrap();
    declared.workflows
}

fn catalog() -> NodeCatalog {
    NodeCatalog::default()
        .agent(Arc::new(Echo("billing-agent")))
        .agent(Arc::new(Echo("general-agent")))
        .function(
            "classify",
            FnNode(|input: Value| async move {
                Ok(json!(if input.as_str().unwrap_or("").contains("invoice") {
                    "billing"
                } else {
                    "general"
                }))
            }),
        )
}

#[tokio::test]
async fn workflows_declared_in_toml_run_with_nested_workflows_first() {
    let settings = declared(SETTINGS);
    validate_workflows(&settings).unwrap();
    let registry = WorkflowRegistry::from_settings(&settings, &catalog()).unwrap();
    assert_eq!(registry.len(), 2);
    let desk = registry.get("desk").unwrap();
    assert_eq!(desk.bounds().max_steps, Some(10));
    assert_eq!(desk.bounds().node_timeout, Some(Duration::from_secs(5)));
    let billing = run(desk, json!("my invoice")).await.unwrap();
    assert_eq!(billing.output, json!("billing-agent: my invoice"));
    let general = run(desk, json!("hello")).await.unwrap();
    assert_eq!(general.output, json!("general-agent: hello"));
    assert_eq!(
        nodes_of(&general),
        [
            ("classify", StepStatus::Ok),
            ("general/answer", StepStatus::Ok),
            ("general", StepStatus::Ok)
        ]
    );
}

#[test]
fn invalid_declared_workflows_are_refused_naming_the_problem() {
    let build = |text: &str| {
        WorkflowRegistry::from_settings(&declared(text), &catalog())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        build(
            "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nagent = \"nobody\"\n"
        ),
        "workflow \"w\": node \"a\" names the unknown agent \"nobody\""
    );
    assert_eq!(
        build(
            "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nworkflow = \"v\"\n\
             [[workflows]]\nname = \"v\"\n[[workflows.nodes]]\nname = \"b\"\nworkflow = \"w\"\n"
        ),
        "workflow \"w\" nests itself: w -> v -> w"
    );
    assert!(
        build(
            "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nfunction = \"classify\"\n\
             [[workflows.nodes]]\nname = \"b\"\nfunction = \"classify\"\n\
             [[workflows.edges]]\nfrom = \"a\"\nto = \"b\"\n[[workflows.edges]]\nfrom = \"a\"\nto = \"b\"\n"
        )
        .contains("two edges from \"a\" have no `when`")
    );
    assert_eq!(
        build(
            "[[workflows]]\nname = \"w\"\nentry = { router = \"ghost\", routes = [\"a\"] }\n\
             [[workflows.nodes]]\nname = \"a\"\nfunction = \"classify\"\n"
        ),
        "workflow \"w\": the entry names the unknown router \"ghost\""
    );
    let two_kinds = declared(
        "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nagent = \"x\"\nfunction = \"y\"\n",
    );
    assert_eq!(
        validate_workflows(&two_kinds).unwrap_err().to_string(),
        "invalid setting workflows[0].nodes[0] = a: sets 2 of agent, workflow, function, tool; a node runs exactly one"
    );
    let cycle = "[[workflows]]\nname = \"w\"\n[[workflows.nodes]]\nname = \"a\"\nfunction = \"classify\"\n\
                 [[workflows.edges]]\nfrom = \"a\"\nto = \"a\"\n";
    assert_eq!(
        build(cycle),
        "workflow \"w\" has the cycle a -> a but no step bound: set max_steps"
    );
}

/// A function node answering `value` that counts its executions in `runs`.
fn counted(name: &str, value: Value, runs: &Arc<AtomicUsize>) -> Node {
    let runs = Arc::clone(runs);
    Node::from_fn(name, move |_| {
        runs.fetch_add(1, Ordering::SeqCst);
        let value = value.clone();
        async move { Ok(value) }
    })
}

fn resumable(run_id: &str, store: &Arc<MemoryCheckpoints>) -> RunOptions {
    RunOptions {
        run_id: run_id.to_owned(),
        checkpoints: Some(Arc::clone(store) as Arc<dyn Checkpoints>),
        ..RunOptions::default()
    }
}

#[tokio::test]
async fn a_second_run_with_the_same_checkpoints_does_not_run_finished_nodes_again() {
    let counts: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let workflow = Workflow::builder("pipeline")
        .node(counted("fetch", json!({"rows": 3}), &counts[0]))
        .node(counted("sum", json!(6), &counts[1]))
        .node(counted("report", json!("six"), &counts[2]))
        .edge("fetch", "sum")
        .edge("sum", "report")
        .build()
        .unwrap()
        .shared();
    let store = Arc::new(MemoryCheckpoints::new());
    let first = workflow
        .run_to_end(json!("go"), resumable("run-1", &store))
        .await
        .unwrap();
    assert_eq!(store.paths(), ["fetch#1", "report#1", "sum#1"]);
    let second = workflow
        .run_to_end(json!("go"), resumable("run-1", &store))
        .await
        .unwrap();
    let runs: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(runs, [1, 1, 1], "no node ran twice");
    assert_eq!(
        nodes_of(&second),
        [
            ("fetch", StepStatus::Restored),
            ("sum", StepStatus::Restored),
            ("report", StepStatus::Restored)
        ]
    );
    assert_eq!(
        (&second.output, &second.state),
        (&first.output, &first.state)
    );
    // A run without the store runs everything again.
    run(&workflow, json!("go")).await.unwrap();
    let runs: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(runs, [2, 2, 2]);
}

#[tokio::test]
async fn a_failed_run_retried_with_its_checkpoints_resumes_at_the_failed_node() {
    let fetched = Arc::new(AtomicUsize::new(0));
    let tries = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&tries);
    let workflow = Workflow::builder("flaky")
        .node(counted("fetch", json!("data"), &fetched))
        .node(
            Node::from_fn("flaky", move |input: Value| {
                let attempt = seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    if attempt == 0 {
                        Err(NodeError::function("the service is down"))
                    } else {
                        Ok(json!({"processed": input}))
                    }
                }
            })
            .input("/fetch"),
        )
        .node(Node::from_fn("done", |input: Value| async move { Ok(input) }).input("/flaky"))
        .edge("fetch", "flaky")
        .edge("flaky", "done")
        .build()
        .unwrap()
        .shared();
    let store = Arc::new(MemoryCheckpoints::new());
    let error = workflow
        .run_to_end(json!(null), resumable("run-2", &store))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("the service is down"), "{error}");
    assert_eq!(store.paths(), ["fetch#1"], "a failed node is not recorded");
    let output = workflow
        .run_to_end(json!(null), resumable("run-2", &store))
        .await
        .unwrap();
    assert_eq!(fetched.load(Ordering::SeqCst), 1, "fetch was restored");
    assert_eq!(tries.load(Ordering::SeqCst), 2);
    assert_eq!(
        nodes_of(&output),
        [
            ("fetch", StepStatus::Restored),
            ("flaky", StepStatus::Ok),
            ("done", StepStatus::Ok)
        ]
    );
    assert_eq!(output.output, json!({"processed": "data"}));
}

#[tokio::test]
async fn checkpoint_paths_count_visits_and_name_fan_out_nested_and_fallback_nodes() {
    let cycle = Workflow::builder("loop")
        .node(constant("ping", json!("ping")))
        .node(constant("pong", json!("pong")))
        .edge("ping", "pong")
        .edge("pong", "ping")
        .max_steps(5)
        .build()
        .unwrap()
        .shared();
    let store = Arc::new(MemoryCheckpoints::new());
    let error = cycle
        .run_to_end(json!(null), resumable("r", &store))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "step_limit");
    assert_eq!(
        store.paths(),
        ["ping#1", "ping#2", "ping#3", "pong#1", "pong#2"]
    );
    // The resumed run restores every recorded visit and stops at the same bound.
    let error = cycle
        .run_to_end(json!(null), resumable("r", &store))
        .await
        .unwrap_err();
    assert_eq!(error.class(), "step_limit");

    let outer = Workflow::builder("outer")
        .node(constant("start", json!("go")))
        .node(Node::workflow("desk", triage()))
        .node(failing("shaky").fallback("steady"))
        .node(constant("steady", json!("steady")))
        .node(constant("join", json!("joined")))
        .route("start", Route::parallel(["desk", "shaky"], Some("join")))
        .build()
        .unwrap()
        .shared();
    let store = Arc::new(MemoryCheckpoints::new());
    let first = outer
        .run_to_end(json!("refund"), resumable("n", &store))
        .await
        .unwrap();
    assert_eq!(
        store.paths(),
        [
            "desk#1",
            "desk#1/billing#1",
            "desk#1/classify#1",
            "join#1",
            "shaky#1",
            "start#1"
        ]
    );
    let resumed = outer
        .run_to_end(json!("refund"), resumable("n", &store))
        .await
        .unwrap();
    assert_eq!(
        nodes_of(&resumed),
        [
            ("start", StepStatus::Restored),
            ("desk", StepStatus::Restored),
            ("shaky", StepStatus::Restored),
            ("join", StepStatus::Restored)
        ]
    );
    // The fallback's output and the failure it replaced are restored too.
    assert_eq!(resumed.state, first.state);
    assert_eq!(resumed.state["steady"], json!("steady"));
    assert!(
        resumed.state[ERRORS_KEY]["shaky"].is_string(),
        "{}",
        resumed.state
    );
}

/// An agent recording the idempotency key of each turn it is given.
struct Keyed(Arc<std::sync::Mutex<Vec<Option<String>>>>);

impl Agent for Keyed {
    fn name(&self) -> &str {
        "keyed"
    }
    fn agent_type(&self) -> &'static str {
        "keyed"
    }
    fn turn(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
        self.0.lock().unwrap().push(input.idempotency_key.clone());
        answer_once(async move { Ok(AgentOutput::text("noted", "keyed")) })
    }
}

/// A store whose first save fails: a run that dies after a node finished, before its
/// checkpoint was written.
#[derive(Default)]
struct LosesFirstSave {
    inner: MemoryCheckpoints,
    saves: AtomicUsize,
}

#[async_trait::async_trait]
impl Checkpoints for LosesFirstSave {
    async fn load(&self, path: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        self.inner.load(path).await
    }
    async fn save(&self, path: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        if self.saves.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(CheckpointError::Unavailable("connection reset".to_owned()));
        }
        self.inner.save(path, checkpoint).await
    }
}

#[tokio::test]
async fn an_agent_node_repeated_after_a_lost_checkpoint_carries_the_same_idempotency_key() {
    let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workflow = Workflow::builder("noted")
        .node(Node::agent("note", Arc::new(Keyed(Arc::clone(&keys)))))
        .build()
        .unwrap()
        .shared();
    let store = Arc::new(LosesFirstSave::default());
    let options = RunOptions {
        run_id: "run-7".to_owned(),
        conversation: Some(crate::memory::ConversationId::parse("c-7").unwrap()),
        checkpoints: Some(Arc::clone(&store) as Arc<dyn Checkpoints>),
        ..RunOptions::default()
    };
    let error = workflow
        .run_to_end(json!("hello"), options.clone())
        .await
        .unwrap_err();
    assert_eq!(error.class(), "checkpoint");
    assert!(error.to_string().contains("note#1"), "{error}");
    let output = workflow.run_to_end(json!("hello"), options).await.unwrap();
    assert_eq!(output.output, json!("noted"));
    assert_eq!(
        *keys.lock().unwrap(),
        [
            Some("run-7:note#1".to_owned()),
            Some("run-7:note#1".to_owned())
        ],
        "the retried turn is the same turn to the turn protocol"
    );
}

#[tokio::test]
async fn a_resumed_run_takes_the_recorded_choice_of_a_chooser() {
    // A chooser that changes its mind on every call (a model need not answer alike twice).
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let fickle = FnChooser(move |_: &WorkflowState, targets: &[String]| {
        let call = counter.fetch_add(1, Ordering::SeqCst);
        Ok(targets[call % targets.len()].clone())
    });
    let tries = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&tries);
    let workflow = Workflow::builder("fickle")
        .node(constant("sales", json!("sold")))
        .node(constant("support", json!("fixed")))
        .node(Node::from_fn("finish", move |input: Value| {
            let attempt = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt == 0 {
                    Err(NodeError::function("not yet"))
                } else {
                    Ok(input)
                }
            }
        }))
        .entry_route(Route::chosen(fickle, ["sales", "support"]))
        .edge("sales", "finish")
        .edge("support", "finish")
        .build()
        .unwrap()
        .shared();
    let store = Arc::new(MemoryCheckpoints::new());
    workflow
        .run_to_end(json!("hi"), resumable("r", &store))
        .await
        .unwrap_err();
    assert_eq!(store.paths(), ["entry@route#1", "sales#1"]);
    let output = workflow
        .run_to_end(json!("hi"), resumable("r", &store))
        .await
        .unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the choice was restored");
    assert_eq!(
        nodes_of(&output),
        [("sales", StepStatus::Restored), ("finish", StepStatus::Ok)]
    );
}
