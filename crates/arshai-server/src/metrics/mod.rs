//! Prometheus metrics: one [`Metrics`] per process, encoded on `GET /metrics`.
//!
//! Names come from the scaling guide (`requests_total`, `request_duration_seconds`), its
//! monitoring page (`arshai_requests_total`, …) and what autoscaling and operations need.
//! `docs/metrics.md` lists every metric with its meaning and an example query. Label values
//! are always from small fixed sets (agent types, statuses, providers, configured models,
//! operation names, error classes), never ids.

mod controls;
mod llm_events;
mod metered_llm;
mod metered_memory;
mod process;
mod runs;
mod workflow_steps;

pub use controls::encode_controls;
pub use llm_events::MetricsLlmEvents;
pub use metered_llm::MeteredLlm;
pub use metered_memory::MeteredMemory;
pub use process::ProcessStats;
pub use runs::{OutcomeLabels, QueueLabels, RunMetrics};
pub use workflow_steps::WorkflowStepMetrics;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Buckets for whole requests and upstream calls, in seconds: 5 ms to 5 min.
const REQUEST_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Buckets for the admission queue wait, in seconds: 0.5 ms to 10 s.
const WAIT_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for memory-store operations, in seconds: 0.1 ms to 1 s.
const MEMORY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Buckets for a turn's wait for its conversation's lease and the hand-off after a release,
/// in seconds: 50 µs to 10 s.
const LEASE_BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];
/// Buckets for an upstream's time to first token, in seconds: 10 ms to 30 s.
const TTFT_BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];

/// A histogram family whose histograms share one bucket layout.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}
fn wait_histogram() -> Histogram {
    Histogram::new(WAIT_BUCKETS)
}
fn memory_histogram() -> Histogram {
    Histogram::new(MEMORY_BUCKETS)
}
fn ttft_histogram() -> Histogram {
    Histogram::new(TTFT_BUCKETS)
}

/// Labels of a turn's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TurnLabels {
    /// The agent's type (`conversation`, …; `unknown` for an unknown agent).
    pub agent_type: &'static str,
    /// The HTTP status code.
    pub status: u16,
}

/// Labels naming an agent type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AgentTypeLabels {
    /// The agent's type.
    pub agent_type: &'static str,
}

/// Labels of token counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TokenLabels {
    /// The model that used the tokens (configured per agent, so bounded).
    pub model: String,
    /// `input` or `output`.
    pub r#type: &'static str,
}

/// Labels of an upstream call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// The provider (`openai`, …).
    pub provider: &'static str,
    /// The requested model.
    pub model: String,
}

/// Labels of an upstream event tied to an error class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UpstreamClassLabels {
    /// The provider.
    pub provider: &'static str,
    /// The error class ([`arshai::llm::LlmError::class`]).
    pub class: &'static str,
}

/// Labels naming a provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProviderLabels {
    /// The provider.
    pub provider: &'static str,
}

/// Labels of a memory-store operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MemoryLabels {
    /// The backend (`memory`, `redis`).
    pub backend: &'static str,
    /// The operation (`load`, `append`, …).
    pub operation: &'static str,
}

/// Labels of a memory-store error.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MemoryErrorLabels {
    /// The backend.
    pub backend: &'static str,
    /// The operation.
    pub operation: &'static str,
    /// The error class ([`arshai::memory::MemoryError::class`]).
    pub class: &'static str,
}

/// Labels of `arshai_build_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version (`CARGO_PKG_VERSION`).
    pub version: &'static str,
}

/// Labels of a workflow run's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WorkflowRunLabels {
    /// The workflow (configured, so bounded).
    pub workflow: String,
    /// `ok`, or the failure's class (`node_failed`, `node_timeout`, `step_limit`,
    /// `timeout`, `no_route`, `request_timeout`, `cancelled`).
    pub status: &'static str,
}

/// Labels of a workflow node's execution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WorkflowNodeLabels {
    /// The workflow (configured, so bounded).
    pub workflow: String,
    /// The node (configured, so bounded).
    pub node: String,
    /// `ok`, `failed` or `timed_out`.
    pub status: &'static str,
}

