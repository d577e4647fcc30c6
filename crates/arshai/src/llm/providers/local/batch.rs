//! Continuous batching: the generations running on one inference thread share each forward
//! pass. A request joins the running batch as soon as a slot is free (its prompt read in
//! chunks beside the others' tokens) and leaves it when it finishes, is cancelled or its
//! caller stops reading; each member keeps its own KV cache, position, sampler and rules.

use std::time::{Duration, Instant};

use super::engine::{EVENTS_PER_STEP, Engine, EventSender, internal, send};
use super::generate::Generation;
use crate::llm::StreamEvent;
use arshai_llama::{KvCache, Rows};

/// The longest a member may wait for a caller that holds its stream but does not read it;
/// after that it is dropped so its slot serves the queue again.
const CONSUMER_STALL_LIMIT: Duration = Duration::from_secs(60);

/// One generation in a batch.
pub(crate) struct Member<'a> {
    /// The generation's state.
    pub(crate) generation: Generation<'a>,
    /// Its keys and values.
    pub(crate) cache: KvCache,
    /// Where its answer goes.
    pub(crate) events: EventSender,
    /// Where its log probabilities go, when asked for.
    pub(crate) logprobs: Option<tokio::sync::oneshot::Sender<serde_json::Value>>,
    /// Prompt length, for the usage.
    pub(crate) input_tokens: usize,
    /// Since when its caller's buffer has been too full for a step.
    pub(crate) stalled_since: Option<Instant>,
}

/// The running batch of one inference thread.
pub(crate) struct Batch<'a> {
    engine: &'a Engine,
    members: Vec<Member<'a>>,
    capacity: usize,
}

impl<'a> Batch<'a> {
    /// An empty batch of at most `capacity` members.
    pub(crate) fn new(engine: &'a Engine, capacity: usize) -> Self {
        Self {
            engine,
            members: Vec::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    /// Whether no generation is running.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether a request can join.
    pub(crate) fn has_room(&self) -> bool {
        self.members.len() < self.capacity
    }

    /// Adds a member (admitted by [`Engine::admit`]).
    pub(crate) fn join(&mut self, member: Member<'a>) {
        self.members.push(member);
    }

    /// Runs one forward pass for every member whose caller is ready, then lets each pick
    /// its next token; members that end leave the batch. Returns `false` when no member
    /// could run (all are waiting for their callers to read).
    pub(crate) fn step(&mut self) -> bool {
        let now = Instant::now();
        // Leavers first: cancelled callers, and callers stalled past the limit.
        self.members.retain_mut(|member| {
            if member.events.is_closed() {
                return false;
            }
            if member.events.capacity() >= EVENTS_PER_STEP {
                member.stalled_since = None;
                return true;
            }
            let since = *member.stalled_since.get_or_insert(now);
            if now.duration_since(since) > CONSUMER_STALL_LIMIT {
                tracing::warn!("a caller stopped reading its local-model stream; abandoned");
                return false;
            }
            true
        });
        let ready: Vec<usize> = (0..self.members.len())
            .filter(|&index| self.members[index].stalled_since.is_none())
            .collect();
        if ready.is_empty() {
            return false;
        }
        let model = match self.engine.weights() {
            Ok(model) => model,
            Err(error) => {
                self.fail_all(&error.to_string());
                return true;
            }
        };
        let logits = {
            let mut rows: Vec<Rows<'_>> = Vec::with_capacity(ready.len());
            let mut chosen = ready.iter().peekable();
            for (index, member) in self.members.iter_mut().enumerate() {
                if chosen.peek() == Some(&&index) {
                    chosen.next();
                    rows.push(Rows {
                        tokens: member.generation.input(),
                        cache: &mut member.cache,
                    });
                }
            }
            model.forward(&mut rows)
        };
        let logits = match logits {
            Ok(logits) => logits,
            Err(error) => {
                self.fail_all(&error.to_string());
                return true;
            }
        };
        let mut ended = Vec::new();
        let vocab = model.vocab();
        for (&index, logits) in ready.iter().zip(logits.chunks_exact(vocab)) {
            let member = &mut self.members[index];
            let events = &member.events;
            let result = member.generation.advance(logits, &mut |delta| {
                send(events, Ok(StreamEvent::TextDelta(delta)))
            });
            match result {
                Ok(None) => {}
                Ok(Some(outcome)) => ended.push((index, Ok(outcome))),
                Err(error) => ended.push((index, Err(error))),
            }
        }
        // Highest index first, so the indices left stay valid while removing.
        for (index, result) in ended.into_iter().rev() {
            let member = self.members.swap_remove(index);
            match result {
                Ok(outcome) => self.engine.finish(member, outcome),
                Err(error) => {
                    send(&member.events, Err(internal(error.to_string())));
                }
            }
        }
        true
    }

    /// Ends every member with the same internal error.
    fn fail_all(&mut self, message: &str) {
        for member in self.members.drain(..) {
            send(&member.events, Err(internal(message.to_owned())));
        }
    }

    /// Members running.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }
}
