//! Command-line interface of the `arshai` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// arshai: conversational AI agents, served at scale.
#[derive(Debug, Parser)]
#[command(name = "arshai", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Execute durable runs from the Redis queue, without the API (docs/runs.md).
    Worker(WorkerArgs),
    /// Load-test a running server.
    Bench(crate::bench::BenchArgs),
    /// Check a running server's readiness once (for container health checks): exit 0 when
    /// it answers 2xx, 1 otherwise.
    Probe(crate::probe::ProbeArgs),
    /// Print the SHA-256 of an API key read from standard input, for `[[auth.keys]] sha256`.
    HashKey,
}

/// Flags of `arshai serve`. Flags beat the environment, which beats the file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML settings file.
    #[arg(long, env = "ARSHAI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to bind (default 127.0.0.1).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to bind (default 8000).
    #[arg(long)]
    pub port: Option<u16>,
}

/// Flags of `arshai worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// TOML settings file (the same as the servers': memory, providers, agents, runs).
    #[arg(long, env = "ARSHAI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Runs executed at once (default `runs.worker_concurrency`).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Address of the health and metrics listener (default 127.0.0.1).
    #[arg(long)]
    pub host: Option<String>,
    /// Port of the health and metrics listener (`/health/live`, `/health/ready`,
    /// `/metrics`); none when absent.
    #[arg(long)]
    pub port: Option<u16>,
}
