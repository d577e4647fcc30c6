//! Google Gemini: `models/{model}:generateContent`, and `:streamGenerateContent?alt=sse` for
//! streaming, authenticated with the `x-goog-api-key` header.

use std::collections::VecDeque;

use async_trait::async_trait;
use futures::future;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::lenient_json::null_as_default;
use crate::llm::status::{check_status, transport_error};
use crate::llm::transport::endpoint::{checked_base_url, secret_header};
use crate::llm::transport::propagation;
use crate::llm::transport::sse::{self, ChunkDecoder, Flow};
use crate::llm::{
    ChatRequest, ChatResponse, FinishReason, HttpPoolSettings, LlmClient, LlmError, Message, Role,
    StreamEvent, ToolCall, ToolChoice, Usage, build_http_client,
};

/// The public Gemini API, used when no base URL is configured.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

const PROVIDER: &str = "gemini";

/// Gemini settings (`[providers.gemini]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeminiSettings {
    /// API key (`GOOGLE_API_KEY`).
    pub api_key: Option<String>,
    /// Base URL up to the version segment; the public API when unset.
    pub base_url: Option<String>,
    /// Default model.
    pub model: String,
}

impl Default for GeminiSettings {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: None,
            model: "gemini-2.0-flash".to_owned(),
        }
    }
}

impl GeminiSettings {
    /// Whether a key is set.
    pub fn is_configured(&self) -> bool {
        self.api_key.is_some()
    }
}

/// A Gemini client.
#[derive(Debug, Clone)]
pub struct GeminiClient {
    http: reqwest::Client,
    base: String,
    headers: HeaderMap,
    model: String,
    settings: HttpPoolSettings,
}

impl GeminiClient {
    /// Builds the client and its connection pool.
    pub fn new(settings: &GeminiSettings, http: HttpPoolSettings) -> Result<Self, LlmError> {
        let base = checked_base_url(
            PROVIDER,
            settings.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?
        .to_owned();
        let mut headers = HeaderMap::new();
        if let Some(key) = &settings.api_key {
            headers.insert("x-goog-api-key", secret_header(PROVIDER, key)?);
        }
        Ok(Self {
            http: build_http_client(PROVIDER, &http)?,
            base,
            headers,
            model: settings.model.clone(),
            settings: http,
        })
    }

    fn post(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, LlmError> {
        let body = wire_request(request)?;
        let model = request.model.as_deref().unwrap_or(&self.model);
        let url = if stream {
            format!("{}/models/{model}:streamGenerateContent?alt=sse", self.base)
        } else {
            format!("{}/models/{model}:generateContent", self.base)
        };
        let mut builder = self
            .http
            .post(url)
            .headers(self.headers.clone())
            .json(&body);
        if let Some(id) = &request.request_id {
            builder = builder.header("x-request-id", id);
        }
        Ok(propagation::propagate(builder))
    }

    async fn send(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let deadline = self.settings.request_timeout();
        let response = self
            .post(request, false)?
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, &e, deadline))?;
        let response = check_status(PROVIDER, response).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(PROVIDER, &e, deadline))?;
        let wire: WireResponse = serde_json::from_slice(&bytes).map_err(|e| LlmError::Decode {
            provider: PROVIDER,
            message: e.to_string(),
        })?;
        let mut decoder = GeminiStreamDecoder::new();
        let mut response = ChatResponse {
            text: String::new(),
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
            model: String::new(),
            request_id: wire.response_id.clone(),
            logprobs: None,
        };
        let mut events = VecDeque::new();
        decoder.absorb(wire, &mut events);
        decoder.finish(&mut events);
        for event in events {
            match event {
                StreamEvent::TextDelta(text) => response.text.push_str(&text),
                StreamEvent::ToolCall(call) => response.tool_calls.push(call),
                StreamEvent::Usage(usage) => response.usage = usage,
                StreamEvent::Finish { reason, model } => {
                    response.finish_reason = reason;
                    response.model = model;
                }
            }
        }
        Ok(response)
    }

    async fn open_stream(
        &self,
        request: &ChatRequest,
    ) -> Result<BoxStream<'static, Result<StreamEvent, LlmError>>, LlmError> {
        let deadline = self.settings.request_timeout();
        let post = self.post(request, true)?;
        let response = match tokio::time::timeout(deadline, post.send()).await {
            Ok(sent) => sent.map_err(|e| transport_error(PROVIDER, &e, deadline))?,
            Err(_) => {
                return Err(LlmError::Timeout {
                    provider: PROVIDER,
                    after: deadline,
                });
            }
        };
        let response = check_status(PROVIDER, response).await?;
        let bytes = sse::response_bytes(PROVIDER, response, self.settings.read_timeout());
        let data = sse::event_data(PROVIDER, bytes);
        Ok(sse::decode(data, GeminiStreamDecoder::new()).boxed())
    }
}

