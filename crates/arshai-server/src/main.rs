//! The `arshai` binary: parse flags, load settings, bind, serve until a signal.

use std::io::Read;

use anyhow::Context;
use arshai::settings::environment::IgnoredEnvironment;
use arshai_server::cli::{Cli, Command, ServeArgs, WorkerArgs};
use arshai_server::runs::worker::WorkerHandle;
use arshai_server::settings::{Settings, env_names};
use arshai_server::telemetry::Traces;
use arshai_server::{AppState, auth, bench, logging, probe, serve, shutdown};
use clap::Parser;
use tokio::net::TcpListener;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(run_server(args)),
        Command::Worker(args) => runtime.block_on(run_worker(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Probe(args) => match runtime.block_on(probe::run(&args)) {
            Ok(()) => Ok(()),
            Err(error) => {
                eprintln!("arshai probe: {error}");
                std::process::exit(1);
            }
        },
        Command::HashKey => {
            let mut key = String::new();
            std::io::stdin()
                .read_to_string(&mut key)
                .context("cannot read the key from standard input")?;
            println!("{}", auth::hash_key(key.trim_end_matches(['\n', '\r'])));
            Ok(())
        }
    }
}

async fn run_server(args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(args.config.as_deref())?;
    let traces = Traces::start(tokio::runtime::Handle::current())?;
    logging::init(settings.logging.format, traces.as_ref());
    let ignored = IgnoredEnvironment::read(&env_names::NAMES);
    if !ignored.is_empty() {
        tracing::warn!(
            ignored = %ignored.prefixed.join(", "),
            service_links = %ignored.service_links.join(", "),
            "ignoring environment variables that are not settings: settings are \
             ARSHAI_<SECTION>__<KEY> and the plain names of docs/settings.md, and a plain name \
             holding a service link (tcp://…) is not a setting value"
        );
    }
    if let Some(host) = args.host {
        settings.server.host = host;
    }
    if let Some(port) = args.port {
        settings.server.port = port;
    }
    let address = (settings.server.host.clone(), settings.server.port);
    let state = AppState::from_settings(settings).await?;
    let listener = TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot bind {}:{}", address.0, address.1))?;
    let stop = shutdown::signal();
    let agents: Vec<&str> = state.agents.iter().map(|agent| agent.name()).collect();
    tracing::info!(
        address = %listener.local_addr()?,
        memory = state.memory.backend(),
        agents = ?agents,
        auth = state.auth.enabled(),
        "arshai is serving"
    );
    serve(listener, state, stop).await?;
    if let Some(traces) = traces {
        // Flushing blocks until the last batch is sent (on this runtime): off its threads.
        tokio::task::spawn_blocking(move || traces.shutdown()).await?;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    let settings = Settings::load(args.config.as_deref())?;
    logging::init(settings.logging.format, None);
    let concurrency = args.concurrency.unwrap_or(settings.runs.worker_concurrency);
    anyhow::ensure!(concurrency > 0, "--concurrency must be at least 1");
    let host = args.host.unwrap_or_else(|| settings.server.host.clone());
    let state = AppState::from_settings(settings).await?;
    let grace = shutdown::grace_period(&state);
    let worker = WorkerHandle::spawn(&state, concurrency, grace).context(
        "arshai worker needs the Redis memory store (memory.provider = \"redis\" or REDIS_URL)",
    )?;
    let stop = shutdown::signal();
    let listener = match args.port {
        Some(port) => Some(
            TcpListener::bind((host.as_str(), port))
                .await
                .with_context(|| format!("cannot bind {host}:{port}"))?,
        ),
        None => None,
    };
    let (closed, closing) = tokio::sync::watch::channel(false);
    let http = listener.map(|listener| {
        let app = arshai_server::worker_app(state.clone());
        let mut closing = closing.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = closing.wait_for(|closed| *closed).await;
                })
                .await
        })
    });
    tracing::info!(concurrency, "arshai worker is running");
    stop.await;
    state.start_draining();
    worker.stop().await;
    let _ = closed.send(true);
    if let Some(http) = http {
        http.await??;
    }
    tracing::info!("stopped");
    Ok(())
}
