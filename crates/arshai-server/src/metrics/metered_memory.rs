//! A [`MemoryStore`] decorator that records each operation's duration and errors, and runs it
//! in a trace span.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arshai::llm::Message;
use arshai::memory::{
    BeginTurn, Begun, CommitTurn, Conversation, ConversationKey, ConversationPage, LeaseWakers,
    MemoryError, MemoryStore, TurnWait,
};
use async_trait::async_trait;
use tracing::Instrument;

use super::{MemoryErrorLabels, MemoryLabels, Metrics};

/// Wraps a store; every operation is measured (and traced, except health checks and counts).
pub struct MeteredMemory {
    inner: Arc<dyn MemoryStore>,
    metrics: Arc<Metrics>,
}

impl MeteredMemory {
    /// Measures `inner` into `metrics`.
    pub fn wrap(inner: Arc<dyn MemoryStore>, metrics: Arc<Metrics>) -> Arc<dyn MemoryStore> {
        Arc::new(Self { inner, metrics })
    }

    /// [`Self::measure`], inside a span named after the operation (a no-op without a trace
    /// exporter). Attributes follow the database semantic conventions.
    async fn traced<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, MemoryError>>,
    ) -> Result<T, MemoryError> {
        let span = tracing::info_span!(
            target: "arshai::memory",
            "memory",
            otel.name = %format!("memory {operation}"),
            otel.kind = "client",
            db.system.name = self.inner.backend(),
            db.operation.name = operation,
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let result = self.measure(operation, call).instrument(span.clone()).await;
        if let Err(error) = &result {
            span.record("error.type", error.class());
            span.record("otel.status_code", "ERROR");
        }
        result
    }

    /// Records the operation's duration and errors (health checks and counts, which every
    /// probe and scrape calls, get no span).
    async fn measure<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, MemoryError>>,
    ) -> Result<T, MemoryError> {
        let backend = self.inner.backend();
        let start = Instant::now();
        let result = call.await;
        self.metrics
            .memory_duration
            .get_or_create(&MemoryLabels { backend, operation })
            .observe(start.elapsed().as_secs_f64());
        if let Err(error) = &result {
            self.metrics
                .memory_errors
                .get_or_create(&MemoryErrorLabels {
                    backend,
                    operation,
                    class: error.class(),
                })
                .inc();
        }
        result
    }
}

#[async_trait]
impl MemoryStore for MeteredMemory {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, MemoryError> {
        self.traced("load", self.inner.load(key)).await
    }

    async fn append(
        &self,
        key: &ConversationKey,
        messages: &[Message],
        expected_version: Option<u64>,
    ) -> Result<u64, MemoryError> {
        self.traced("append", self.inner.append(key, messages, expected_version))
            .await
    }

    async fn set_working_memory(
        &self,
        key: &ConversationKey,
        text: &str,
    ) -> Result<u64, MemoryError> {
        self.traced(
            "set_working_memory",
            self.inner.set_working_memory(key, text),
        )
        .await
    }

    async fn merge_metadata(
        &self,
        key: &ConversationKey,
        metadata: &BTreeMap<String, String>,
    ) -> Result<u64, MemoryError> {
        self.traced("merge_metadata", self.inner.merge_metadata(key, metadata))
            .await
    }

    async fn delete(&self, key: &ConversationKey) -> Result<bool, MemoryError> {
        self.traced("delete", self.inner.delete(key)).await
    }

    async fn list(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ConversationPage, MemoryError> {
        self.traced("list", self.inner.list(tenant, cursor, limit))
            .await
    }

    async fn health_check(&self) -> Result<Duration, MemoryError> {
        self.measure("health_check", self.inner.health_check())
            .await
    }

    async fn begin_turn(
        &self,
        key: &ConversationKey,
        request: &BeginTurn<'_>,
    ) -> Result<Begun, MemoryError> {
        self.traced("begin_turn", self.inner.begin_turn(key, request))
            .await
    }

    async fn commit_turn(
        &self,
        key: &ConversationKey,
        commit: &CommitTurn<'_>,
    ) -> Result<u64, MemoryError> {
        self.traced("commit_turn", self.inner.commit_turn(key, commit))
            .await
    }

    async fn renew_lease(
        &self,
        key: &ConversationKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, MemoryError> {
        self.traced("renew_lease", self.inner.renew_lease(key, owner, ttl))
            .await
    }

    async fn release_lease(&self, key: &ConversationKey, owner: &str) -> Result<bool, MemoryError> {
        self.traced("release_lease", self.inner.release_lease(key, owner))
            .await
    }

    fn lease_wakers(&self) -> &LeaseWakers {
        self.inner.lease_wakers()
    }

    fn observe_turn_wait(&self, wait: &TurnWait) {
        self.metrics.lease_wait.observe(wait.waited.as_secs_f64());
        if let Some(handoff) = wait.handoff {
            self.metrics.lease_handoff.observe(handoff.as_secs_f64());
        }
        self.inner.observe_turn_wait(wait);
    }

    async fn conversation_count(&self) -> Result<u64, MemoryError> {
        self.measure("conversation_count", self.inner.conversation_count())
            .await
    }

    async fn close(&self) -> Result<(), MemoryError> {
        self.inner.close().await
    }
}
