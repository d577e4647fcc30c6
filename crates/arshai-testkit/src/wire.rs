//! The wire formats the fake upstream speaks: OpenAI Chat Completions (also Azure OpenAI and
//! OpenRouter) and Gemini `generateContent`, each as one JSON body or as server-sent events.

use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use serde_json::{Value, json};

use crate::scripted::ScriptedToolCall;

/// Which provider's format a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    OpenAi,
    Gemini,
}

/// What the fake model answers, before it is put in a wire format.
pub(crate) struct Answer {
    pub(crate) text: String,
    pub(crate) calls: Vec<ScriptedToolCall>,
}

/// The format of `uri`, whether it is a streaming endpoint by path, and the model its path
/// names (Gemini and Azure put it there).
pub(crate) fn route(uri: &Uri) -> Option<(Wire, bool, Option<String>)> {
    let path = uri.path();
    if path.ends_with("/chat/completions") {
        // Azure: /openai/deployments/{deployment}/chat/completions
        let deployment = path
            .strip_prefix("/openai/deployments/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned);
        return Some((Wire::OpenAi, false, deployment));
    }
    let (_, model_action) = path.split_once("/models/")?;
    let (model, action) = model_action.rsplit_once(':')?;
    match action {
        "generateContent" => Some((Wire::Gemini, false, Some(model.to_owned()))),
        "streamGenerateContent" => Some((Wire::Gemini, true, Some(model.to_owned()))),
        _ => None,
    }
}

/// The default answer: `echo: <last user message>`, so tests can see what was sent.
pub(crate) fn echo(wire: Wire, body: &Value) -> String {
    let last_user = match wire {
        Wire::OpenAi => body["messages"]
            .as_array()
            .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str()),
        Wire::Gemini => body["contents"]
            .as_array()
            .and_then(|contents| contents.iter().rev().find(|c| c["role"] == "user"))
            .and_then(|c| c["parts"][0]["text"].as_str()),
    };
    format!("echo: {}", last_user.unwrap_or(""))
}

/// The error body each provider sends with a non-success status.
pub(crate) fn error_body(wire: Wire, status: StatusCode, message: &str) -> Value {
    match wire {
        Wire::OpenAi => {
            let kind = if status == StatusCode::TOO_MANY_REQUESTS {
                "rate_limit_exceeded"
            } else if status.is_server_error() {
                "server_error"
            } else {
                "invalid_request_error"
            };
            let code = message
                .contains("maximum context length")
                .then_some("context_length_exceeded");
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
        Wire::Gemini => {
            let name = match status.as_u16() {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                503 => "UNAVAILABLE",
                _ => "INTERNAL",
            };
            json!({"error": {"code": status.as_u16(), "message": message, "status": name}})
        }
    }
}

/// A stable stand-in for a tokenizer: one token per 4 bytes, at least 1.
fn approximate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4).max(1)
}

fn prompt_tokens(wire: Wire, request: &Value) -> u64 {
    match wire {
        Wire::OpenAi => approximate_tokens(&request["messages"].to_string()),
        Wire::Gemini => approximate_tokens(&request["contents"].to_string()),
    }
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn call_id() -> String {
    format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

/// OpenAI's `logprobs` object when the request asked for it (one entry per word of the
/// answer, each with `top_logprobs` alternatives), `null` otherwise.
fn logprobs(request: &Value, text: &str) -> Value {
    if request["logprobs"] != json!(true) {
        return Value::Null;
    }
    let top = request["top_logprobs"].as_u64().unwrap_or(0);
    let content: Vec<Value> = text
        .split_inclusive(' ')
        .map(|token| {
            let alternatives: Vec<Value> = (0..top)
                .map(|rank| json!({"token": token, "logprob": -(rank as f64) - 0.25, "bytes": token.as_bytes()}))
                .collect();
            json!({"token": token, "logprob": -0.25, "bytes": token.as_bytes(), "top_logprobs": alternatives})
        })
        .collect();
    json!({"content": content, "refusal": null})
}

fn openai_usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    })
}

fn gemini_usage(prompt: u64, completion: u64) -> Value {
    json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion,
        "totalTokenCount": prompt + completion,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]
    })
}

