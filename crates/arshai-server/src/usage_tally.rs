//! The tokens one request used, summed over its provider calls, for its log line.
//!
//! A streamed turn's usage arrives with the stream's last event, long after the handler
//! returned; the request's task-local tally is in scope both while the handler runs and
//! while its response body is polled ([`crate::request_id::assign`]), so
//! [`crate::metrics::MeteredLlm`] can add every call's usage wherever it is observed.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arshai::llm::Usage;

tokio::task_local! {
    static TALLY: Arc<UsageTally>;
}

/// Tokens used so far by one request.
#[derive(Debug, Default)]
pub struct UsageTally {
    calls: AtomicU64,
    input: AtomicU64,
    output: AtomicU64,
}

impl UsageTally {
    /// Adds `usage` to the tally of the request being served, if any.
    pub fn add(usage: &Usage) {
        let _ = TALLY.try_with(|tally| {
            tally.calls.fetch_add(1, Ordering::Relaxed);
            tally.input.fetch_add(usage.input_tokens, Ordering::Relaxed);
            tally
                .output
                .fetch_add(usage.output_tokens, Ordering::Relaxed);
        });
    }

    /// The sum, or `None` when no provider call reported usage.
    pub fn total(&self) -> Option<Usage> {
        (self.calls.load(Ordering::Relaxed) > 0).then(|| {
            let input_tokens = self.input.load(Ordering::Relaxed);
            let output_tokens = self.output.load(Ordering::Relaxed);
            Usage {
                input_tokens,
                output_tokens,
                total_tokens: input_tokens + output_tokens,
                reasoning_tokens: None,
            }
        })
    }

    /// Runs `future` with this tally in scope.
    pub async fn scope<F: Future>(self: &Arc<Self>, future: F) -> F::Output {
        TALLY.scope(Arc::clone(self), future).await
    }

    /// Runs `f` with this tally in scope (one poll of a response body).
    pub fn sync_scope<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        TALLY.sync_scope(Arc::clone(self), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
            reasoning_tokens: None,
        }
    }

    #[tokio::test]
    async fn sums_the_calls_in_scope_only() {
        UsageTally::add(&usage(100, 100)); // no request in scope: dropped
        let tally = Arc::new(UsageTally::default());
        assert_eq!(tally.total(), None);
        tally
            .scope(async {
                UsageTally::add(&usage(3, 4));
            })
            .await;
        tally.sync_scope(|| UsageTally::add(&usage(10, 20)));
        assert_eq!(tally.total(), Some(usage(13, 24)));
    }
}
