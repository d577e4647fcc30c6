//! The rendered Kubernetes manifests, run for real: the `arshai` binary started with exactly
//! the environment a pod of the rendered Deployment gets (its `env`, the image's `ENV`, its
//! mounted ConfigMap and Secret files, and the service-link variables of every Service in
//! the rendered output, as a namespace without `enableServiceLinks: false` would inject),
//! must become ready; and every query of the Grafana dashboard and the alert rules must
//! name only metrics a live `/metrics` exports.
//!
//! The overlays are rendered by `scripts/test` (through `scripts/render-k8s --json`) into
//! `K8S_RENDERED_DIR`. Without that variable the manifest test says so and does nothing,
//! except under CI (`CI` set), where it fails.
//!
//! What cannot be reproduced here: the uid, the read-only root and the container's network
//! namespace. The test's stand-in for cluster DNS: `redis:6379` in a value is replaced by the
//! address of a real `redis-server` it starts, and mount paths by scratch directories.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use arshai_testkit::RedisServer;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The rendered objects of `overlay`, or `None` (with a note) when not rendered.
fn rendered(overlay: &str) -> anyhow::Result<Option<Vec<Value>>> {
    let Ok(dir) = std::env::var("K8S_RENDERED_DIR") else {
        if std::env::var_os("CI").is_some() {
            bail!("K8S_RENDERED_DIR is not set under CI: scripts/test renders the overlays");
        }
        eprintln!("K8S_RENDERED_DIR is not set: not checking the rendered manifests");
        return Ok(None);
    };
    let path = Path::new(&dir).join(format!("{overlay}.json"));
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(Some(serde_json::from_str(&text)?))
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> anyhow::Result<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .with_context(|| format!("no {kind} named {name} in the rendered output"))
}

/// Names are generated with a hash suffix: find by `prefix-…`.
fn find_generated<'a>(objects: &'a [Value], kind: &str, name: &str) -> anyhow::Result<&'a Value> {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n == name || n.starts_with(&format!("{name}-")))
        })
        .with_context(|| format!("no {kind} generated as {name}"))
}

/// The string values of a ConfigMap (`data`) or a Secret (`data`, base64, or `stringData`).
fn data_of(object: &Value) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    use base64::Engine;
    let mut out = BTreeMap::new();
    if let Some(map) = object["stringData"].as_object() {
        for (k, v) in map {
            out.insert(
                k.clone(),
                v.as_str().unwrap_or_default().as_bytes().to_vec(),
            );
        }
    }
    if let Some(map) = object["data"].as_object() {
        for (k, v) in map {
            let text = v.as_str().unwrap_or_default();
            let bytes = if object["kind"] == "Secret" {
                // Long base64 values may be folded over lines.
                let folded: String = text.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD.decode(folded)?
            } else {
                text.as_bytes().to_vec()
            };
            out.insert(k.clone(), bytes);
        }
    }
    Ok(out)
}

