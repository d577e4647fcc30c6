//! Tool definitions offered to a model: a name, a description and a JSON Schema of the
//! arguments, derived from a Rust type with `schemars`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// The name the model calls it by (`[a-zA-Z0-9_-]`, at most 64 characters).
    pub name: String,
    /// What it does and when to use it; the model reads this.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

impl ToolDefinition {
    /// A tool whose arguments are described by `schema`.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }

    /// A tool whose arguments are `A`, with the schema derived from the type.
    ///
    /// ```
    /// use arshai::llm::ToolDefinition;
    /// #[derive(schemars::JsonSchema, serde::Deserialize)]
    /// struct Weather { /// City name
    ///     city: String }
    /// let tool = ToolDefinition::of::<Weather>("weather", "Current weather in a city");
    /// assert_eq!(tool.parameters["properties"]["city"]["type"], "string");
    /// ```
    pub fn of<A: JsonSchema>(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, description, schema_of::<A>())
    }
}

/// The JSON Schema of `T`, without the root keys providers refuse (`$schema`, `title`).
pub fn schema_of<T: JsonSchema>() -> Value {
    let mut schema = schemars::schema_for!(T).to_value();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        object.remove("title");
    }
    schema
}
