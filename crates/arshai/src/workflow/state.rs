//! [`WorkflowState`]: the JSON document a run passes from node to node, and its merge rule.
//!
//! The state is a JSON object. A run starts with `{"input": <the run's input>}`. Each node
//! reads its input at a JSON pointer into the state (default `/input`) and its output is
//! merged into the state under the node's output key (default: the node's name):
//!
//! - when the state already holds an object under that key and the output is an object
//!   too, the two are merged shallowly: each top-level key of the output replaces the
//!   same key of the stored object, other keys are kept;
//! - otherwise the output replaces whatever was stored under the key.
//!
//! So nodes writing different keys never disturb each other (the branches of a parallel
//! fan-out are merged in their declared order), and several nodes may add fields to one
//! object (`output = "ticket"`) without erasing each other's. A failed node that took its
//! fallback edge is recorded the same way: `{"errors": {"<node>": "<message>"}}`.

use serde_json::{Map, Value};

/// The key of the run's input in the state.
pub const INPUT_KEY: &str = "input";

/// The key under which failures that took a fallback edge are recorded, by node name.
pub const ERRORS_KEY: &str = "errors";

/// The JSON object passed and merged between a run's nodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowState(Map<String, Value>);

impl WorkflowState {
    /// The state a run starts with: `{"input": input}`.
    ///
    /// ```
    /// use arshai::workflow::WorkflowState;
    /// use serde_json::json;
    ///
    /// let mut state = WorkflowState::new(json!("hello"));
    /// state.merge("ticket", json!({"id": 7}));
    /// state.merge("ticket", json!({"priority": "high"}));
    /// assert_eq!(
    ///     state.into_value(),
    ///     json!({"input": "hello", "ticket": {"id": 7, "priority": "high"}})
    /// );
    /// ```
    pub fn new(input: Value) -> Self {
        let mut map = Map::new();
        map.insert(INPUT_KEY.to_owned(), input);
        Self(map)
    }

    /// The value at `pointer` (RFC 6901: `""` is the whole state, `/a/0/b` a nested value).
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        if pointer.is_empty() {
            return None;
        }
        let rest = pointer.strip_prefix('/')?;
        let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let first = unescape(first);
        let value = self.0.get(first.as_ref())?;
        if tail.is_empty() && !rest.contains('/') {
            Some(value)
        } else {
            value.pointer(&format!("/{tail}"))
        }
    }

    /// The value at `pointer`, or the whole state as a JSON object when `pointer` is `""`.
    pub fn read(&self, pointer: &str) -> Option<Value> {
        if pointer.is_empty() {
            Some(Value::Object(self.0.clone()))
        } else {
            self.pointer(pointer).cloned()
        }
    }

    /// Merges `output` under `key` (the rule in the module documentation).
    pub fn merge(&mut self, key: &str, output: Value) {
        match (self.0.get_mut(key), output) {
            (Some(Value::Object(stored)), Value::Object(fields)) => stored.extend(fields),
            (_, output) => {
                self.0.insert(key.to_owned(), output);
            }
        }
    }

    /// The state as a JSON object.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// The state's top-level object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// A pointer's reference token with `~1` and `~0` decoded (RFC 6901).
fn unescape(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains('~') {
        token.replace("~1", "/").replace("~0", "~").into()
    } else {
        token.into()
    }
}

/// Whether `pointer` is a JSON pointer: empty, or starting with `/`.
pub(crate) fn is_pointer(pointer: &str) -> bool {
    pointer.is_empty() || pointer.starts_with('/')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn objects_merge_shallowly_and_anything_else_replaces() {
        let mut state = WorkflowState::new(json!("q"));
        state.merge("a", json!({"x": 1, "nested": {"keep": true}}));
        state.merge("a", json!({"y": 2, "nested": {"new": true}}));
        assert_eq!(
            state.pointer("/a"),
            Some(&json!({"x": 1, "y": 2, "nested": {"new": true}}))
        );
        state.merge("a", json!("text"));
        assert_eq!(state.pointer("/a"), Some(&json!("text")));
        state.merge("a", json!({"z": 3}));
        assert_eq!(state.pointer("/a"), Some(&json!({"z": 3})));
    }

    #[test]
    fn pointers_reach_nested_values_and_escaped_keys() {
        let mut state = WorkflowState::new(json!({"items": [1, {"b": "deep"}]}));
        state.merge("a/b", json!(5));
        assert_eq!(state.pointer("/input/items/1/b"), Some(&json!("deep")));
        assert_eq!(state.pointer("/a~1b"), Some(&json!(5)));
        assert_eq!(state.pointer("/missing"), None);
        assert_eq!(state.pointer("input"), None);
        assert_eq!(state.read("").unwrap()["input"]["items"][0], json!(1));
    }
}
