//! `arshai` processes sharing one Redis, for the durable-run tests: spawn, submit, poll.

#![allow(dead_code, unreachable_pub)]

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::process::{Child, Command};

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One `arshai serve` (or `arshai worker`) process.
pub struct Instance {
    pub child: Child,
    pub port: u16,
    pub http: reqwest::Client,
}

/// What every instance of a test shares.
#[derive(Clone)]
pub struct Fleet {
    pub redis_url: String,
    pub upstream_url: String,
    /// Extra environment of every process (`ARSHAI_RUNS__…`).
    pub env: Vec<(String, String)>,
}

impl Fleet {
    pub fn new(redis_url: String, upstream_url: String) -> Self {
        Self {
            redis_url,
            upstream_url,
            env: vec![
                ("ARSHAI_RUNS__VISIBILITY_TIMEOUT_SECONDS".into(), "4".into()),
                ("ARSHAI_RUNS__CHECK_INTERVAL_SECONDS".into(), "0.5".into()),
                ("ARSHAI_RUNS__BLOCK_SECONDS".into(), "0.5".into()),
            ],
        }
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `arshai serve` with `workers` run slots.
    pub async fn serve(&self, workers: usize) -> anyhow::Result<Instance> {
        self.spawn(
            &["serve"],
            &[("ARSHAI_RUNS__WORKERS", &workers.to_string())],
        )
        .await
    }

    /// `arshai serve --config <config>` with `workers` run slots.
    pub async fn serve_config(&self, workers: usize, config: &str) -> anyhow::Result<Instance> {
        self.spawn(
            &["serve", "--config", config],
            &[("ARSHAI_RUNS__WORKERS", &workers.to_string())],
        )
        .await
    }

    /// `arshai worker --config <config> --concurrency n`.
    pub async fn worker_config(
        &self,
        concurrency: usize,
        config: &str,
    ) -> anyhow::Result<Instance> {
        self.spawn(
            &[
                "worker",
                "--config",
                config,
                "--concurrency",
                &concurrency.to_string(),
            ],
            &[],
        )
        .await
    }

    /// `arshai worker --concurrency n`, with its health listener.
    pub async fn worker(&self, concurrency: usize) -> anyhow::Result<Instance> {
        self.spawn(&["worker", "--concurrency", &concurrency.to_string()], &[])
            .await
    }

    async fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Instance> {
        let port = free_port()?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_arshai"));
        command
            .args(args)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("REDIS_URL", &self.redis_url)
            .env("OPENAI_BASE_URL", &self.upstream_url)
            .env("OPENAI_API_KEY", "sk-runs")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().context("spawn arshai")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let url = format!("http://127.0.0.1:{port}/health/live");
        for _ in 0..300 {
            if let Some(status) = child.try_wait()? {
                bail!("arshai {args:?} exited early with {status}");
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(Instance { child, port, http });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("arshai {args:?} did not come up within 30 s")
    }
}

impl Instance {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POSTs `body` to `path` with an optional bearer key; status and JSON.
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        key: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.get(self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    /// Submits an agent run; its id.
    pub async fn submit(&self, input: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .post(
                "/v1/runs",
                &serde_json::json!({"agent": "assistant", "input": input}),
                None,
            )
            .await?;
        anyhow::ensure!(status == 202, "submit answered {status}: {body}");
        Ok(body["run_id"].as_str().context("run_id")?.to_owned())
    }

    /// Polls the run until `done` holds for it, for at most `within`.
    pub async fn wait_run(
        &self,
        run_id: &str,
        key: Option<&str>,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (status, body) = self.get(&format!("/v1/runs/{run_id}"), key).await?;
            // Redis restarting: the API answers 503 until the link reconnects.
            let reconnecting = status == 503 && body["error"]["type"] == "runs_backend_unavailable";
            anyhow::ensure!(
                status == 200 || reconnecting,
                "GET run answered {status}: {body}"
            );
            if status == 200 && done(&body) {
                return Ok(body);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("run {run_id} did not reach the expected state within {within:?}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The user messages of `conversation_id` of the `assistant` agent.
    pub async fn user_messages(
        &self,
        conversation_id: &str,
        key: Option<&str>,
    ) -> anyhow::Result<Vec<String>> {
        let (status, body) = self
            .get(
                &format!("/v1/agents/assistant/conversations/{conversation_id}"),
                key,
            )
            .await?;
        anyhow::ensure!(status == 200, "GET conversation answered {status}: {body}");
        Ok(body["messages"]
            .as_array()
            .context("messages")?
            .iter()
            .filter(|message| message["role"] == "user")
            .filter_map(|message| message["content"].as_str().map(str::to_owned))
            .collect())
    }

    /// SIGKILL, no drain.
    pub async fn kill_9(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

pub fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |run| run["status"] == status
}
