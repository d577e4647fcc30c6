//! Structured output: a JSON Schema the provider enforces where it can (`response_format`
//! `json_schema` on OpenAI, `responseSchema` on Gemini), and the answer parsed into a typed
//! value or a typed error.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tool_definition::schema_of;
use super::{ChatRequest, ChatResponse, LlmClient, LlmError};

/// The shape the answer must have (OpenAI's `response_format`, beyond plain text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Any JSON object (OpenAI's `json_object`, Gemini's `application/json`).
    JsonObject,
    /// JSON that follows a schema.
    JsonSchema(JsonSchemaFormat),
}

/// A named JSON Schema the answer must follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    /// A name for the schema (OpenAI requires one).
    pub name: String,
    /// The JSON Schema of the answer.
    pub schema: Value,
    /// Ask the provider to enforce the schema strictly where it supports it (OpenAI's
    /// `strict`, which needs `additionalProperties: false` and every property required).
    #[serde(default)]
    pub strict: bool,
}

impl ResponseFormat {
    /// The format of `T`, with its schema derived from the type.
    pub fn of<T: JsonSchema>(name: impl Into<String>) -> Self {
        Self::JsonSchema(JsonSchemaFormat {
            name: name.into(),
            schema: schema_of::<T>(),
            strict: false,
        })
    }

    /// The schema, for [`ResponseFormat::JsonSchema`].
    pub fn schema(&self) -> Option<&JsonSchemaFormat> {
        match self {
            Self::JsonObject => None,
            Self::JsonSchema(format) => Some(format),
        }
    }
}

/// Why a structured answer could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StructuredError {
    /// The call itself failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The answer is not JSON.
    #[error("{provider} answered with text that is not JSON: {message}")]
    NotJson {
        /// Provider name.
        provider: &'static str,
        /// The parser's message.
        message: String,
        /// The answer, as given.
        text: String,
    },
    /// The answer is JSON but does not fit the expected type.
    #[error("{provider} answered JSON that does not match the schema: {message}")]
    SchemaMismatch {
        /// Provider name.
        provider: &'static str,
        /// What does not match.
        message: String,
        /// The answer, as given.
        value: Value,
    },
}

/// Parses an answer's text into `T`.
pub fn parse_structured<T: DeserializeOwned>(
    provider: &'static str,
    text: &str,
) -> Result<T, StructuredError> {
    // Some models wrap JSON in a Markdown fence even when asked not to.
    let trimmed = text.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed);
    let value: Value = serde_json::from_str(unfenced).map_err(|e| StructuredError::NotJson {
        provider,
        message: e.to_string(),
        text: text.to_owned(),
    })?;
    serde_json::from_value(value.clone()).map_err(|e| StructuredError::SchemaMismatch {
        provider,
        message: e.to_string(),
        value,
    })
}

/// Asks for an answer of type `T`: sets the request's response format from `T`'s schema,
/// calls the model, and parses the answer.
pub async fn chat_structured<T: DeserializeOwned + JsonSchema>(
    client: &dyn LlmClient,
    request: &ChatRequest,
    name: &str,
) -> Result<(T, ChatResponse), StructuredError> {
    let mut request = request.clone();
    request.response_format = Some(ResponseFormat::of::<T>(name));
    let response = client.chat(&request).await?;
    let value = parse_structured(client.provider(), &response.text)?;
    Ok((value, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, JsonSchema, PartialEq)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[test]
    fn answers_parse_into_the_type_or_a_typed_error() {
        assert_eq!(
            parse_structured::<Point>("p", "```json\n{\"x\":1,\"y\":2}\n```").unwrap(),
            Point { x: 1, y: 2 }
        );
        assert!(matches!(
            parse_structured::<Point>("p", "sure! x is 1"),
            Err(StructuredError::NotJson { .. })
        ));
        assert!(matches!(
            parse_structured::<Point>("p", "{\"x\":\"one\"}"),
            Err(StructuredError::SchemaMismatch { .. })
        ));
        let format = ResponseFormat::of::<Point>("point");
        let schema = &format.schema().unwrap().schema;
        assert_eq!(schema["type"], "object");
        assert!(schema.get("$schema").is_none());
    }
}
