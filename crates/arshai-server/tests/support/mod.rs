//! A real server on an ephemeral port, wired to a fake upstream.

#![allow(dead_code, unreachable_pub)]

pub mod openai;
pub mod probe;
pub mod sse;

use std::net::SocketAddr;

use arshai::settings::AgentSettings;
use arshai_server::settings::Settings;
use arshai_server::{AppState, serve};
use arshai_testkit::FakeUpstream;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub struct TestServer {
    pub addr: SocketAddr,
    pub upstream: FakeUpstream,
    pub state: AppState,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

/// Settings pointing at `upstream`, with one `assistant` agent.
pub fn settings_for(upstream: &FakeUpstream) -> Settings {
    let mut settings = Settings::default();
    settings.providers.openai.base_url = Some(upstream.base_url());
    settings.providers.openai.api_key = Some("sk-test-secret".to_owned());
    // These tests check how each upstream failure maps to a response: see it once.
    settings.providers.retry.max_retries = 0;
    settings.agents = vec![AgentSettings {
        name: "assistant".to_owned(),
        agent_type: arshai::settings::AgentType::Conversation,
        provider: Default::default(),
        model: Some("fake-model".to_owned()),
        system_prompt: "You are terse.".to_owned(),
        temperature: None,
        top_p: None,
        max_tokens: None,
        cache: None,
    }];
    settings
}

impl TestServer {
    pub async fn start() -> Self {
        let upstream = FakeUpstream::start().await.expect("upstream starts");
        let settings = settings_for(&upstream);
        Self::start_with(upstream, settings).await
    }

    pub async fn start_with(upstream: FakeUpstream, settings: Settings) -> Self {
        let state = AppState::from_settings(settings)
            .await
            .expect("state builds");
        Self::start_state(upstream, state).await
    }

    /// Serves a state built by the test (agents with tools, say).
    pub async fn start_state(upstream: FakeUpstream, state: AppState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            serve(listener, served, async move {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            addr,
            upstream,
            state,
            http: reqwest::Client::new(),
            stop: Some(stop),
        }
    }

    /// Starts the drain sequence, as SIGTERM does for the binary.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a raw body to an agent's messages endpoint.
    pub async fn post_raw(&self, agent: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/agents/{agent}/messages")))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request completes")
    }

    /// POSTs a JSON message and returns status and body.
    pub async fn post(&self, agent: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self.post_raw(agent, body.to_string()).await;
        let status = response.status().as_u16();
        let json = response.json().await.expect("JSON body");
        (status, json)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The value of the sample `name` (with its labels, exactly as written) in `text`.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}