#[async_trait]
impl LlmClient for GeminiClient {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let deadline = self.settings.request_timeout();
        match tokio::time::timeout(deadline, self.send(request)).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Timeout {
                provider: PROVIDER,
                after: deadline,
            }),
        }
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        stream::once(self.open_stream(request))
            .flat_map(|opened| match opened {
                Ok(events) => events,
                Err(error) => stream::once(future::ready(Err(error))).boxed(),
            })
            .boxed()
    }
}

// ---- request --------------------------------------------------------------------------------

/// The `generateContent` body of `request`; a parameter Gemini has no equivalent for is
/// refused ([`LlmError::Unsupported`]).
fn wire_request(request: &ChatRequest) -> Result<Value, LlmError> {
    refuse_unsupported(request)?;
    let mut contents: Vec<Value> = Vec::with_capacity(request.messages.len());
    for (index, message) in request.messages.iter().enumerate() {
        let (role, part) = match message.role {
            Role::User => ("user", user_parts(message)?),
            Role::System => ("user", vec![json!({"text": message.content})]),
            Role::Assistant => {
                let mut parts = Vec::new();
                if !message.content.is_empty() {
                    parts.push(json!({"text": message.content}));
                }
                for call in &message.tool_calls {
                    let args: Value = serde_json::from_str(&call.arguments)
                        .unwrap_or_else(|_| Value::Object(Map::new()));
                    parts.push(json!({"functionCall": {"name": call.name, "args": args}}));
                }
                ("model", parts)
            }
            Role::Tool => {
                let name = call_name(&request.messages[..index], message.tool_call_id.as_deref());
                // `response` must be an object: JSON objects go as they are, anything else
                // is wrapped.
                let response = match serde_json::from_str::<Value>(&message.content) {
                    Ok(Value::Object(object)) => Value::Object(object),
                    _ => json!({"result": message.content}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
        };
        // Consecutive tool results answer one model turn: Gemini wants them in one content.
        let merge = message.role == Role::Tool
            && index > 0
            && request.messages[index - 1].role == Role::Tool;
        match contents.last_mut() {
            Some(last) if merge => {
                if let Some(parts) = last["parts"].as_array_mut() {
                    parts.extend(part);
                }
            }
            _ => contents.push(json!({"role": role, "parts": part})),
        }
    }
    let mut body = json!({ "contents": contents });
    if let Some(system) = &request.system {
        body["systemInstruction"] = json!({"parts": [{"text": system}]});
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({"name": tool.name, "description": tool.description,
                    "parameters": openapi_schema(&tool.parameters)})
            })
            .collect();
        body["tools"] = json!([{ "functionDeclarations": declarations }]);
    }
    let mut config = Map::new();
    let sampling = &request.sampling;
    if let Some(t) = sampling.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = sampling.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(m) = sampling.max_tokens {
        config.insert("maxOutputTokens".into(), json!(m));
    }
    if !sampling.stop.is_empty() {
        config.insert("stopSequences".into(), json!(sampling.stop));
    }
    if let Some(seed) = sampling.seed {
        config.insert("seed".into(), json!(seed));
    }
    if let Some(penalty) = sampling.presence_penalty {
        config.insert("presencePenalty".into(), json!(penalty));
    }
    if let Some(penalty) = sampling.frequency_penalty {
        config.insert("frequencyPenalty".into(), json!(penalty));
    }
    if let Some(format) = &request.response_format {
        config.insert("responseMimeType".into(), json!("application/json"));
        if let Some(format) = format.schema() {
            config.insert("responseSchema".into(), openapi_schema(&format.schema));
        }
    }
    if !config.is_empty() {
        body["generationConfig"] = Value::Object(config);
    }
    if let Some(choice) = &request.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body["toolConfig"] = json!({ "functionCallingConfig": config });
    }
    Ok(body)
}

