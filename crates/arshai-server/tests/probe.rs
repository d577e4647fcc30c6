//! `arshai probe`, the image's HEALTHCHECK: exit 0 when the server is ready, 1 when it is
//! draining, down, or silent past the timeout.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use support::TestServer;

async fn probe(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_arshai"))
        .arg("probe")
        .args(args)
        .env_remove("ARSHAI_SERVER__PORT")
        .output()
        .await
        .expect("arshai probe runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_follows_readiness() {
    let mut server = TestServer::start().await;
    let port = server.addr.port().to_string();
    let ready = probe(&["--port", &port]).await;
    assert!(ready.status.success(), "{ready:?}");

    let live = probe(&["--port", &port, "--path", "/health/live"]).await;
    assert!(live.status.success(), "{live:?}");
    let missing = probe(&["--port", &port, "--path", "/nowhere"]).await;
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("status 404"));

    // Draining (with nothing in flight the server then stops at once): not ready.
    server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let draining = probe(&["--port", &port]).await;
    assert_eq!(draining.status.code(), Some(1), "{draining:?}");
}

#[tokio::test]
async fn probe_fails_on_a_closed_port_and_within_its_timeout() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let refused = probe(&["--port", &port]).await;
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");

    // A listener that never answers: the probe gives up after --timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let started = Instant::now();
    let hung = probe(&["--port", &port, "--timeout", "0.5"]).await;
    assert_eq!(hung.status.code(), Some(1), "{hung:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    drop(silent);

    let bad = probe(&["--timeout", "0"]).await;
    assert_eq!(bad.status.code(), Some(1));
}