/// The `ENV` of the image's `runtime` stage (what every container of the image starts with).
fn image_env() -> anyhow::Result<Vec<(String, String)>> {
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile"))?;
    // Join continuation lines, then read the ENV instructions of the runtime stage.
    let joined = dockerfile.replace("\\\n", " ");
    let mut in_runtime = false;
    let mut env = Vec::new();
    for line in joined.lines().map(str::trim) {
        if let Some(from) = line.strip_prefix("FROM ") {
            in_runtime = from.ends_with(" AS runtime");
        } else if in_runtime && let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').context("ENV KEY=VALUE")?;
                env.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    ensure!(!env.is_empty(), "the runtime stage sets ENV");
    Ok(env)
}

/// What Kubernetes injects for a Service, when service links are on.
fn service_links(service: &Value, ip: &str, env: &mut Vec<(String, String)>) {
    let name = service["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_uppercase()
        .replace('-', "_");
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (index, port) in ports.iter().enumerate() {
        let number = port["port"].as_u64().unwrap_or(80);
        let proto = port["protocol"].as_str().unwrap_or("TCP");
        let lower = proto.to_lowercase();
        if index == 0 {
            env.push((format!("{name}_SERVICE_HOST"), ip.to_owned()));
            env.push((format!("{name}_SERVICE_PORT"), number.to_string()));
            env.push((format!("{name}_PORT"), format!("{lower}://{ip}:{number}")));
        }
        if let Some(port_name) = port["name"].as_str() {
            env.push((
                format!(
                    "{name}_SERVICE_PORT_{}",
                    port_name.to_uppercase().replace('-', "_")
                ),
                number.to_string(),
            ));
        }
        let base = format!("{name}_PORT_{number}_{proto}");
        env.push((base.clone(), format!("{lower}://{ip}:{number}")));
        env.push((format!("{base}_PROTO"), lower.clone()));
        env.push((format!("{base}_PORT"), number.to_string()));
        env.push((format!("{base}_ADDR"), ip.to_owned()));
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts the Deployment's container as the overlay renders it and checks it comes up ready
/// on every probe path, logs one warning naming the ignored variables, and drains on SIGTERM
/// within the pod's grace period.
async fn boot_rendered_pod(overlay: &str) -> anyhow::Result<Option<Value>> {
    let Some(objects) = rendered(overlay)? else {
        return Ok(None);
    };
    let deployment = find(&objects, "Deployment", "arshai")?;
    let pod = &deployment["spec"]["template"]["spec"];
    ensure!(
        pod["enableServiceLinks"] == false,
        "enableServiceLinks: false"
    );
    ensure!(
        deployment["spec"].get("replicas").is_none(),
        "no replicas beside the HPA"
    );
    let container = pod["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "arshai"))
        .context("the arshai container")?;
    let redis = RedisServer::start().await?;
    let scratch = tempfile::tempdir()?;

    // The mounts: each volume's files in a scratch directory, mount paths remapped.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for (index, mount) in container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let volume = pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == mount["name"]))
            .context("a mounted volume")?;
        let source = if let Some(name) = volume["configMap"]["name"].as_str() {
            find(&objects, "ConfigMap", name)?
        } else if let Some(name) = volume["secret"]["secretName"].as_str() {
            find(&objects, "Secret", name)?
        } else {
            bail!("unexpected volume {volume}");
        };
        let dir = scratch.path().join(format!("mount-{index}"));
        std::fs::create_dir_all(&dir)?;
        for (key, bytes) in data_of(source)? {
            std::fs::write(dir.join(key), bytes)?;
        }
        let path = mount["mountPath"].as_str().context("mountPath")?.to_owned();
        mounts.push((path, dir));
    }
    // Longest mount path first, so /etc/arshai-keys is not read as /etc/arshai + "-keys".
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    let remap = |text: &str| -> String {
        let mut text = text.replace("redis://redis:6379", &redis.url());
        for (path, dir) in &mounts {
            text = text.replace(&format!("{path}/"), &format!("{}/", dir.display()));
        }
        text
    };
    for (_, dir) in &mounts {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if let Ok(text) = std::fs::read_to_string(&path) {
                std::fs::write(&path, remap(&text))?;
            }
        }
    }

    // The environment: the image's, the container's, then every Service's links.
    let mut env = image_env()?;
    env.push(("HOSTNAME".to_owned(), "arshai-7d4b9c-x2x9q".to_owned()));
    for item in container["env"].as_array().cloned().unwrap_or_default() {
        let name = item["name"].as_str().context("env name")?.to_owned();
        if let Some(value) = item["value"].as_str() {
            env.push((name, remap(value)));
            continue;
        }
        let reference = &item["valueFrom"]["secretKeyRef"];
        let secret = reference["name"].as_str().context("secretKeyRef")?;
        let key = reference["key"].as_str().context("secretKeyRef key")?;
        let data = data_of(find(&objects, "Secret", secret)?)?;
        match data.get(key) {
            Some(bytes) => env.push((name, remap(std::str::from_utf8(bytes)?))),
            None if reference["optional"] == true => {}
            None => bail!("env {name}: Secret {secret} has no key {key}"),
        }
    }
    let services: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Service").collect();
    ensure!(!services.is_empty(), "the overlay renders Services");
    for (index, service) in services.iter().enumerate() {
        service_links(service, &format!("10.96.0.{}", 10 + index), &mut env);
    }
    service_links(
        &json!({"metadata": {"name": "kubernetes"}, "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}),
        "10.96.0.1",
        &mut env,
    );
    // The model-baked image variant points at /app/models; here, the repository's copy.
    let model = repo().join("models/SmolLM2-135M-Instruct-Q4_1.gguf");
    if model.is_file() {
        env.push((
            "ARSHAI_PROVIDERS__LOCAL__MODEL_PATH".to_owned(),
            model.display().to_string(),
        ));
    }

    let mut args: Vec<String> = container["args"]
        .as_array()
        .context("args")?
        .iter()
        .filter_map(|a| a.as_str().map(remap))
        .collect();
    let port = free_port()?;
    // The container port is 8000 in its own network namespace; here, a free loopback port.
    args.extend([
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_arshai"))
        .args(&args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawn arshai")?;
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    for stream in [
        Box::new(child.stdout.take().context("stdout")?)
            as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().context("stderr")?),
    ] {
        let tx = lines_tx.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    drop(lines_tx);

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..300 {
        if let Some(status) = child.try_wait()? {
            let mut log = Vec::new();
            while let Ok(line) = lines.try_recv() {
                log.push(line);
            }
            bail!(
                "{overlay}: arshai exited with {status}:\n{}",
                log.join("\n")
            );
        }
        if let Ok(response) = http.get(format!("{base}/health/ready")).send().await
            && response.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        ready,
        "{overlay}: /health/ready did not answer 200 within 30 s"
    );
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let path = container[probe]["httpGet"]["path"]
            .as_str()
            .with_context(|| format!("{probe} httpGet path"))?;
        let status = http.get(format!("{base}{path}")).send().await?.status();
        ensure!(status == 200, "{overlay}: {probe} {path} answered {status}");
    }

    // Drain as the kubelet would: SIGTERM (after preStop), then the process must be gone
    // before terminationGracePeriodSeconds minus the preStop sleep.
    let grace = pod["terminationGracePeriodSeconds"]
        .as_f64()
        .context("grace")?;
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_f64()
        .context("preStop sleep")?;
    let config = mounts
        .iter()
        .map(|(_, dir)| dir.join("arshai.toml"))
        .find(|p| p.is_file())
        .context("the mounted arshai.toml")?;
    // `grace_seconds` appears once, in `[shutdown]`.
    let toml = std::fs::read_to_string(&config)?;
    let drain: f64 = toml
        .lines()
        .find_map(|line| line.trim().strip_prefix("grace_seconds = "))
        .with_context(|| format!("shutdown.grace_seconds in {}", config.display()))?
        .parse()?;
    ensure!(
        grace >= pre_stop + drain + 1.0,
        "{overlay}: terminationGracePeriodSeconds {grace} must cover preStop {pre_stop} + shutdown.grace_seconds {drain}"
    );
    let pid = child.id().context("pid")?;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    ensure!(killed.success(), "kill -TERM");
    let status = tokio::time::timeout(Duration::from_secs_f64(grace - pre_stop), child.wait())
        .await
        .context("arshai did not exit within the pod's grace period")??;
    ensure!(status.success(), "{overlay}: drained with {status}");

    let mut log = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(5), lines.recv())
        .await
        .ok()
        .flatten()
    {
        log.push(line);
    }
    let warnings: Vec<&String> = log
        .iter()
        .filter(|line| line.contains("ignoring environment variables"))
        .collect();
    ensure!(
        warnings.len() == 1,
        "{overlay}: one warning about ignored variables, got {warnings:?}"
    );
    let warning: Value = serde_json::from_str(warnings[0])?;
    let listed = |field: &str| -> BTreeSet<String> {
        warning[field]
            .as_str()
            .unwrap_or_default()
            .split(", ")
            .map(str::to_owned)
            .collect()
    };
    let (prefixed, links) = (listed("ignored"), listed("service_links"));
    for name in [
        "ARSHAI_SERVICE_PORT",
        "ARSHAI_PORT",
        "ARSHAI_PORT_80_TCP_ADDR",
    ] {
        ensure!(
            prefixed.contains(name),
            "{overlay}: the warning names {name}: {warning}"
        );
    }
    ensure!(
        links.contains("REDIS_PORT"),
        "{overlay}: the warning names REDIS_PORT: {warning}"
    );
    ensure!(
        !prefixed
            .iter()
            .chain(&links)
            .any(|n| n.starts_with("KUBERNETES_") || n.starts_with("ARSHAI_SERVER__")),
        "{overlay}: only what is ignored is named: {warning}"
    );
    Ok(Some(find(&objects, "Deployment", "arshai")?.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_production_pod_starts_and_drains() -> anyhow::Result<()> {
    let Some(_) = boot_rendered_pod("production").await? else {
        return Ok(());
    };
    let objects = rendered("production")?.context("rendered")?;
    let config = data_of(find_generated(&objects, "ConfigMap", "arshai-config")?)?;
    let toml = String::from_utf8(config["arshai.toml"].clone())?;
    ensure!(toml.contains("enabled = true"), "auth is on in production");
    let pdb = find(&objects, "PodDisruptionBudget", "arshai")?;
    ensure!(pdb["spec"]["maxUnavailable"] == 1, "PDB maxUnavailable: 1");
    let service = find(&objects, "Service", "arshai")?;
    ensure!(
        service["spec"]["type"] == "ClusterIP",
        "no public LoadBalancer"
    );
    let hpa = find(&objects, "HorizontalPodAutoscaler", "arshai")?;
    let pods_metrics: BTreeSet<&str> = hpa["spec"]["metrics"]
        .as_array()
        .context("metrics")?
        .iter()
        .filter_map(|m| m["pods"]["metric"]["name"].as_str())
        .collect();
    ensure!(
        pods_metrics
            == BTreeSet::from([
                "arshai_admission_queue_depth",
                "arshai_turns_in_flight",
                "arshai_request_duration_seconds_p95"
            ]),
        "the production HPA scales on queue, in-flight and p95 too: {pods_metrics:?}"
    );
    let redis = find(&objects, "StatefulSet", "redis")?;
    ensure!(
        redis["spec"]["volumeClaimTemplates"]
            .as_array()
            .is_some_and(|v| !v.is_empty()),
        "Redis keeps its data on a PVC"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_dev_pod_starts_and_drains() -> anyhow::Result<()> {
    boot_rendered_pod("dev").await?;
    Ok(())
}

/// PromQL identifiers that are not metric names.
const PROMQL_WORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

/// The metric names a PromQL expression reads: identifiers left once strings, label
/// matchers, ranges, grouping clauses, functions, numbers and Grafana variables are removed.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut cleaned = String::new();
    let mut depth_braces = 0;
    let mut depth_brackets = 0;
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' if depth_braces == 0 => in_string = !in_string,
            _ if in_string => {}
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '[' => depth_brackets += 1,
            ']' => depth_brackets -= 1,
            _ if depth_braces > 0 || depth_brackets > 0 => {}
            c => cleaned.push(c),
        }
    }
    let chars: Vec<char> = cleaned.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if matches!(
                word.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) {
                skip_group = true;
            } else if next == Some(&'(') || PROMQL_WORDS.contains(&word.as_str()) {
                // A function call or an operator.
            } else if !skip_group {
                names.insert(word);
            }
        } else {
            if c == '(' && skip_group {
                // Skip the label list of the grouping clause.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_group = false;
            }
            i += 1;
        }
    }
    names
}

#[test]
fn promql_names_are_extracted() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (le, pod) (rate(a_bucket{namespace="$namespace",x=~"5.."}[$__rate_interval]))) / b_total > 300e6 and on (pod) c"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["a_bucket".into(), "b_total".into(), "c".into()])
    );
    assert_eq!(
        metric_names("time() - process_start_time_seconds < 300"),
        BTreeSet::from(["process_start_time_seconds".into()])
    );
}

#[tokio::test]
async fn dashboard_and_alerts_query_only_exported_metrics() -> anyhow::Result<()> {
    // A live server whose labelled families all have samples: a turn, a streamed turn,
    // upstream failures (retried, then opening the circuit) and a Redis outage.
    let mut redis = RedisServer::start().await?;
    let upstream = arshai_testkit::FakeUpstream::start().await?;
    let mut settings = support::settings_for(&upstream);
    settings.memory.redis_url = Some(redis.url());
    settings.providers.retry.max_retries = 1;
    settings.providers.retry.base_delay_seconds = 0.01;
    settings.providers.circuit.failure_threshold = 2;
    let server = support::TestServer::start_with(upstream, settings).await;
    let (status, body) = server.post("assistant", json!({"message": "hi"})).await;
    ensure!(status == 200, "{body}");
    let streamed = server
        .http
        .post(server.url("/v1/agents/assistant/messages"))
        .json(&json!({"message": "hi", "stream": true}))
        .send()
        .await?;
    ensure!(streamed.status() == 200);
    streamed.text().await?;
    for _ in 0..4 {
        server.upstream.push(arshai_testkit::Reply::status(500));
    }
    for _ in 0..2 {
        let (status, body) = server.post("assistant", json!({"message": "fail"})).await;
        ensure!(status >= 500, "{status} {body}");
    }
    redis.kill().await?;
    let (status, body) = server
        .post("assistant", json!({"message": "no redis"}))
        .await;
    ensure!(status >= 500, "{status} {body}");
    let text = server.metrics_text().await;
    let mut exported = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            exported.insert(name.to_owned());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exported.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#')
            && let Some(name) = line.split(['{', ' ']).next()
        {
            exported.insert(name.to_owned());
        }
    }
    for expected in [
        "arshai_build_info",
        "process_start_time_seconds",
        "arshai_turns_in_flight",
    ] {
        ensure!(exported.contains(expected), "/metrics exports {expected}");
    }

    let mut queries: Vec<(String, String)> = Vec::new();
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
        repo().join("deploy/monitoring/grafana-dashboard.json"),
    )?)?;
    for panel in dashboard["panels"].as_array().context("panels")? {
        for target in panel["targets"].as_array().context("targets")? {
            let expr = target["expr"].as_str().context("expr")?;
            queries.push((format!("dashboard: {}", panel["title"]), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .context("templating")?
    {
        if let Some(query) = variable["query"].as_str()
            && let Some(args) = query.strip_prefix("label_values(")
        {
            let metric = args.split([',', ')']).next().unwrap_or_default().trim();
            queries.push(("dashboard variable".into(), metric.to_owned()));
        }
    }
    let rules = std::fs::read_to_string(
        repo().join("deploy/k8s/components/prometheus-operator/prometheusrule.yaml"),
    )?;
    let alerts = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "));
    let mut alert_count = 0;
    for expr in alerts {
        alert_count += 1;
        queries.push(("alert rule".into(), expr.to_owned()));
    }
    let adapter =
        std::fs::read_to_string(repo().join("deploy/monitoring/prometheus-adapter-values.yaml"))?;
    for line in adapter
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- seriesQuery: "))
    {
        queries.push((
            "prometheus-adapter".into(),
            line.trim_matches('\'').to_owned(),
        ));
    }
    let keda =
        std::fs::read_to_string(repo().join("deploy/k8s/components/keda/scaledobject.yaml"))?;
    for line in keda
        .lines()
        .filter_map(|l| l.trim().strip_prefix("query: "))
    {
        queries.push(("keda".into(), line.to_owned()));
    }
    ensure!(
        alert_count >= 8,
        "the alert rules were read ({alert_count})"
    );
    ensure!(
        queries.len() >= 40,
        "the queries were read ({})",
        queries.len()
    );
    let mut unknown = Vec::new();
    for (source, expr) in &queries {
        let names = metric_names(expr);
        ensure!(!names.is_empty(), "{source}: no metric found in {expr}");
        for name in names {
            if !exported.contains(&name) {
                unknown.push(format!("{source}: {name} in {expr}"));
            }
        }
    }
    ensure!(
        unknown.is_empty(),
        "metrics the server does not export:\n{}",
        unknown.join("\n")
    );
    Ok(())
}
