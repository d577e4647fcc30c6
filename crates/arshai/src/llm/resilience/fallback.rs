//! An optional fallback chain: when a provider fails in a way another might not (it is down,
//! overloaded, refusing our key), the next provider in the chain answers.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc;

use crate::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, StreamEvent};

/// Tries each client in order until one answers.
///
/// A request's own fault (bad request, prompt too long, decode error) is returned as it is:
/// another provider would most likely refuse it too. A stream falls back only while nothing
/// has reached the caller.
pub struct FallbackClient {
    chain: Vec<Arc<dyn LlmClient>>,
}

impl FallbackClient {
    /// A chain; the first client is the primary. An empty chain is a configuration error.
    pub fn new(chain: Vec<Arc<dyn LlmClient>>) -> Result<Self, LlmError> {
        if chain.is_empty() {
            return Err(LlmError::Config {
                provider: "fallback",
                message: "a fallback chain needs at least one provider".to_owned(),
            });
        }
        Ok(Self { chain })
    }

    /// Whether the next provider should be tried after `error`.
    pub fn falls_back_on(error: &LlmError) -> bool {
        matches!(
            error,
            LlmError::RateLimited { .. }
                | LlmError::Auth { .. }
                | LlmError::UpstreamStatus { .. }
                | LlmError::Timeout { .. }
                | LlmError::Connection { .. }
                | LlmError::CircuitOpen { .. }
                | LlmError::Config { .. }
        )
    }

    fn primary(&self) -> &Arc<dyn LlmClient> {
        // The constructor refuses an empty chain.
        &self.chain[0]
    }
}

#[async_trait]
impl LlmClient for FallbackClient {
    fn provider(&self) -> &'static str {
        self.primary().provider()
    }

    fn default_model(&self) -> &str {
        self.primary().default_model()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut last = None;
        for (index, client) in self.chain.iter().enumerate() {
            // The request's model names a model of the primary; the others use their own.
            let result = if index == 0 {
                client.chat(request).await
            } else {
                let mut request = request.clone();
                request.model = None;
                client.chat(&request).await
            };
            match result {
                Ok(response) => return Ok(response),
                Err(error) if Self::falls_back_on(&error) => {
                    tracing::warn!(
                        provider = client.provider(),
                        class = error.class(),
                        "provider failed; trying the next in the fallback chain"
                    );
                    last = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last.unwrap_or(LlmError::Config {
            provider: "fallback",
            message: "empty fallback chain".to_owned(),
        }))
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        let opened = async move {
            let mut last = None;
            let without_model = ChatRequest {
                model: None,
                ..request.clone()
            };
            for (index, client) in self.chain.iter().enumerate() {
                let mut events = if index == 0 {
                    client.stream(request)
                } else {
                    owned_stream(Arc::clone(client), without_model.clone())
                };
                match events.next().await {
                    Some(Err(error)) if Self::falls_back_on(&error) => last = Some(error),
                    Some(first) => return stream::once(future::ready(first)).chain(events).boxed(),
                    None => return stream::empty().boxed(),
                }
            }
            let error = last.unwrap_or(LlmError::Config {
                provider: "fallback",
                message: "empty fallback chain".to_owned(),
            });
            stream::once(future::ready(Err(error))).boxed()
        };
        stream::once(opened).flatten().boxed()
    }
}

/// Events of a stream that owns its request: a task drives it into a small bounded channel
/// and stops as soon as the receiver is dropped.
fn owned_stream(
    client: Arc<dyn LlmClient>,
    request: ChatRequest,
) -> BoxStream<'static, Result<StreamEvent, LlmError>> {
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut events = client.stream(&request);
        while let Some(event) = events.next().await {
            if sender.send(event).await.is_err() {
                break;
            }
        }
    });
    stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (event, receiver))
    })
    .boxed()
}