/// Refuses what `generateContent` has no equivalent for.
fn refuse_unsupported(request: &ChatRequest) -> Result<(), LlmError> {
    let sampling = &request.sampling;
    if !sampling.logit_bias.is_empty() {
        return Err(LlmError::unsupported(
            PROVIDER,
            "logit_bias",
            "Gemini has no logit bias",
        ));
    }
    if sampling.logprobs == Some(true) || sampling.top_logprobs.is_some() {
        return Err(LlmError::unsupported(
            PROVIDER,
            "logprobs",
            "log probabilities are not returned by this Gemini client",
        ));
    }
    if request.parallel_tool_calls == Some(false) {
        return Err(LlmError::unsupported(
            PROVIDER,
            "parallel_tool_calls",
            "Gemini cannot be limited to one tool call per answer",
        ));
    }
    if request.user.is_some() {
        return Err(LlmError::unsupported(
            PROVIDER,
            "user",
            "Gemini has no end-user field",
        ));
    }
    Ok(())
}

/// A user message's parts: its text, then its images (Gemini takes them inline, as data).
fn user_parts(message: &Message) -> Result<Vec<Value>, LlmError> {
    let mut parts = vec![json!({"text": message.content})];
    for image in &message.images {
        let Some((media_type, data)) = image.data_url() else {
            return Err(LlmError::unsupported(
                PROVIDER,
                "messages",
                "Gemini takes images as data: URLs (data:image/png;base64,…), not as links",
            ));
        };
        parts.push(json!({"inlineData": {"mimeType": media_type, "data": data}}));
    }
    Ok(parts)
}

/// The name of the tool call `id` answers, found in the assistant messages before it.
fn call_name(history: &[Message], id: Option<&str>) -> String {
    history
        .iter()
        .rev()
        .flat_map(|m| m.tool_calls.iter())
        .find(|call| Some(call.id.as_str()) == id)
        .map(|call| call.name.clone())
        .unwrap_or_default()
}

/// Converts a JSON Schema (as `schemars` writes it) to the OpenAPI subset Gemini accepts:
/// local `$ref`s inlined, `["T", "null"]` types as `nullable`, unsupported keywords dropped.
pub fn openapi_schema(schema: &Value) -> Value {
    let definitions = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .cloned()
        .unwrap_or(Value::Null);
    convert(schema, &definitions, 0)
}

