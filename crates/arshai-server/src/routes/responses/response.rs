//! The `response` object: what `POST /v1/responses` answers, what streamed events carry,
//! and what is stored for `GET /v1/responses/{id}`.

use arshai::agent::AgentOutput;
use arshai::llm::{FinishReason, Usage};
use serde_json::{Value, json};

use super::request::ResponsesRequest;

/// What a response object says that does not depend on the answer: its id, its time, and
/// the request's parameters, echoed back as OpenAI does.
#[derive(Debug, Clone)]
pub(super) struct ResponseDraft {
    /// `resp_…`.
    pub(super) id: String,
    created_at: u64,
    model: String,
    echo: serde_json::Map<String, Value>,
}

impl ResponseDraft {
    /// The draft of response `id` to `request`.
    pub(super) fn new(id: String, request: &ResponsesRequest) -> Self {
        let mut echo = serde_json::Map::new();
        let mut put = |key: &str, value: Value| {
            echo.insert(key.to_owned(), value);
        };
        put("instructions", json!(request.instructions));
        put("max_output_tokens", json!(request.max_output_tokens));
        put(
            "parallel_tool_calls",
            json!(request.parallel_tool_calls.unwrap_or(true)),
        );
        put("previous_response_id", json!(request.previous_response_id));
        put("store", json!(request.stores()));
        // `null` when not overridden: the agent's own setting applies.
        put("temperature", json!(request.temperature));
        put(
            "text",
            request
                .text
                .clone()
                .filter(|text| text.get("format").is_some_and(|format| !format.is_null()))
                .unwrap_or_else(|| json!({"format": {"type": "text"}})),
        );
        put(
            "tool_choice",
            request.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        );
        put("tools", json!(request.tools.clone().unwrap_or_default()));
        put("top_p", json!(request.top_p));
        put("truncation", json!("disabled"));
        put("user", json!(request.user));
        put(
            "metadata",
            request.metadata.clone().unwrap_or_else(|| json!({})),
        );
        put("reasoning", json!({"effort": null, "summary": null}));
        put("background", json!(false));
        put("service_tier", json!("default"));
        Self {
            id,
            created_at: unix_seconds(),
            model: request.model.clone(),
            echo,
        }
    }

    /// The object with `status`, `output` and `usage` (and the echoed parameters).
    fn object(&self, status: &str, output: Vec<Value>, usage: Option<Usage>) -> Value {
        let mut object = serde_json::Map::new();
        object.insert("id".into(), json!(self.id));
        object.insert("object".into(), json!("response"));
        object.insert("created_at".into(), json!(self.created_at));
        object.insert("status".into(), json!(status));
        object.insert("error".into(), Value::Null);
        object.insert("incomplete_details".into(), Value::Null);
        object.insert("model".into(), json!(self.model));
        object.insert("output".into(), Value::Array(output));
        object.insert("usage".into(), usage.map_or(Value::Null, wire_usage));
        object.extend(self.echo.clone());
        Value::Object(object)
    }

    /// The object of a response that has started and not finished.
    pub(super) fn in_progress(&self) -> Value {
        self.object("in_progress", Vec::new(), None)
    }

    /// The object of a response that failed with OpenAI error `error` (`{code, message}`).
    pub(super) fn failed(&self, error: Value) -> Value {
        let mut object = self.object("failed", Vec::new(), None);
        object["error"] = error;
        object
    }

    /// The object of the finished turn `output`.
    pub(super) fn finished(&self, output: &AgentOutput) -> Value {
        let incomplete = match &output.finish_reason {
            FinishReason::Length => Some("max_output_tokens"),
            FinishReason::ContentFilter => Some("content_filter"),
            _ => None,
        };
        let mut object = self.object(
            if incomplete.is_some() {
                "incomplete"
            } else {
                "completed"
            },
            output_items(&self.id, output),
            Some(output.usage),
        );
        if let Some(reason) = incomplete {
            object["incomplete_details"] = json!({ "reason": reason });
        }
        object
    }
}

/// The output items of `output`: a message with the answer's text (when there is any, or
/// when there is nothing else), then the calls to the caller's tools.
pub(super) fn output_items(response_id: &str, output: &AgentOutput) -> Vec<Value> {
    let mut items = Vec::with_capacity(1 + output.tool_calls.len());
    if !output.reply.is_empty() || output.tool_calls.is_empty() {
        items.push(message_item(response_id, &output.reply, "completed"));
    }
    for (index, call) in output.tool_calls.iter().enumerate() {
        items.push(json!({
            "id": function_call_item_id(response_id, index),
            "type": "function_call",
            "status": "completed",
            "call_id": call.id,
            "name": call.name,
            "arguments": call.arguments,
        }));
    }
    items
}

/// The assistant message item carrying `text`.
pub(super) fn message_item(response_id: &str, text: &str, status: &str) -> Value {
    json!({
        "id": message_item_id(response_id),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": if status == "in_progress" {
            Vec::new()
        } else {
            vec![output_text(text)]
        },
    })
}

/// An `output_text` content part.
pub(super) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The id of the message item of response `response_id`.
pub(super) fn message_item_id(response_id: &str) -> String {
    format!("msg_{}", item_suffix(response_id))
}

/// The id of function call item `index` of response `response_id`.
pub(super) fn function_call_item_id(response_id: &str, index: usize) -> String {
    format!("fc_{}_{index}", item_suffix(response_id))
}

fn item_suffix(response_id: &str) -> &str {
    response_id.strip_prefix("resp_").unwrap_or(response_id)
}

/// `usage`, as the Responses API reports it.
pub(super) fn wire_usage(usage: Usage) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens.unwrap_or(0)},
        "total_tokens": usage.total_tokens,
    })
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
