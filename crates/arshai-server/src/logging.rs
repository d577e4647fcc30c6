//! Log output: structured JSON lines, or pretty text on a terminal, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::LogFormat;
use crate::telemetry::Traces;

/// The environment variable that overrides `logging.format` (`json`, `pretty`, `auto`).
pub const FORMAT_VARIABLE: &str = "ARSHAI_LOG_FORMAT";

/// The format in effect: the environment beats the settings; `auto` picks pretty when
/// standard output is a terminal.
pub fn effective_format(configured: LogFormat) -> LogFormat {
    let chosen = match std::env::var(FORMAT_VARIABLE).as_deref() {
        Ok("json") => LogFormat::Json,
        Ok("pretty") => LogFormat::Pretty,
        Ok("auto") => LogFormat::Auto,
        _ => configured,
    };
    match chosen {
        LogFormat::Auto if std::io::stdout().is_terminal() => LogFormat::Pretty,
        LogFormat::Auto => LogFormat::Json,
        other => other,
    }
}

/// Installs the global subscriber. `RUST_LOG` filters the log lines (`info` when unset or
/// invalid); with `traces`, arshai's own spans (info and above) are exported too, whatever
/// `RUST_LOG` says.
pub fn init(configured: LogFormat, traces: Option<&Traces>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let spans = Targets::new()
        .with_target("arshai", Level::INFO)
        .with_target("arshai_server", Level::INFO);
    let registry =
        tracing_subscriber::registry().with(traces.map(|traces| traces.layer().with_filter(spans)));
    let installed = match effective_format(configured) {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_filter(filter),
            )
            .try_init(),
        _ => registry
            .with(tracing_subscriber::fmt::layer().with_filter(filter))
            .try_init(),
    };
    if let Err(error) = installed {
        eprintln!("logging was already initialised: {error}");
    }
}
