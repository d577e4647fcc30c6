//! The shipped example configuration loads and declares the `assistant` agent.

use std::path::Path;

use arshai::settings::AgentType;
use arshai_server::settings::Settings;

#[test]
fn the_example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
    let settings = Settings::load(Some(&path)).expect("config/example.toml is valid");
    let assistant = settings
        .agents
        .iter()
        .find(|agent| agent.name == "assistant")
        .expect("declares `assistant`");
    assert_eq!(assistant.agent_type, AgentType::Conversation);
}
