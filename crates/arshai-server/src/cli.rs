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
