//! Log output: structured JSON lines, or pretty text on a terminal, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use arshai::settings::LogFormat;
use tracing_subscriber::EnvFilter;

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

/// Installs the global subscriber. `RUST_LOG` filters (`info` when unset or invalid).
pub fn init(configured: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match effective_format(configured) {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        _ => builder.try_init(),
    };
    if let Err(error) = installed {
        eprintln!("logging was already initialised: {error}");
    }
}
