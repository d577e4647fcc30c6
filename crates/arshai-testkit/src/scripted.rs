//! What the fake model is scripted to do, shared by the upstream and its wire formats.

/// A tool call the fake model makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedToolCall {
    /// The tool's name.
    pub name: String,
    /// The arguments, verbatim (may be invalid JSON on purpose).
    pub arguments: String,
}