fn convert(schema: &Value, definitions: &Value, depth: usize) -> Value {
    const KEPT: &[&str] = &[
        "type",
        "format",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "items",
        "minimum",
        "maximum",
        "anyOf",
        "propertyOrdering",
    ];
    let Some(object) = schema.as_object() else {
        return schema.clone();
    };
    if depth > 32 {
        return json!({"type": "object"});
    }
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return match definitions.get(name) {
            Some(target) => convert(target, definitions, depth + 1),
            None => json!({"type": "object"}),
        };
    }
    let mut out = Map::new();
    for (key, value) in object {
        if !KEPT.contains(&key.as_str()) {
            continue;
        }
        let value = match key.as_str() {
            "type" => match value {
                Value::Array(types) => {
                    let mut real = types.iter().filter(|t| t.as_str() != Some("null"));
                    if types.len() > 1 {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    real.next().cloned().unwrap_or(json!("string"))
                }
                other => other.clone(),
            },
            "format" => match value.as_str() {
                Some("int32" | "int64" | "float" | "double" | "enum" | "date-time") => {
                    value.clone()
                }
                _ => continue,
            },
            "properties" => Value::Object(
                value
                    .as_object()
                    .map(|properties| {
                        properties
                            .iter()
                            .map(|(k, v)| (k.clone(), convert(v, definitions, depth + 1)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" => convert(value, definitions, depth + 1),
            "anyOf" => Value::Array(
                value
                    .as_array()
                    .map(|alternatives| {
                        alternatives
                            .iter()
                            .map(|v| convert(v, definitions, depth + 1))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

// ---- response -------------------------------------------------------------------------------

/// Decodes Gemini responses (one JSON body, or each SSE chunk) into [`StreamEvent`]s.
///
/// Gemini sends function calls whole, so they are emitted as they arrive; usage is reported
/// cumulatively on chunks and emitted once at the end, before the finish event. The stream
/// has no `[DONE]`: it is complete when a chunk carried a finish reason.
#[derive(Debug, Default)]
pub struct GeminiStreamDecoder {
    model: String,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    calls: usize,
    blocked: bool,
}

impl GeminiStreamDecoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        Self::default()
    }

    fn absorb(&mut self, wire: WireResponse, out: &mut VecDeque<StreamEvent>) {
        if let Some(model) = wire.model_version.filter(|m| !m.is_empty()) {
            self.model = model;
        }
        if let Some(usage) = wire.usage_metadata {
            self.usage = Some(usage.into_usage());
        }
        if wire.candidates.is_empty()
            && wire
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
        {
            self.blocked = true;
            self.finish = Some(FinishReason::ContentFilter);
        }
        let Some(candidate) = wire.candidates.into_iter().next() else {
            return;
        };
        for part in candidate.content.parts {
            if part.thought == Some(true) {
                continue;
            }
            if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                out.push_back(StreamEvent::TextDelta(text));
            }
            if let Some(call) = part.function_call {
                self.calls += 1;
                let id = call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| {
                    format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..20])
                });
                out.push_back(StreamEvent::ToolCall(ToolCall {
                    id,
                    name: call.name.unwrap_or_default(),
                    arguments: call
                        .args
                        .map(|args| args.to_string())
                        .unwrap_or_else(|| "{}".to_owned()),
                }));
            }
        }
        if let Some(reason) = candidate.finish_reason {
            self.finish = Some(FinishReason::from_wire(&reason));
        }
    }

    fn finish(&mut self, out: &mut VecDeque<StreamEvent>) {
        if let Some(usage) = self.usage.take() {
            out.push_back(StreamEvent::Usage(usage));
        }
        let reason = match self.finish.take() {
            // Gemini says STOP even when it calls functions.
            Some(FinishReason::Stop) | None if self.calls > 0 => FinishReason::ToolCalls,
            Some(reason) => reason,
            None => FinishReason::Stop,
        };
        out.push_back(StreamEvent::Finish {
            reason,
            model: std::mem::take(&mut self.model),
        });
    }
}

impl ChunkDecoder for GeminiStreamDecoder {
    fn data(&mut self, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow, LlmError> {
        let wire: WireResponse = serde_json::from_str(data).map_err(|e| LlmError::Decode {
            provider: PROVIDER,
            message: format!("malformed stream chunk: {e}"),
        })?;
        if let Some(error) = wire.error {
            return Err(LlmError::UpstreamStatus {
                provider: PROVIDER,
                status: 200,
                body_excerpt: format!("error inside the stream: {}", error.message),
                retry_after: None,
            });
        }
        self.absorb(wire, out);
        Ok(Flow::Continue)
    }

    fn end(&mut self, _done: bool, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
        if self.finish.is_none() {
            return Err(LlmError::Connection {
                provider: PROVIDER,
                message: "the stream ended before the answer was complete".to_owned(),
            });
        }
        self.finish(out);
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default, deserialize_with = "null_as_default")]
    candidates: Vec<WireCandidate>,
    #[serde(default)]
    usage_metadata: Option<WireUsage>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
    #[serde(default)]
    prompt_feedback: Option<WirePromptFeedback>,
    #[serde(default)]
    error: Option<WireStreamError>,
}

#[derive(Deserialize)]
struct WireStreamError {
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    #[serde(default, deserialize_with = "null_as_default")]
    content: WireContent,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireContent {
    #[serde(default, deserialize_with = "null_as_default")]
    parts: Vec<WirePart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    function_call: Option<WireFunctionCall>,
}

#[derive(Deserialize)]
struct WireFunctionCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    total_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
}

impl WireUsage {
    fn into_usage(self) -> Usage {
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        Usage {
            input_tokens: self.prompt_token_count,
            // Thinking tokens are billed as output.
            output_tokens: self.candidates_token_count + thoughts,
            total_tokens: self
                .total_token_count
                .unwrap_or(self.prompt_token_count + self.candidates_token_count + thoughts),
            reasoning_tokens: self.thoughts_token_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{JsonSchemaFormat, ResponseFormat, ToolDefinition};

    #[test]
    fn tool_results_go_back_as_function_responses_in_one_user_content() {
        let calls = vec![
            ToolCall {
                id: "a".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Oslo"}"#.into(),
            },
            ToolCall {
                id: "b".into(),
                name: "time".into(),
                arguments: "{}".into(),
            },
        ];
        let request = ChatRequest {
            system: Some("be brief".into()),
            messages: vec![
                Message::user("hi"),
                Message::tool_calls("", calls),
                Message::tool_result("a", "sunny"),
                Message::tool_result("b", r#"{"time":"noon"}"#),
            ],
            tools: vec![ToolDefinition::new(
                "weather",
                "w",
                json!({"type":"object","properties":{"city":{"type":["string","null"]}},"additionalProperties":false}),
            )],
            response_format: Some(ResponseFormat::JsonSchema(JsonSchemaFormat {
                name: "x".into(),
                schema: json!({"$schema":"x","type":"object","properties":{"n":{"type":"integer","format":"uint32"}}}),
                strict: false,
            })),
            ..ChatRequest::default()
        };
        let body = wire_request(&request).unwrap();
        assert_eq!(body["systemInstruction"]["parts"][0]["text"], "be brief");
        let contents = body["contents"].as_array().unwrap();
        assert_eq!(contents.len(), 3);
        assert_eq!(contents[1]["role"], "model");
        assert_eq!(
            contents[1]["parts"][0]["functionCall"]["args"]["city"],
            "Oslo"
        );
        assert_eq!(contents[2]["role"], "user");
        let parts = contents[2]["parts"].as_array().unwrap();
        assert_eq!(parts[0]["functionResponse"]["name"], "weather");
        assert_eq!(parts[0]["functionResponse"]["response"]["result"], "sunny");
        assert_eq!(parts[1]["functionResponse"]["response"]["time"], "noon");
        let parameters = &body["tools"][0]["functionDeclarations"][0]["parameters"];
        assert_eq!(parameters["properties"]["city"]["type"], "string");
        assert_eq!(parameters["properties"]["city"]["nullable"], true);
        assert!(parameters.get("additionalProperties").is_none());
        let schema = &body["generationConfig"]["responseSchema"];
        assert!(schema.get("$schema").is_none());
        assert!(schema["properties"]["n"].get("format").is_none());
        assert_eq!(
            body["generationConfig"]["responseMimeType"],
            "application/json"
        );
    }

    #[test]
    fn refs_are_inlined() {
        let schema = json!({"type":"object","properties":{"p":{"$ref":"#/$defs/P"}},
            "$defs":{"P":{"type":"object","properties":{"x":{"type":"number"}}}}});
        let converted = openapi_schema(&schema);
        assert_eq!(
            converted["properties"]["p"]["properties"]["x"]["type"],
            "number"
        );
    }
}
