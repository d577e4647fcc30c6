//! [`Condition`]: a test on the state that picks a conditional edge.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::state::WorkflowState;

/// A test on the value at a JSON pointer of the state.
///
/// `equals` holds when the value equals the given one; two strings are compared with
/// surrounding whitespace trimmed and ignoring ASCII case, so that a model answering
/// `"Billing\n"` matches `"billing"`. `exists` holds when the value is present (`true`) or
/// absent (`false`); a JSON `null` counts as absent. A condition with both holds when both
/// do; one with neither is refused when the workflow is built.
///
/// ```
/// use arshai::workflow::{Condition, WorkflowState};
/// use serde_json::json;
///
/// let mut state = WorkflowState::new(json!("my card was charged twice"));
/// state.merge("category", json!(" Billing\n"));
/// assert!(Condition::equals("/category", json!("billing")).holds(&state));
/// assert!(Condition::exists("/category").holds(&state));
/// assert!(!Condition::exists("/answer").holds(&state));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The JSON pointer into the state (`/category`, `/ticket/priority`).
    pub pointer: String,
    /// The value it must equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    /// Whether it must be present (`true`) or absent (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
}

impl Condition {
    /// Holds when the value at `pointer` equals `value`.
    pub fn equals(pointer: impl Into<String>, value: Value) -> Self {
        Self {
            pointer: pointer.into(),
            equals: Some(value),
            exists: None,
        }
    }

    /// Holds when a value is present at `pointer`.
    pub fn exists(pointer: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            equals: None,
            exists: Some(true),
        }
    }

    /// Holds when no value is present at `pointer`.
    pub fn absent(pointer: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            equals: None,
            exists: Some(false),
        }
    }

    /// Whether the condition holds on `state`.
    pub fn holds(&self, state: &WorkflowState) -> bool {
        let value = state
            .pointer(&self.pointer)
            .filter(|value| !value.is_null());
        if let Some(exists) = self.exists
            && exists != value.is_some()
        {
            return false;
        }
        match (&self.equals, value) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(Value::String(expected)), Some(Value::String(actual))) => {
                expected.trim().eq_ignore_ascii_case(actual.trim())
            }
            (Some(expected), Some(actual)) => expected == actual,
        }
    }
}
