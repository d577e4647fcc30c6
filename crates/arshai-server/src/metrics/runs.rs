//! Metrics of durable runs: the backlog for autoscaling (`arshai_runs_queued{queue}`, the
//! oldest waiting run's age), the runs this process executes, and each run's outcome and
//! duration. The backlog gauges are read from Redis at scrape time (bounded), so every
//! instance reports the fleet-wide queue; a `max` or `avg` over instances is the backlog.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{HistogramFamily, request_histogram};

/// Labels naming a queue (a tenant's stream: tenants come from the configured API keys, so
/// the set is bounded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct QueueLabels {
    /// The tenant.
    pub queue: String,
}

/// Labels of a run's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: &'static str,
}

/// The run metrics.
#[derive(Debug, Default)]
pub struct RunMetrics {
    /// `arshai_runs_queued{queue}`: runs waiting to start.
    pub queued: Family<QueueLabels, Gauge>,
    /// `arshai_runs_oldest_queued_age_seconds{queue}`: how long the oldest waiting run has
    /// waited.
    pub oldest_age: Family<QueueLabels, Gauge<f64, AtomicU64>>,
    /// `arshai_runs_running`: runs this process executes now.
    pub running: Gauge,
    /// `arshai_runs_finished_total{outcome}`: runs this process finished.
    pub finished_total: Family<OutcomeLabels, Counter>,
    /// `arshai_run_duration_seconds{outcome}`: execution time of the runs this process
    /// finished (the last attempt).
    pub duration: RunDurations,
}

/// The run-duration histograms.
#[derive(Debug)]
pub struct RunDurations(pub HistogramFamily<OutcomeLabels>);

impl Default for RunDurations {
    fn default() -> Self {
        Self(Family::new_with_constructor(request_histogram))
    }
}

impl RunMetrics {
    /// Registers every run metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "arshai_runs_queued",
            "Durable runs waiting to start, by queue (tenant)",
            self.queued.clone(),
        );
        registry.register(
            "arshai_runs_oldest_queued_age_seconds",
            "Age of the oldest waiting run, by queue (tenant), in seconds",
            self.oldest_age.clone(),
        );
        registry.register(
            "arshai_runs_running",
            "Durable runs this process executes now",
            self.running.clone(),
        );
        registry.register(
            "arshai_runs_finished",
            "Durable runs this process finished, by outcome",
            self.finished_total.clone(),
        );
        registry.register(
            "arshai_run_duration_seconds",
            "Execution time of finished runs in seconds, by outcome",
            self.duration.0.clone(),
        );
    }

    /// Counts a run this process finished with `outcome` (after `elapsed`, when it ran).
    pub fn finished(&self, outcome: &'static str, elapsed: Option<Duration>) {
        let labels = OutcomeLabels { outcome };
        self.finished_total.get_or_create(&labels).inc();
        if let Some(elapsed) = elapsed {
            self.duration
                .0
                .get_or_create(&labels)
                .observe(elapsed.as_secs_f64());
        }
    }
}
