//! `arshai probe`: one bounded HTTP check of a local server, for container health checks.
//!
//! Distroless and slim images have no `curl`; Docker's `HEALTHCHECK` runs
//! `arshai probe` instead. It GETs `/health/ready` on the loopback (by default), and exits 0
//! on a 2xx answer, 1 on anything else (another status, a refused connection, or no answer
//! within the timeout). It reads no settings file: the port comes from `--port`, else
//! `ARSHAI_SERVER__PORT`, else 8000.

use std::time::Duration;

/// Flags of `arshai probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// Host to probe.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to probe.
    #[arg(long, env = "ARSHAI_SERVER__PORT", default_value_t = 8000)]
    pub port: u16,
    /// Path to GET.
    #[arg(long, default_value = "/health/ready")]
    pub path: String,
    /// Bound on the whole check (connect and answer), in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub timeout: f64,
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The timeout flag is not a positive number of seconds.
    #[error("--timeout must be a positive number of seconds, not {0}")]
    BadTimeout(f64),
    /// The server could not be reached, or did not answer in time.
    #[error("{url}: {source}")]
    Unreachable {
        /// The probed URL.
        url: String,
        /// What went wrong.
        source: reqwest::Error,
    },
    /// The server answered with a non-success status.
    #[error("{url}: status {status}")]
    Status {
        /// The probed URL.
        url: String,
        /// The status it answered.
        status: u16,
    },
}

/// Runs one probe; `Ok` means the server answered 2xx in time.
pub async fn run(args: &ProbeArgs) -> Result<(), ProbeError> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(ProbeError::BadTimeout(args.timeout));
    }
    let url = format!("http://{}:{}{}", args.host, args.port, args.path);
    let unreachable = |source| ProbeError::Unreachable {
        url: url.clone(),
        source,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(args.timeout))
        .no_proxy()
        .build()
        .map_err(unreachable)?;
    let response = http.get(&url).send().await.map_err(unreachable)?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(ProbeError::Status {
            url,
            status: status.as_u16(),
        })
    }
}
