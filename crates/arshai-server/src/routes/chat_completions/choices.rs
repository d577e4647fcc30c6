//! `n > 1`: several independent completions of one request, each a run of the agent.

use std::sync::{Arc, Mutex, PoisonError};

use arshai::agent::{Agent, AgentEventStream, AgentInput, AgentOutput, answer_once};

/// An agent that answers a turn `n` times, concurrently, through `inner`. The turn's output
/// is the first answer with the usage of all of them (so limits and metrics count every
/// call); the others are left in [`Choices::others`] for the response.
pub(super) struct Choices {
    inner: Arc<dyn Agent>,
    n: u32,
    others: Arc<Mutex<Vec<AgentOutput>>>,
}

impl Choices {
    /// `inner`, answering `n` times; the answers after the first go to `others`.
    pub(super) fn new(inner: Arc<dyn Agent>, n: u32, others: Arc<Mutex<Vec<AgentOutput>>>) -> Self {
        Self { inner, n, others }
    }

    /// Takes the answers after the first out of `others`.
    pub(super) fn take(others: &Mutex<Vec<AgentOutput>>) -> Vec<AgentOutput> {
        std::mem::take(&mut *others.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Agent for Choices {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn agent_type(&self) -> &'static str {
        self.inner.agent_type()
    }

    fn turn(self: Arc<Self>, input: AgentInput) -> AgentEventStream {
        answer_once(async move {
            let runs = (0..self.n).map(|_| Arc::clone(&self.inner).respond(input.clone()));
            let mut outputs = futures::future::try_join_all(runs).await?.into_iter();
            let Some(mut first) = outputs.next() else {
                return Err(arshai::agent::AgentError::Incomplete);
            };
            let others: Vec<AgentOutput> = outputs.collect();
            for other in &others {
                first.usage += other.usage;
            }
            *self.others.lock().unwrap_or_else(PoisonError::into_inner) = others;
            Ok(first)
        })
    }
}
