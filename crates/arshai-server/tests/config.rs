//! The shipped production settings load, turn auth on, and refuse to start without keys.

mod support;

use std::io::Write;
use std::path::PathBuf;

use arshai::settings::MemoryProvider;
use arshai_server::AppState;
use arshai_server::auth::hash_key;
use arshai_server::settings::Settings;
use arshai_testkit::FakeUpstream;
use serde_json::json;
use support::TestServer;

fn production() -> Settings {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/production.toml");
    Settings::load(Some(&path)).expect("config/production.toml loads")
}

#[tokio::test]
async fn production_settings_turn_auth_on_and_need_a_keys_file() {
    let mut settings = production();
    assert!(settings.auth.enabled);
    assert_eq!(settings.memory.memory_provider, Some(MemoryProvider::Redis));
    // Without its keys file the server refuses to start rather than run open.
    settings.memory.memory_provider = Some(MemoryProvider::Memory);
    settings.auth.keys_file = Some(PathBuf::from("/nonexistent/keys.toml"));
    let error = AppState::from_settings(settings)
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("keys"), "{error}");
}

#[tokio::test]
async fn production_settings_serve_with_keys_from_a_file() {
    let upstream = FakeUpstream::start().await.unwrap();
    let mut settings = production();
    let mut keys = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        keys,
        "[[keys]]\ntenant = \"acme\"\nsha256 = \"{}\"",
        hash_key("file-key")
    )
    .unwrap();
    settings.auth.keys_file = Some(keys.path().to_owned());
    settings.memory.memory_provider = Some(MemoryProvider::Memory);
    settings.providers.openai.base_url = Some(upstream.base_url());
    settings.providers.openai.api_key = Some("sk-test-secret".to_owned());
    let server = TestServer::start_with(upstream, settings).await;
    let (status, _) = server.post("assistant", json!({"message": "hi"})).await;
    assert_eq!(status, 401);
    let response = server
        .http
        .post(server.url("/v1/agents/assistant/messages"))
        .bearer_auth("file-key")
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