/// Gemini's `args` is an object; arguments that are not JSON are sent as a string so that
/// clients see (and must report) something that is not an object.
fn gemini_args(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

fn completion_tokens(answer: &Answer) -> u64 {
    let calls: usize = answer
        .calls
        .iter()
        .map(|c| c.name.len() + c.arguments.len())
        .sum();
    approximate_tokens(&answer.text) + calls as u64 / 4
}

/// One complete (non-streamed) answer.
pub(crate) fn complete(wire: Wire, model: &str, answer: &Answer, request: &Value) -> Value {
    let prompt = prompt_tokens(wire, request);
    let completion = completion_tokens(answer);
    match wire {
        Wire::OpenAi => {
            let tool_calls: Vec<Value> = answer
                .calls
                .iter()
                .map(|call| {
                    json!({"id": call_id(), "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments}})
                })
                .collect();
            let mut message = json!({"role": "assistant",
                "content": if answer.text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(answer.text) },
                "refusal": null, "annotations": []});
            if !tool_calls.is_empty() {
                message["tool_calls"] = Value::Array(tool_calls);
            }
            json!({
                "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
                "object": "chat.completion",
                "created": now_seconds(),
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": message,
                    "logprobs": logprobs(request, &answer.text),
                    "finish_reason": if answer.calls.is_empty() { "stop" } else { "tool_calls" }
                }],
                "usage": openai_usage(prompt, completion),
                "service_tier": "default",
                "system_fingerprint": "fp_fake"
            })
        }
        Wire::Gemini => {
            let mut parts = Vec::new();
            if !answer.text.is_empty() {
                parts.push(json!({"text": answer.text}));
            }
            parts.extend(answer.calls.iter().map(|call| {
                json!({"functionCall": {"name": call.name, "args": gemini_args(&call.arguments)}})
            }));
            json!({
                "candidates": [{
                    "content": {"parts": parts, "role": "model"},
                    "finishReason": "STOP",
                    "index": 0,
                    "avgLogprobs": -0.1
                }],
                "usageMetadata": gemini_usage(prompt, completion),
                "modelVersion": model,
                "responseId": uuid::Uuid::new_v4().simple().to_string()
            })
        }
    }
}

/// Splits `text` into pieces that end after a space, as a tokenizer streams words.
fn words(text: &str) -> Vec<&str> {
    text.split_inclusive(' ').collect()
}

/// Splits `text` into pieces of at most `size` bytes on character boundaries.
fn pieces(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

fn frame(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// The server-sent events of one streamed answer, each a complete `data: …` frame.
pub(crate) fn stream_frames(
    wire: Wire,
    model: &str,
    answer: &Answer,
    request: &Value,
) -> Vec<Bytes> {
    let prompt = prompt_tokens(wire, request);
    let completion = completion_tokens(answer);
    match wire {
        Wire::OpenAi => openai_frames(model, answer, request, prompt, completion),
        Wire::Gemini => gemini_frames(model, answer, prompt, completion),
    }
}

fn openai_frames(
    model: &str,
    answer: &Answer,
    request: &Value,
    prompt: u64,
    completion: u64,
) -> Vec<Bytes> {
    let include_usage = request["stream_options"]["include_usage"] == Value::Bool(true);
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_seconds();
    let chunk = |delta: Value, finish: Value| {
        let mut value = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "service_tier": "default", "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if include_usage {
            value["usage"] = Value::Null;
        }
        frame(&value)
    };
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    for word in words(&answer.text) {
        frames.push(chunk(json!({"content": word}), Value::Null));
    }
    for (index, call) in answer.calls.iter().enumerate() {
        frames.push(chunk(
            json!({"tool_calls": [{"index": index, "id": call_id(), "type": "function",
                "function": {"name": call.name, "arguments": ""}}]}),
            Value::Null,
        ));
        for piece in pieces(&call.arguments, 8) {
            frames.push(chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    let finish = if answer.calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    frames.push(chunk(json!({}), json!(finish)));
    if include_usage {
        frames.push(frame(&json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "service_tier": "default", "system_fingerprint": "fp_fake",
            "choices": [], "usage": openai_usage(prompt, completion)
        })));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

fn gemini_frames(model: &str, answer: &Answer, prompt: u64, completion: u64) -> Vec<Bytes> {
    let response_id = uuid::Uuid::new_v4().simple().to_string();
    let chunk = |parts: Vec<Value>, finish: Option<&str>, usage: Value| {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
        }
        // Gemini frames end with CRLF pairs.
        Bytes::from(format!(
            "data: {}\r\n\r\n",
            json!({"candidates": [candidate], "usageMetadata": usage,
                "modelVersion": model, "responseId": response_id})
        ))
    };
    let partial_usage = json!({"promptTokenCount": prompt, "totalTokenCount": prompt});
    let mut parts: Vec<Vec<Value>> = words(&answer.text)
        .into_iter()
        .map(|word| vec![json!({"text": word})])
        .collect();
    if !answer.calls.is_empty() {
        // Gemini sends function calls whole, all in one chunk.
        parts.push(
            answer
                .calls
                .iter()
                .map(|call| {
                    json!({"functionCall": {"name": call.name, "args": gemini_args(&call.arguments)}})
                })
                .collect(),
        );
    }
    if parts.is_empty() {
        parts.push(vec![json!({"text": ""})]);
    }
    let last = parts.len() - 1;
    parts
        .into_iter()
        .enumerate()
        .map(|(index, parts)| {
            if index == last {
                chunk(parts, Some("STOP"), gemini_usage(prompt, completion))
            } else {
                chunk(parts, None, partial_usage.clone())
            }
        })
        .collect()
}
