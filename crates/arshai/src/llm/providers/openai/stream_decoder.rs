//! OpenAI's streamed Chat Completions (`chat.completion.chunk` events): text deltas, tool
//! calls assembled from deltas split across chunks, usage in the last chunk, `[DONE]`.

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;

use super::wire::WireUsage;
use crate::llm::providers::lenient_json::null_as_default;
use crate::llm::status::WireError;
use crate::llm::transport::sse::{ChunkDecoder, Flow};
use crate::llm::{FinishReason, LlmError, StreamEvent, ToolCall};

/// Decodes OpenAI-compatible stream chunks into [`StreamEvent`]s.
///
/// Tool calls are held until the model finishes (their arguments arrive in pieces) and then
/// emitted whole, in index order. Usage is emitted when the chunk carrying it arrives
/// (`stream_options.include_usage`); the finish event comes last.
#[derive(Debug)]
pub struct OpenAiStreamDecoder {
    provider: &'static str,
    model: String,
    calls: BTreeMap<u32, PartialCall>,
    finish: Option<FinishReason>,
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

impl OpenAiStreamDecoder {
    /// A decoder whose errors name `provider`.
    pub fn new(provider: &'static str) -> Self {
        Self {
            provider,
            model: String::new(),
            calls: BTreeMap::new(),
            finish: None,
        }
    }

    fn flush_calls(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
        for (index, call) in std::mem::take(&mut self.calls) {
            if call.name.is_empty() {
                return Err(LlmError::Decode {
                    provider: self.provider,
                    message: format!("streamed tool call {index} has no function name"),
                });
            }
            out.push_back(StreamEvent::ToolCall(ToolCall {
                id: call.id,
                name: call.name,
                arguments: call.arguments,
            }));
        }
        Ok(())
    }

    fn add_call_delta(&mut self, delta: WireToolCallDelta) {
        let index = match delta.index {
            Some(index) => index,
            // Some gateways omit the index: a delta with a new id starts a call, one without
            // continues the last.
            None => match (&delta.id, self.calls.last_key_value()) {
                (Some(id), Some((last, call))) if !id.is_empty() && *id != call.id => last + 1,
                (_, Some((last, _))) => *last,
                (_, None) => 0,
            },
        };
        let call = self.calls.entry(index).or_default();
        if let Some(id) = delta.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(function) = delta.function {
            if let Some(name) = function.name {
                call.name.push_str(&name);
            }
            if let Some(arguments) = function.arguments {
                call.arguments.push_str(&arguments);
            }
        }
    }
}

impl ChunkDecoder for OpenAiStreamDecoder {
    fn data(&mut self, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow, LlmError> {
        if data.trim() == "[DONE]" {
            return Ok(Flow::Done);
        }
        let chunk: WireChunk = serde_json::from_str(data).map_err(|e| LlmError::Decode {
            provider: self.provider,
            message: format!("malformed stream chunk: {e}"),
        })?;
        if let Some(error) = chunk.error {
            return Err(LlmError::UpstreamStatus {
                provider: self.provider,
                status: 200,
                body_excerpt: format!("error inside the stream: {}", error.message),
                retry_after: None,
            });
        }
        if self.model.is_empty()
            && let Some(model) = chunk.model
        {
            self.model = model;
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                out.push_back(StreamEvent::TextDelta(text));
            }
            for delta in choice.delta.tool_calls {
                self.add_call_delta(delta);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(FinishReason::from_wire(&reason));
                self.flush_calls(out)?;
            }
        }
        if let Some(usage) = chunk.usage {
            out.push_back(StreamEvent::Usage(usage.into_usage()));
        }
        Ok(Flow::Continue)
    }

    fn end(&mut self, done: bool, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
        // Without `[DONE]` the answer is complete only if the model said why it stopped
        // (some gateways omit `[DONE]`); otherwise the connection was cut mid-answer.
        if !done && self.finish.is_none() {
            return Err(LlmError::Connection {
                provider: self.provider,
                message: "the stream ended before the answer was complete".to_owned(),
            });
        }
        self.flush_calls(out)?;
        out.push_back(StreamEvent::Finish {
            reason: self.finish.take().unwrap_or(FinishReason::Stop),
            model: std::mem::take(&mut self.model),
        });
        Ok(())
    }
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default, deserialize_with = "null_as_default")]
    delta: WireDelta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    tool_calls: Vec<WireToolCallDelta>,
}

#[derive(Deserialize)]
struct WireToolCallDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunctionDelta>,
}

#[derive(Deserialize)]
struct WireFunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&str]) -> Result<Vec<StreamEvent>, LlmError> {
        let mut decoder = OpenAiStreamDecoder::new("openai");
        let mut out = VecDeque::new();
        for chunk in chunks {
            if decoder.data(chunk, &mut out)? == Flow::Done {
                decoder.end(true, &mut out)?;
                return Ok(out.into());
            }
        }
        decoder.end(false, &mut out)?;
        Ok(out.into())
    }

    #[test]
    fn tool_call_deltas_split_across_chunks_become_whole_calls() {
        let events = run(&[
            r#"{"object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":""}}]},"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","function":{"name":"time","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Oslo\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events[0],
            StreamEvent::ToolCall(ToolCall {
                id: "call_1".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Oslo"}"#.into()
            })
        );
        assert!(matches!(&events[1], StreamEvent::ToolCall(c) if c.name == "time"));
        assert!(matches!(&events[2], StreamEvent::Usage(u) if u.total_tokens == 12));
        assert_eq!(
            events[3],
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                model: "m".into()
            }
        );
    }

    #[test]
    fn a_stream_cut_before_the_finish_is_an_error() {
        let error = run(&[r#"{"choices":[{"delta":{"content":"Hel"}}]}"#]).unwrap_err();
        assert_eq!(error.class(), "connection");
    }

    #[test]
    fn a_malformed_chunk_is_a_decode_error_naming_the_provider() {
        let error = run(&[r#"{"choices":[{"delta":"#]).unwrap_err();
        assert_eq!(error.class(), "decode");
        assert!(error.to_string().contains("openai"));
    }
}
