//! The accept loop: hyper connections with a header-read timeout, a bound on open
//! connections, and graceful close of every connection on shutdown.
//!
//! `axum::serve` offers neither the header-read timeout nor the connection bound, so the
//! loop is written out here with hyper-util, as axum's own `serve` does internally.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::metrics::Metrics;
use crate::settings::AdmissionSettings;

/// Pause after a failed `accept` (out of file descriptors, say) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Accepts connections until `stop` turns true, then returns the set of live connections
/// for the caller to close gracefully.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: AdmissionSettings,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let connection_slots = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs_f64(limits.header_read_timeout_seconds))
        .keep_alive(limits.keep_alive);
    builder.http2().timer(TokioTimer::new());
    let service =
        router.map_request(|request: axum::http::Request<Incoming>| request.map(Body::new));
    loop {
        let slot = tokio::select! {
            () = until_stopped(&mut stop) => break,
            slot = Arc::clone(&connection_slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            () = until_stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    drop(slot);
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        metrics.connections.inc();
        metrics.connections_open.inc();
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service.clone()),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            metrics.connections_open.dec();
            drop(slot);
        });
    }
    drop(listener);
    graceful
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    // The borrow guard is dropped here, so the accept future stays `Send`.
    let _ = stop.wait_for(|stopped| *stopped).await.map(|_| ());
}