/// Labels of an admission refusal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RejectionLabels {
    /// `queue_full`, `queue_timeout` or `draining`.
    pub reason: &'static str,
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The guide's `requests_total`: agent turns handled.
    pub requests: Counter,
    /// The guide's `request_duration_seconds`: agent turn duration.
    pub request_duration: Histogram,
    /// `arshai_requests_total{agent_type,status}`.
    pub agent_requests: Family<TurnLabels, Counter>,
    /// `arshai_request_duration_seconds{agent_type}`.
    pub agent_request_duration: HistogramFamily<AgentTypeLabels>,
    /// `arshai_active_conversations`: conversations the memory store holds.
    pub active_conversations: Gauge,
    /// `arshai_tokens_used_total{model,type}`.
    pub tokens: Family<TokenLabels, Counter>,
    /// `arshai_turns_in_flight`.
    pub turns_in_flight: Gauge,
    /// `arshai_admission_queue_depth`.
    pub queue_depth: Gauge,
    /// `arshai_admission_wait_seconds`.
    pub admission_wait: Histogram,
    /// `arshai_admission_rejected_total{reason}`.
    pub admission_rejected: Family<RejectionLabels, Counter>,
    /// `arshai_draining`: 1 once shutdown began.
    pub draining: Gauge,
    /// `arshai_upstream_request_duration_seconds{provider,model}`.
    pub upstream_duration: HistogramFamily<UpstreamLabels>,
    /// `arshai_upstream_time_to_first_token_seconds{provider,model}`.
    pub upstream_ttft: HistogramFamily<UpstreamLabels>,
    /// `arshai_upstream_errors_total{provider,class}`.
    pub upstream_errors: Family<UpstreamClassLabels, Counter>,
    /// `arshai_upstream_retries_total{provider,class}`.
    pub upstream_retries: Family<UpstreamClassLabels, Counter>,
    /// `arshai_upstream_circuit_state{provider}`: 0 closed, 1 half-open, 2 open.
    pub upstream_circuit: Family<ProviderLabels, Gauge>,
    /// `arshai_memory_operation_duration_seconds{backend,operation}`.
    pub memory_duration: HistogramFamily<MemoryLabels>,
    /// `arshai_memory_operation_errors_total{backend,operation,class}`.
    pub memory_errors: Family<MemoryErrorLabels, Counter>,
    /// `arshai_turn_lease_wait_seconds`: how long turns waited for their conversation.
    pub lease_wait: Histogram,
    /// `arshai_turn_lease_handoff_seconds`: from a lease's release to the waiting turn that
    /// took it.
    pub lease_handoff: Histogram,
    /// `arshai_connections_open`: client connections open now.
    pub connections_open: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// `arshai_connections_total`: client connections accepted.
    pub connections: Counter<u64, AtomicU64>,
    /// Durable runs (`arshai_runs_*`).
    pub runs: RunMetrics,
    /// `arshai_build_info{version}`: always 1; counts replicas and versions in a rollout.
    pub build_info: Family<BuildLabels, Gauge>,
    /// `arshai_workflow_runs_total{workflow,status}`.
    pub workflow_runs: Family<WorkflowRunLabels, Counter>,
    /// `arshai_workflow_node_duration_seconds{workflow,node,status}`.
    pub workflow_node_duration: HistogramFamily<WorkflowNodeLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Self {
            requests: Counter::default(),
            request_duration: request_histogram(),
            agent_requests: Family::default(),
            agent_request_duration: Family::new_with_constructor(request_histogram),
            active_conversations: Gauge::default(),
            tokens: Family::default(),
            turns_in_flight: Gauge::default(),
            queue_depth: Gauge::default(),
            admission_wait: wait_histogram(),
            admission_rejected: Family::default(),
            draining: Gauge::default(),
            upstream_duration: Family::new_with_constructor(request_histogram),
            upstream_ttft: Family::new_with_constructor(ttft_histogram),
            upstream_errors: Family::default(),
            upstream_retries: Family::default(),
            upstream_circuit: Family::default(),
            memory_duration: Family::new_with_constructor(memory_histogram),
            memory_errors: Family::default(),
            lease_wait: Histogram::new(LEASE_BUCKETS),
            lease_handoff: Histogram::new(LEASE_BUCKETS),
            connections_open: Gauge::default(),
            connections: Counter::default(),
            build_info: Family::default(),
            workflow_runs: Family::default(),
            workflow_node_duration: Family::new_with_constructor(request_histogram),
            runs: RunMetrics::default(),
            registry: Registry::default(),
        };
        // Counters get `_total` appended by the encoder; other names are registered whole.
        registry.register("requests", "Agent turns handled", metrics.requests.clone());
        registry.register(
            "request_duration_seconds",
            "Agent turn duration in seconds, admission wait included",
            metrics.request_duration.clone(),
        );
        registry.register(
            "arshai_requests",
            "Agent turns by agent type and HTTP status",
            metrics.agent_requests.clone(),
        );
        registry.register(
            "arshai_request_duration_seconds",
            "Agent turn duration in seconds by agent type",
            metrics.agent_request_duration.clone(),
        );
        registry.register(
            "arshai_active_conversations",
            "Conversations held by the memory store",
            metrics.active_conversations.clone(),
        );
        registry.register(
            "arshai_tokens_used",
            "LLM tokens used, by model and type (input, output)",
            metrics.tokens.clone(),
        );
        registry.register(
            "arshai_turns_in_flight",
            "Agent turns running now (admitted, not finished)",
            metrics.turns_in_flight.clone(),
        );
        registry.register(
            "arshai_admission_queue_depth",
            "Agent turns waiting for an admission slot",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "arshai_admission_wait_seconds",
            "Time admitted turns waited for a slot, in seconds",
            metrics.admission_wait.clone(),
        );
        registry.register(
            "arshai_admission_rejected",
            "Turns refused with 503 by admission control, by reason",
            metrics.admission_rejected.clone(),
        );
        registry.register(
            "arshai_draining",
            "1 once graceful shutdown began, else 0",
            metrics.draining.clone(),
        );
        registry.register(
            "arshai_upstream_request_duration_seconds",
            "LLM upstream call duration in seconds, by provider and model",
            metrics.upstream_duration.clone(),
        );
        registry.register(
            "arshai_upstream_time_to_first_token_seconds",
            "Time from an upstream call to its first streamed token, in seconds",
            metrics.upstream_ttft.clone(),
        );
        registry.register(
            "arshai_upstream_errors",
            "Failed LLM upstream calls by provider and error class",
            metrics.upstream_errors.clone(),
        );
        registry.register(
            "arshai_upstream_retries",
            "LLM upstream calls retried, by provider and the class of the error retried",
            metrics.upstream_retries.clone(),
        );
        registry.register(
            "arshai_upstream_circuit_state",
            "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open",
            metrics.upstream_circuit.clone(),
        );
        registry.register(
            "arshai_memory_operation_duration_seconds",
            "Memory store operation duration in seconds, by backend and operation",
            metrics.memory_duration.clone(),
        );
        registry.register(
            "arshai_memory_operation_errors",
            "Failed memory store operations by backend, operation and error class",
            metrics.memory_errors.clone(),
        );
        registry.register(
            "arshai_turn_lease_wait_seconds",
            "Time agent turns waited for their conversation's lease (0 when it was free)",
            metrics.lease_wait.clone(),
        );
        registry.register(
            "arshai_turn_lease_handoff_seconds",
            "Time from a lease's release to the waiting turn that took it",
            metrics.lease_handoff.clone(),
        );
        registry.register(
            "arshai_connections_open",
            "Client connections open now",
            metrics.connections_open.clone(),
        );
        registry.register(
            "arshai_connections",
            "Client connections accepted",
            metrics.connections.clone(),
        );
        registry.register(
            "arshai_build_info",
            "1, labelled with the version of the running arshai build",
            metrics.build_info.clone(),
        );
        registry.register(
            "arshai_workflow_runs",
            "Workflow runs by workflow and outcome",
            metrics.workflow_runs.clone(),
        );
        registry.register(
            "arshai_workflow_node_duration_seconds",
            "Workflow node duration in seconds, by workflow, node and outcome",
            metrics.workflow_node_duration.clone(),
        );
        metrics
            .build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        metrics.runs.register(&mut registry);
        registry.register_collector(Box::new(process::ProcessCollector));
        // Refusal series exist from the start, so that `rate()` alerts see zeros, not gaps.
        for reason in ["queue_full", "queue_timeout", "draining"] {
            let _ = metrics
                .admission_rejected
                .get_or_create(&RejectionLabels { reason });
        }
        Self {
            registry,
            ..metrics
        }
    }

    /// The registry in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(openmetrics_to_prometheus(&text))
    }
}

/// Rewrites prometheus-client's OpenMetrics text as Prometheus text: a counter family is
/// named with its `_total` suffix in `# HELP` and `# TYPE` (OpenMetrics names the family
/// without it, which Prometheus-format parsers such as `promtool check metrics` read as a
/// family with no samples), and the `# EOF` and `# UNIT` lines are dropped.
fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + counters.len() * 16);
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            (counters.contains(name) && !name.ends_with("_total"))
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}
