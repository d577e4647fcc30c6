//! [`WorkflowStepMetrics`]: each workflow step, as `arshai_workflow_node_duration_seconds`.

use std::sync::Arc;

use arshai::workflow::{Step, StepObserver};

use super::{Metrics, WorkflowNodeLabels};

/// Observes each step of each run into the node-duration histogram.
#[derive(Debug, Clone)]
pub struct WorkflowStepMetrics(pub Arc<Metrics>);

impl StepObserver for WorkflowStepMetrics {
    fn step_finished(&self, workflow: &str, step: &Step) {
        self.0
            .workflow_node_duration
            .get_or_create(&WorkflowNodeLabels {
                workflow: workflow.to_owned(),
                node: step.node.clone(),
                status: step.status.as_str(),
            })
            .observe(step.duration.as_secs_f64());
    }
}
