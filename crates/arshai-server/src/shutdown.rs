//! Shutdown signals and the drain sequence.
//!
//! On SIGTERM or SIGINT: readiness fails and new turns get 503 at once, while the listener
//! keeps answering (load balancers see the 503s and the failing readiness, rather than
//! refused connections). In-flight turns and streams run to completion within
//! `shutdown.grace_seconds`; then connections are closed gracefully. Whatever still runs at
//! the deadline is cancelled and logged.

use std::time::Duration;

use tokio::time::Instant;

use crate::AppState;

/// Listens for SIGINT (Ctrl-C) and SIGTERM; the returned future resolves on the first.
///
/// The handlers are installed when this is called, not when the future is first polled, so
/// that a signal arriving right after startup drains instead of killing the process. Call
/// it inside the runtime, before announcing that the server is up.
#[cfg(unix)]
pub fn signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal as listen};
    let interrupt = listen(SignalKind::interrupt());
    let terminate = listen(SignalKind::terminate());
    async move {
        let (mut interrupt, mut terminate) = match (interrupt, terminate) {
            (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "cannot listen for SIGINT/SIGTERM");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("received SIGINT; draining"),
            _ = terminate.recv() => tracing::info!("received SIGTERM; draining"),
        }
    }
}

/// Listens for Ctrl-C; the returned future resolves on it.
#[cfg(not(unix))]
pub fn signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("received Ctrl-C; draining"),
            Err(error) => {
                tracing::error!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Drains turns: refuses new ones and waits until the running ones finish or `deadline`
/// passes. Returns how many were still running at the deadline.
pub async fn drain_turns(state: &AppState, deadline: Instant) -> usize {
    state.start_draining();
    let running = state.admission.in_flight() + state.admission.queued();
    tracing::info!(running, "draining: new turns are refused");
    match tokio::time::timeout_at(deadline, state.admission.wait_idle()).await {
        Ok(()) => {
            tracing::info!("every in-flight turn finished");
            0
        }
        Err(_) => {
            let left = state.admission.in_flight() + state.admission.queued();
            tracing::warn!(
                cancelled_turns = left,
                "shutdown grace period over: cancelling the turns still running"
            );
            left
        }
    }
}

/// The grace period of `state`'s settings.
pub fn grace_period(state: &AppState) -> Duration {
    Duration::from_secs_f64(state.settings.shutdown.grace_seconds)
}
