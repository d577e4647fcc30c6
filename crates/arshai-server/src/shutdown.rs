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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT; draining"),
        () = terminate => tracing::info!("received SIGTERM; draining"),
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
